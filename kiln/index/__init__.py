"""The package index kiln publishes: PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata
files, PEP 700 fields and PEP 740 provenance, written incrementally and swapped in
atomically. ``build_index`` is the entry point."""

from kiln.index.build import build_index
from kiln.index.model import IndexReport, Rejected, WheelEntry

__all__ = ["IndexReport", "Rejected", "WheelEntry", "build_index"]

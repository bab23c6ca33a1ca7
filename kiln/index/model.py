"""What the index knows: kiln's own wheels, upstream's links, and what was left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

# PEP 691 JSON and PEP 629 HTML repository version: 1.1 brought PEP 700's fields,
# 1.3 PEP 740's ``provenance``; clients warn on newer minors and fail on a newer major.
API_VERSION = "1.3"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
PROVENANCE_TYPE = "application/vnd.pypi.integrity.v1+json"


class WheelEntry(NamedTuple):
    """One of kiln's wheels as published: where it lives in the output and what it says.

    A named tuple rather than a frozen dataclass: a large index loads 100,000 of these
    on every run, and a tuple is built several times faster.
    """

    filename: str
    project: str  # normalized (PEP 503)
    version: str
    size: int
    mtime_ns: int
    sha256: str
    requires_python: str | None
    metadata_sha256: str
    upload_time: str  # PEP 700: yyyy-mm-ddThh:mm:ss.ffffffZ
    path: str  # relative to the output root: files/<project>/[<digest>/]<filename>
    reproducible: bool | None = None  # from the build record; None when it does not say
    build_id: str | None = None
    record_sig: str = ""  # size and mtime of <wheel>.build.json when it was read
    attestation_sig: str = ""  # the same for <wheel>.publish.attestation
    provenance: bool = False  # a PEP 740 provenance file is published beside the wheel
    hermetic: bool | None = None  # from the build record: built with pinned inputs only
    record_file: bool = False  # the build record is published beside the wheel (.build.json)
    builders: str = ""  # JSON list of the trusted signers who vouch for it ("" : not checked)
    tests: str = ""  # from the build record: "passed (412)", "not run (--no-test)"; "" unknown


@dataclass(frozen=True)
class Rejected:
    """A wheelhouse file that was left out of the index, and why."""

    filename: str
    reason: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class ProjectUpstream:
    """Upstream's files for one project, already in PEP 691 form with absolute URLs."""

    files: tuple[dict[str, Any], ...]
    versions: tuple[str, ...]
    etag: str = ""


@dataclass
class IndexReport:
    """What one ``kiln index`` run did."""

    output: str
    generation: int
    wheels: int = 0
    projects: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    projects_rewritten: int = 0
    upstream_files: int = 0
    seconds: float = 0.0
    up_to_date: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output, "generation": self.generation, "wheels": self.wheels,
            "projects": self.projects, "added": self.added, "changed": self.changed,
            "removed": self.removed,
            "rejected": [{"filename": r.filename, "reason": r.reason} for r in self.rejected],
            "warnings": self.warnings, "projects_rewritten": self.projects_rewritten,
            "upstream_files": self.upstream_files, "seconds": round(self.seconds, 3),
            "up_to_date": self.up_to_date,
        }

"""A tool a build uses, as its record names it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    path: str = ""
    sha256: str = ""

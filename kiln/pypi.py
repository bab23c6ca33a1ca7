"""What an index knows about a project: its files and versions, through PEP 691's JSON API."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from kiln import http
from kiln.errors import FetchError, UsageError

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def simple_url() -> str:
    return os.environ.get("KILN_INDEX_URL", "https://pypi.org/simple").rstrip("/")


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str
    size: int | None
    requires_python: str | None
    yanked: bool
    upload_time: str | None


@dataclass(frozen=True)
class ProjectPage:
    name: str
    files: tuple[IndexFile, ...]
    versions: tuple[str, ...]

    def sdist(self, version: str) -> IndexFile:
        """The sdist of ``version`` (PyPI allows one per release)."""
        want = Version(version)
        for f in self.files:
            if not f.filename.endswith((".tar.gz", ".zip")):
                continue
            try:
                _, found = parse_sdist_filename(f.filename)
            except ValueError:
                continue
            if found == want:
                return f
        if version not in self.versions and not any(_same(v, want) for v in self.versions):
            raise UsageError(f"{self.name} has no release {version}",
                             hint=f"latest releases: {', '.join(self.stable()[-5:])}")
        raise UsageError(f"{self.name} {version} has no sdist on the index (wheels only?)",
                         hint="kiln builds from sdists; pick a version that has one")

    def stable(self) -> list[str]:
        out = []
        for v in self.versions:
            try:
                parsed = Version(v)
            except InvalidVersion:
                continue
            if not parsed.is_prerelease and not parsed.is_devrelease:
                out.append(v)
        return sorted(out, key=Version)

    def latest(self) -> str:
        """The newest final release that has an sdist that is not yanked."""
        with_sdist = set()
        for f in self.files:
            if f.yanked or not f.filename.endswith((".tar.gz", ".zip")):
                continue
            try:
                with_sdist.add(parse_sdist_filename(f.filename)[1])
            except ValueError:
                continue
        for v in reversed(self.stable()):
            if Version(v) in with_sdist:
                return v
        raise UsageError(f"{self.name}: no release with an sdist on the index")


def _same(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def project_page(name: str, index_url: str | None = None) -> ProjectPage:
    base = (index_url or simple_url()).rstrip("/")
    project = canonicalize_name(name)
    url = f"{base}/{project}/"
    try:
        data = _get(url, name)
    except FetchError as exc:
        if "HTTP 404" in exc.message:
            raise UsageError(f"no project named {name!r} on {base}",
                             hint="check the spelling (kiln uses the PyPI name)") from exc
        raise
    files = []
    for entry in data.get("files", []):
        files.append(IndexFile(
            filename=entry["filename"],
            url=entry["url"] if "://" in entry["url"] else f"{url}{entry['url']}",
            sha256=entry.get("hashes", {}).get("sha256", ""),
            size=entry.get("size"),
            requires_python=entry.get("requires-python"),
            yanked=bool(entry.get("yanked")),
            upload_time=entry.get("upload-time"),
        ))
    versions = data.get("versions")
    if not isinstance(versions, list):  # PEP 700 is optional: derive them from sdist names
        found = set()
        for f in files:
            try:
                found.add(str(parse_sdist_filename(f.filename)[1]))
            except ValueError:
                continue
        versions = sorted(found, key=Version)
    return ProjectPage(name=str(data.get("name", project)), files=tuple(files),
                       versions=tuple(str(v) for v in versions))


def _get(url: str, name: str) -> dict[str, Any]:
    import json

    raw = http.get_bytes(url, accept=SIMPLE_JSON, what=f"looking up {name}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FetchError(f"looking up {name}: {url} did not answer with PEP 691 JSON",
                         hint="the index must support application/vnd.pypi.simple.v1+json") from exc
    if not isinstance(data, dict):
        raise FetchError(f"looking up {name}: unexpected answer from {url}")
    return data

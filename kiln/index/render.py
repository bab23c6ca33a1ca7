"""The index pages: PEP 503 HTML and PEP 691 JSON, from the same values.

Each of kiln's files carries its hash, Requires-Python, the core-metadata file's hash
under both PEP 658 and PEP 714 names, PEP 700's size and upload time, the PEP 740
provenance URL when there is one, and kiln's own word on reproducibility (``_kiln`` in
JSON — PEP 691 reserves leading-underscore keys for the index — and ``data-kiln-*``
attributes in HTML). Upstream's files follow kiln's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from kiln.index.model import API_VERSION, ProjectUpstream, WheelEntry


class Links:
    """How a page refers to files: relative to ``simple/<project>/``, or under a base URL."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base = base_url.rstrip("/") + "/" if base_url else None

    def to(self, path: str) -> str:
        quoted = quote(path)
        return self.base + quoted if self.base else "../../" + quoted


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


def sorted_entries(entries: Iterable[WheelEntry]) -> list[WheelEntry]:
    return sorted(entries, key=lambda e: (_version_key(e.version), e.filename))


def file_records(entries: Sequence[WheelEntry], links: Links) -> list[dict[str, Any]]:
    """PEP 691 file dictionaries for kiln's wheels, in page order."""
    records = []
    for e in entries:
        metadata = {"sha256": e.metadata_sha256}
        record: dict[str, Any] = {
            "filename": e.filename,
            "url": links.to(e.path),
            "hashes": {"sha256": e.sha256},
        }
        if e.requires_python:
            record["requires-python"] = e.requires_python
        record.update({
            "core-metadata": metadata,
            "dist-info-metadata": metadata,  # PEP 714: old name, for older clients
            "size": e.size,
            "upload-time": e.upload_time,
            "yanked": False,
            "provenance": links.to(e.path + ".provenance") if e.provenance else None,
            "_kiln": {"reproducible": None if e.reproducible is None else bool(e.reproducible),
                      "hermetic": None if e.hermetic is None else bool(e.hermetic),
                      "build_id": e.build_id,
                      # who vouches for these bytes, when the index was told whom to trust
                      "builders": json.loads(e.builders) if e.builders else None,
                      # what the wheel's tests found, as its build record says
                      "tests": e.tests or None,
                      "record": links.to(e.path + ".build.json") if e.record_file else None},
        })
        records.append(record)
    return records


def project_json(project: str, entries: Sequence[WheelEntry], upstream: ProjectUpstream | None,
                 links: Links) -> bytes:
    files = file_records(entries, links)
    versions = {e.version for e in entries}
    if upstream is not None:
        own = {e.filename for e in entries}
        files += [f for f in upstream.files if f["filename"] not in own]
        versions.update(upstream.versions)
    document = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": sorted(versions, key=_version_key),
        "files": files,
    }
    return _dumps(document)


def _dumps(document: dict[str, Any]) -> bytes:
    # compact: with ``indent`` the json module falls back to its pure-Python encoder
    return (json.dumps(document, separators=(",", ":")) + "\n").encode()


def _attr(name: str, value: str) -> str:
    return f' {name}="{escape(value, quote=True)}"'


def _anchor(record: dict[str, Any]) -> str:
    hashes = record.get("hashes") or {}
    algorithm = "sha256" if "sha256" in hashes else next(iter(sorted(hashes)), "")
    href = record["url"] + (f"#{algorithm}={hashes[algorithm]}" if algorithm else "")
    attrs = _attr("href", href)
    if record.get("requires-python"):
        attrs += _attr("data-requires-python", record["requires-python"])
    yanked = record.get("yanked")
    if yanked:
        attrs += _attr("data-yanked", yanked if isinstance(yanked, str) else "")
    metadata = record.get("core-metadata", record.get("dist-info-metadata"))
    if metadata:
        value = "true"
        if isinstance(metadata, dict) and metadata:
            name = "sha256" if "sha256" in metadata else sorted(metadata)[0]
            value = f"{name}={metadata[name]}"
        attrs += _attr("data-dist-info-metadata", value) + _attr("data-core-metadata", value)
    if record.get("gpg-sig") is not None:
        attrs += _attr("data-gpg-sig", "true" if record["gpg-sig"] else "false")
    if record.get("provenance"):
        attrs += _attr("data-provenance", record["provenance"])
    kiln = record.get("_kiln")
    if isinstance(kiln, dict):
        if kiln.get("reproducible") is not None:
            attrs += _attr("data-kiln-reproducible", "true" if kiln["reproducible"] else "false")
        if kiln.get("hermetic") is not None:
            attrs += _attr("data-kiln-hermetic", "true" if kiln["hermetic"] else "false")
        if kiln.get("build_id"):
            attrs += _attr("data-kiln-build-id", kiln["build_id"])
        if kiln.get("tests"):
            attrs += _attr("data-kiln-tests", kiln["tests"])
        if kiln.get("builders"):
            attrs += _attr("data-kiln-builders", ", ".join(b["signer"] for b in kiln["builders"]))
    return f"    <a{attrs}>{escape(record['filename'])}</a><br>\n"


def _page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        f"    <h1>{escape(title)}</h1>\n{body}  </body>\n</html>\n"
    ).encode()


def project_html(project_json_bytes: bytes) -> bytes:
    """The HTML form of a project page, from its JSON form (so the two never disagree)."""
    document = json.loads(project_json_bytes)
    body = "".join(_anchor(f) for f in document["files"])
    return _page(f"Links for {document['name']}", body)


def root_json(projects: Iterable[str]) -> bytes:
    document = {"meta": {"api-version": API_VERSION},
                "projects": [{"name": p} for p in sorted(projects)]}
    return _dumps(document)


def root_html(projects: Iterable[str]) -> bytes:
    body = "".join(f'    <a href="{quote(p)}/">{escape(p)}</a><br>\n' for p in sorted(projects))
    return _page("Simple index", body)

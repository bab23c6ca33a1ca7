"""Upstream's files for the projects kiln indexes: links with their hashes, never copies.

Each project page is asked for as PEP 691 JSON (HTML is parsed when that is all an index
serves), with the last ETag so an unchanged page costs a 304. ``file://`` upstreams are
folders another tool wrote — bandersnatch's ``web/simple`` (``index.v1_json``) or another
kiln index — and a link into the output folder itself becomes a relative link, so
``kiln publish`` carries mirrored files along with the pages.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from kiln.http import USER_AGENT
from kiln.index.model import JSON_TYPE, ProjectUpstream

ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
TIMEOUT = 30.0
THREADS = 8
_COPIED_KEYS = ("requires-python", "yanked", "core-metadata", "dist-info-metadata",
                "gpg-sig", "size", "upload-time")


class UpstreamError(Exception):
    """Upstream could not be read for one project; the message says why."""


@dataclass(frozen=True)
class Fetched:
    project: str
    value: ProjectUpstream | None  # None: upstream has no such project
    unchanged: bool = False
    error: str | None = None


def fetch_all(base: str, projects: Iterable[str], known: dict[str, ProjectUpstream],
              output_root: Path) -> list[Fetched]:
    """Ask upstream about every project, a few at a time; errors are per project."""
    base = base if base.endswith("/") else base + "/"

    def one(project: str) -> Fetched:
        try:
            return fetch_project(base, project, known.get(project), output_root)
        except UpstreamError as exc:
            return Fetched(project, None, error=str(exc))

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, sorted(projects)))


def fetch_project(base: str, project: str, known: ProjectUpstream | None,
                  output_root: Path) -> Fetched:
    url = urllib.parse.urljoin(base, f"{project}/")
    if url.startswith("file:"):
        return _from_folder(url, project, output_root)
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if known is not None and known.etag:
        headers["If-None-Match"] = known.etag
    for attempt in range(3):
        try:
            # only http(s) gets here: file:// upstreams are read as folders above
            request = urllib.request.Request(url, headers=headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:  # noqa: S310
                body = resp.read()
                final_url = resp.geturl()
                content_type = resp.headers.get_content_type()
                etag = resp.headers.get("ETag", "")
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and known is not None:
                return Fetched(project, known, unchanged=True)
            if exc.code == 404:
                return Fetched(project, None)
            if exc.code < 500 or attempt == 2:
                raise UpstreamError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            if attempt == 2:
                raise UpstreamError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
        time.sleep(0.5 * 2**attempt)
    if content_type == JSON_TYPE or content_type.endswith("+json"):
        files, versions = _parse_json(body, url)
    elif content_type in ("text/html", "application/vnd.pypi.simple.v1+html"):
        files, versions = _parse_html(body)
    else:
        raise UpstreamError(f"{url}: answered {content_type}, not a simple index page")
    return Fetched(project, _resolve(files, versions, final_url, output_root, etag))


def _from_folder(url: str, project: str, output_root: Path) -> Fetched:
    folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    for name in ("index.json", "index.v1_json"):
        if (folder / name).is_file():
            files, versions = _parse_json((folder / name).read_bytes(), str(folder / name))
            return Fetched(project, _resolve(files, versions, url, output_root, ""))
    return Fetched(project, None)


def _parse_json(body: bytes, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise UpstreamError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise UpstreamError(f"{where}: not a PEP 691 project page (no files list)")
    api = str((data.get("meta") or {}).get("api-version", "1.0"))
    if not api.startswith("1."):
        raise UpstreamError(f"{where}: api-version {api} is not one kiln understands")
    versions = [v for v in data.get("versions", []) if isinstance(v, str)]
    return [f for f in data["files"] if isinstance(f, dict)], versions


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._current: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag != "a" or self._current is None:
            return
        attrs, self._current = self._current, None
        href = attrs.get("href") or ""
        url, _, fragment = href.partition("#")
        algorithm, _, digest = fragment.partition("=")
        record: dict[str, Any] = {"filename": self._text.strip(), "url": url,
                                  "hashes": {algorithm: digest} if digest else {}}
        if attrs.get("data-requires-python"):
            record["requires-python"] = attrs["data-requires-python"]
        if "data-yanked" in attrs:
            record["yanked"] = attrs["data-yanked"] or True
        metadata = attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")
        if metadata:
            name, _, value = metadata.partition("=")
            record["core-metadata"] = {name: value} if value else True
        self.found.append(record)


def _parse_html(body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    return parser.found, []


def _resolve(files: list[dict[str, Any]], versions: list[str], page_url: str, output_root: Path,
             etag: str) -> ProjectUpstream:
    """Absolute URLs, only files with a hash clients can check, only the keys kiln knows."""
    out = []
    for f in files:
        filename, url, hashes = f.get("filename"), f.get("url"), f.get("hashes")
        if not (isinstance(filename, str) and isinstance(url, str) and isinstance(hashes, dict)):
            continue
        hashes = {k.lower(): v for k, v in hashes.items()
                  if isinstance(v, str) and k.lower() in hashlib.algorithms_guaranteed}
        if not hashes or "/" in filename:
            continue  # a link without a checkable hash is not offered to clients
        record: dict[str, Any] = {"filename": filename,
                                  "url": _link(urllib.parse.urljoin(page_url, url), output_root),
                                  "hashes": hashes}
        for key in _COPIED_KEYS:
            if key in f:
                record[key] = f[key]
        provenance = f.get("provenance")
        if isinstance(provenance, str):
            record["provenance"] = _link(urllib.parse.urljoin(page_url, provenance), output_root)
        out.append(record)
    return ProjectUpstream(tuple(out), tuple(versions), etag)


def _link(url: str, output_root: Path) -> str:
    """A file:// URL inside the output folder becomes relative to ``simple/<project>/``."""
    if not url.startswith("file:"):
        return url
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    root = output_root.resolve()
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return url
    return "../../" + urllib.parse.quote(os.fspath(rel))


def digest(value: ProjectUpstream | None) -> str:
    if value is None:
        return ""
    return hashlib.sha256(json.dumps([value.files, value.versions], sort_keys=True)
                          .encode()).hexdigest()

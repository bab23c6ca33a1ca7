"""``kiln publish``: copy an index to a folder or an S3-compatible bucket, safely.

Order is what keeps clients safe while a publish runs: every new or changed file
(wheels, ``.metadata``, ``.provenance``) goes first, then the project pages, then the
project list, then stale objects are deleted — so no page ever links to a file that
is not there yet, and a file is removed only once no page links to it. Only what
changed is sent: a file whose size and MD5 match the target's copy (S3's ETag, or
the manifest the last publish left, ``.kiln-publish.json``) is skipped, so a run
that was interrupted picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kiln.errors import PublishError, UsageError
from kiln.index.media import content_type_for, is_page
from kiln.progress import reporter

MANIFEST = ".kiln-publish.json"
MANIFEST_KIND = "https://kiln.dev/publish-manifest/v1"
THREADS = 8
_CHUNK = 1 << 20
# Stages, published in this order.
FILES, PROJECT_PAGES, PROJECT_LIST = 0, 1, 2


@dataclass(frozen=True)
class LocalFile:
    key: str  # path in the target, "/"-separated
    path: Path
    size: int
    md5: str
    stage: int

    @property
    def content_type(self) -> str:
        return content_type_for(self.key)

    @property
    def cache_control(self) -> str:
        if self.stage != FILES or self.key.endswith(".provenance"):
            return "public, max-age=60"
        # a file path never gets other bytes (see kiln.index.tree): cache it for good
        return "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Remote:
    size: int
    md5: str | None  # None when the target cannot tell (multipart ETag, plain folder)


class Target(Protocol):
    name: str

    def listing(self) -> dict[str, Remote]: ...
    def read_manifest(self) -> dict[str, Any] | None: ...
    def same_content(self, key: str, local: LocalFile) -> bool: ...
    def upload(self, local: LocalFile) -> None: ...
    def delete(self, key: str) -> None: ...
    def write_manifest(self, body: bytes) -> None: ...


@dataclass(frozen=True)
class Action:
    verb: str  # "upload" or "delete"
    key: str
    size: int = 0


@dataclass
class PublishReport:
    target: str
    dry_run: bool
    uploads: list[Action] = field(default_factory=list)
    deletions: list[Action] = field(default_factory=list)
    unchanged: int = 0
    failed: int = 0

    @property
    def bytes_uploaded(self) -> int:
        return sum(a.size for a in self.uploads)

    def actions(self) -> list[Action]:
        return self.uploads + self.deletions

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "dry_run": self.dry_run,
                "uploaded": [a.key for a in self.uploads],
                "deleted": [a.key for a in self.deletions],
                "bytes_uploaded": self.bytes_uploaded, "unchanged": self.unchanged}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """Regular files under ``folder`` (following the index's symlinks), skipping dot entries."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, folder)
        base = prefix if rel == "." else f"{prefix}{rel.replace(os.sep, '/')}/"
        for name in sorted(filenames):
            if not name.startswith("."):
                yield base + name, Path(dirpath, name)


def snapshot(root: Path) -> list[LocalFile]:
    """Every file of the index as it is now: ``simple`` is resolved once, so a
    ``kiln index`` running meanwhile cannot mix two generations into one publish."""
    simple = root / "simple"
    if not simple.is_dir():
        raise UsageError(f"{root}: not an index (no simple/ inside)",
                         hint=f"write one first: kiln index WHEELHOUSE -o {root}")
    generation = simple.resolve()
    found: list[LocalFile] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name == "simple":
            continue
        pairs = _walk(Path(entry.path), entry.name + "/") if entry.is_dir() else \
            [(entry.name, Path(entry.path))]
        for key, path in pairs:
            found.append(LocalFile(key, path, path.stat().st_size, _md5(path), FILES))
    for key, path in _walk(generation, "simple/"):
        stage = PROJECT_LIST if key.count("/") == 1 else PROJECT_PAGES
        found.append(LocalFile(key, path, path.stat().st_size, _md5(path), stage))
    return found


def without_quorum(root: Path, needed: int) -> list[str]:
    """kiln's files in the index at ``root`` that fewer than ``needed`` builders vouch for.

    The index says who vouches for each file (``_kiln.builders``) when ``kiln index`` was
    told whom to trust; a file it did not check counts as vouched for by nobody.
    """
    import json

    short = []
    for page in sorted((root / "simple").glob("*/index.json")):
        try:
            files = json.loads(page.read_bytes()).get("files") or []
        except (OSError, ValueError) as exc:
            raise PublishError(f"{page}: cannot read the page ({exc})",
                               hint="run `kiln index` again") from exc
        for entry in files:
            kiln = entry.get("_kiln")
            if isinstance(kiln, dict) and len(kiln.get("builders") or []) < needed:
                short.append(str(entry.get("filename")))
    return short


def publish(root: Path, target: Target, *, dry_run: bool = False,
            delete: bool = True) -> PublishReport:
    """Bring ``target`` up to date with the index in ``root``; files first, pages last."""
    reporter().stage("publish", f"{root} → {target.name}")
    local = snapshot(root)
    remote = target.listing()
    manifest = target.read_manifest() or {}
    published: dict[str, Any] = manifest.get("files", {}) if isinstance(manifest, dict) else {}
    report = PublishReport(target.name, dry_run)
    pending: list[LocalFile] = []
    for item in local:
        there = remote.get(item.key)
        if there is not None and there.size == item.size:
            known = there.md5 or (published.get(item.key) or {}).get("md5")
            if known == item.md5 or (known is None and target.same_content(item.key, item)):
                report.unchanged += 1
                continue
        pending.append(item)
    keys = {item.key for item in local}
    stale = sorted((k for k in published if k not in keys and k in remote),
                   key=lambda k: (not is_page(k), k)) if delete else []
    report.uploads = [Action("upload", i.key, i.size)
                      for i in sorted(pending, key=lambda i: (i.stage, i.key))]
    report.deletions = [Action("delete", k) for k in stale]
    if dry_run:
        return report
    for stage in (FILES, PROJECT_PAGES, PROJECT_LIST):
        batch = [i for i in pending if i.stage == stage]
        if batch:
            reporter().note(f"uploading {len(batch):,} {_STAGE_NAMES[stage]}")
            _upload_all(target, batch)
    for key in stale:
        try:
            target.delete(key)
        except Exception as exc:
            raise PublishError(f"{target.name}: cannot delete {key}: {exc}",
                               hint="run the same command again") from exc
    body = {"kind": MANIFEST_KIND,
            "files": {i.key: {"md5": i.md5, "size": i.size} for i in local}}
    target.write_manifest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return report


_STAGE_NAMES = {FILES: "file(s)", PROJECT_PAGES: "project page(s)",
                PROJECT_LIST: "project list page(s)"}


def _upload_all(target: Target, batch: list[LocalFile]) -> None:
    """Upload one stage, a few at a time; the next stage starts only when all are in."""
    def one(item: LocalFile) -> None:
        try:
            target.upload(item)
        except PublishError:
            raise
        except Exception as exc:
            raise PublishError(f"{target.name}: upload of {item.key} failed: {exc}",
                               hint="run the same command again: what is already there "
                                    "is skipped") from exc

    with ThreadPoolExecutor(THREADS) as pool:
        for _ in pool.map(one, batch):
            pass


class FolderTarget:
    """A folder on disk (a web server's document root, a mounted share)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def listing(self) -> dict[str, Remote]:
        if not self.path.is_dir():
            return {}
        return {key: Remote(p.stat().st_size, None) for key, p in _walk(self.path, "")}

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / MANIFEST).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("kind") == MANIFEST_KIND else None

    def same_content(self, key: str, local: LocalFile) -> bool:
        return _md5(self.path / key) == local.md5

    def upload(self, local: LocalFile) -> None:
        from kiln.files import copy_atomic

        copy_atomic(local.path, self.path / key_path(local.key))

    def delete(self, key: str) -> None:
        (self.path / key_path(key)).unlink(missing_ok=True)

    def write_manifest(self, body: bytes) -> None:
        from kiln.files import write_atomic

        write_atomic(self.path / MANIFEST, body)


def key_path(key: str) -> Path:
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PublishError(f"refusing the key {key!r}: not a plain relative path")
    return Path(*parts)


def open_target(spec: str, *, endpoint_url: str | None = None,
                region: str | None = None) -> Target:
    """A folder path, or ``s3://bucket/prefix``."""
    if spec.startswith("s3://"):
        from kiln.publish_s3 import S3Target

        return S3Target.from_url(spec, endpoint_url=endpoint_url, region=region)
    if "://" in spec:
        raise UsageError(f"{spec}: kiln publishes to a folder or to s3://bucket/prefix",
                         hint="for another store, publish to a folder and sync it")
    return FolderTarget(Path(spec))

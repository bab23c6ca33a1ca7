"""Digests streamed from disk and writes that land whole or not at all."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A file kiln made or used, named by its digest."""

    name: str
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path) -> Artifact:
        return cls(name=path.name, sha256=sha256_file(path), size=path.stat().st_size)


@contextmanager
def atomic_writer(target: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a file that replaces ``target`` when the block ends without error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(target: Path, data: bytes | str, mode: int = 0o644) -> None:
    raw = data.encode() if isinstance(data, str) else data
    with atomic_writer(target, mode) as fh:
        fh.write(raw)


def write_if_changed(target: Path, text: str, mode: int = 0o644) -> None:
    """``text`` at ``target`` with ``mode``, written (atomically) only if it is not already."""
    try:
        same = target.read_text() == text and (target.stat().st_mode & 0o777) == mode
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        write_atomic(target, text, mode=mode)


def write_new(target: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``target`` only if it does not exist yet (never overwrites what a user had)."""
    raw = data.encode() if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.link(tmp, target)  # fails with FileExistsError instead of replacing
    finally:
        Path(tmp).unlink(missing_ok=True)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary file in the target's folder."""
    with source.open("rb") as src, atomic_writer(target) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def cache_home() -> Path:
    """Where kiln keeps downloads, environments and finished builds (``KILN_CACHE_DIR``)."""
    explicit = os.environ.get("KILN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kiln"


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (made if missing) for the ``with`` body:
    other kiln processes filling the same cache entry wait their turn."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

"""Extract sdists without trusting them: nothing lands outside the folder, nothing huge at all."""

from __future__ import annotations

import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kiln.errors import UnsafeArchiveError

MAX_TOTAL_BYTES = 4 << 30  # an sdist that unpacks to more than 4 GiB is not an sdist
MAX_MEMBERS = 200_000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_members: int = MAX_MEMBERS


@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # "file" | "dir" | "symlink" | "hardlink"
    size: int
    mode: int
    link: str = ""


def _clean_name(archive: Path, name: str) -> str:
    """The member's path, refused if it is absolute or climbs out with '..'."""
    if "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(
            f"{archive.name}: member {name!r} has a backslash or NUL in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{archive.name}: member {name!r} climbs out of the folder with '..'")
    if not parts:
        return ""
    return "/".join(parts)


def _check_link(archive: Path, member: str, target: str) -> None:
    if target.startswith("/"):
        raise UnsafeArchiveError(
            f"{archive.name}: link {member!r} points to the absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member), target))
    if resolved == ".." or resolved.startswith(("../", "/")):
        raise UnsafeArchiveError(f"{archive.name}: link {member!r} points outside the archive "
                                 f"({target!r})")


def _tar_members(archive: Path, tar: tarfile.TarFile) -> Iterator[tuple[_Member, tarfile.TarInfo]]:
    for info in tar:
        name = _clean_name(archive, info.name)
        if info.isdir():
            kind = "dir"
        elif info.isreg():
            kind = "file"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            raise UnsafeArchiveError(
                f"{archive.name}: member {info.name!r} is a device, fifo or other special file")
        yield _Member(name, kind, info.size, info.mode, info.linkname), info


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[tuple[_Member, zipfile.ZipInfo]]:
    for info in zf.infolist():
        name = _clean_name(archive, info.filename)
        mode = (info.external_attr >> 16) & 0xFFFF
        if info.is_dir():
            kind = "dir"
        elif stat.S_ISLNK(mode):
            kind = "symlink"
        elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a special file")
        else:
            kind = "file"
        link = zf.read(info).decode("utf-8", "replace") if kind == "symlink" else ""
        yield _Member(name, kind, info.file_size, mode & 0o7777 or 0o644, link), info


def _inside(root: Path, path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def _copy_capped(src: IO[bytes], dst: IO[bytes], budget: list[int], archive: Path,
                 cap: int) -> None:
    while chunk := src.read(_CHUNK):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise UnsafeArchiveError(f"{archive.name}: unpacks to more than the size cap "
                                     f"({cap:,} bytes); refusing an archive bomb")
        dst.write(chunk)


def extract(archive: Path, dest: Path, limits: Limits = Limits()) -> Path:
    """Unpack ``archive`` into the empty (or new) folder ``dest``; return the sdist's top folder.

    Refuses absolute names, '..', links leaving the folder, devices, and archives that
    unpack past the size or member caps. On refusal ``dest`` is removed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise UnsafeArchiveError(
            f"{archive.name}: refusing to unpack into {dest}, which is not empty")
    try:
        _extract(archive, dest.resolve(), limits)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _extract(archive: Path, root: Path, limits: Limits) -> None:
    links: list[Path] = []
    _extract_members(archive, root, limits, links)
    # Each link was checked as written, but a later link can re-point an earlier one
    # ("a/../.." is inside until "a" becomes a link to ".."): judge them all at the end.
    for link in links:
        if not _inside(root, link):
            raise UnsafeArchiveError(
                f"{archive.name}: link {link.relative_to(root).as_posix()!r} leads outside the "
                "folder through other links")


def _extract_members(archive: Path, root: Path, limits: Limits, links: list[Path]) -> None:
    budget = [limits.max_total_bytes]
    count = 0
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member, info in _zip_members(archive, zf):
                count = _count(archive, count, limits)
                _place(archive, root, member, lambda i=info: zf.open(i), budget, limits, links)
        return
    # A Rust crate (.crate) is a gzipped tar.
    if not name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".crate")):
        raise UnsafeArchiveError(f"{archive.name}: not an sdist archive kiln knows "
                                 "(.tar.gz, .tar.bz2, .tar.xz, .zip)")
    try:
        with tarfile.open(archive) as tar:
            for member, tinfo in _tar_members(archive, tar):
                count = _count(archive, count, limits)

                def opener(t: tarfile.TarInfo = tinfo) -> IO[bytes]:
                    fh = tar.extractfile(t)
                    assert fh is not None
                    return fh

                _place(archive, root, member, opener, budget, limits, links)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArchiveError(f"{archive.name}: broken archive: {exc}") from exc


def _count(archive: Path, count: int, limits: Limits) -> int:
    count += 1
    if count > limits.max_members:
        raise UnsafeArchiveError(f"{archive.name}: more than {limits.max_members} members")
    return count


def _place(archive: Path, root: Path, member: _Member, opener: object, budget: list[int],
           limits: Limits, links: list[Path]) -> None:
    if not member.name:
        return
    target = root / member.name
    if not _inside(root, target.parent):
        raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} would be written "
                                 "through a link that leaves the folder")
    if member.kind == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(root, target.parent):
        raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} would be written "
                                 "through a link that leaves the folder")
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} replaces a folder")
        target.unlink()
    if member.kind == "symlink":
        _check_link(archive, member.name, member.link)
        os.symlink(member.link, target)
        links.append(target)
        return
    if member.kind == "hardlink":
        source_name = _clean_name(archive, member.link)
        source = root / source_name
        if not _inside(root, source) or not source.is_file():
            raise UnsafeArchiveError(f"{archive.name}: hard link {member.name!r} points to "
                                     f"{member.link!r}, which is not a file in the archive")
        shutil.copyfile(source, target)
        os.chmod(target, stat.S_IMODE(source.stat().st_mode))
        return
    if member.size > limits.max_total_bytes:
        raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} claims {member.size} "
                                 "bytes, past the size cap")
    assert callable(opener)
    with opener() as src, open(target, "xb") as dst:
        _copy_capped(src, dst, budget, archive, limits.max_total_bytes)
    # setuid, setgid and sticky bits never survive; the owner can always read and write.
    os.chmod(target, (member.mode & 0o777) | 0o600)


@contextmanager
def read_members(archive: Path, max_bytes: int = 1 << 20
                 ) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """An sdist's member names and a reader for one of them, nothing extracted.

    A read returns at most ``max_bytes``: this is for looking at small files
    (pyproject.toml, top_level.txt), never for unpacking.
    """
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            def read_zip(name: str) -> bytes:
                with zf.open(name) as fh:
                    return fh.read(max_bytes)

            yield zf.namelist(), read_zip
        return
    with tarfile.open(archive) as tar:
        def read_tar(name: str) -> bytes:
            fh = tar.extractfile(name)
            return fh.read(max_bytes) if fh else b""

        yield tar.getnames(), read_tar

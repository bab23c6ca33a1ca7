"""Wheel files: their names, their metadata, and one canonical zip layout."""

from __future__ import annotations

import base64
import email.parser
import hashlib
import os
import re
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from kiln.errors import KilnError
from kiln.files import atomic_writer, sha256_file

ZIP_EPOCH_MIN = 315532800  # 1980-01-01, the earliest time a zip entry can hold


@dataclass(frozen=True)
class WheelName:
    filename: str
    name: str  # normalised project name
    version: str
    build: str
    tags: frozenset[Tag]

    @property
    def python_tag(self) -> str:
        return ".".join(sorted({t.interpreter for t in self.tags}))

    @property
    def abi_tag(self) -> str:
        return ".".join(sorted({t.abi for t in self.tags}))

    @property
    def platform_tags(self) -> tuple[str, ...]:
        return tuple(sorted({t.platform for t in self.tags}))

    @property
    def is_pure(self) -> bool:
        return self.platform_tags == ("any",)


def parse_name(filename: str) -> WheelName:
    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise KilnError(f"{filename}: not a valid wheel file name: {exc}") from exc
    return WheelName(filename, str(name), str(version), "".join(map(str, build)) if build else "",
                     frozenset(tags))


def dist_info_dir(zf: zipfile.ZipFile) -> str:
    for name in zf.namelist():
        top = name.split("/", 1)[0]
        if top.endswith(".dist-info") and name == f"{top}/METADATA":
            return top
    raise KilnError(f"{zf.filename}: no .dist-info/METADATA inside")


def read_metadata(wheel: Path) -> bytes:
    """The wheel's METADATA file, as bytes (the PEP 658 file)."""
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(f"{dist_info_dir(zf)}/METADATA")


def metadata_fields(raw: bytes) -> email.message.Message:
    return email.parser.BytesParser().parsebytes(raw, headersonly=True)


def _order(name: str, dist_info: str) -> tuple[int, str]:
    # Contents first, then .dist-info, RECORD last (as the wheel spec recommends).
    if name == f"{dist_info}/RECORD":
        return (2, name)
    if name.startswith(dist_info + "/"):
        return (1, name)
    return (0, name)


def canonicalise(wheel: Path, epoch: int) -> bool:
    """Rewrite ``wheel`` with sorted entries, one timestamp and normalised modes.

    Only zip metadata changes: every member's bytes stay as they were, so RECORD still
    holds. Returns whether the file changed.
    """
    stamp = time.gmtime(max(epoch, ZIP_EPOCH_MIN))[:6]
    with zipfile.ZipFile(wheel) as src:
        infos = [i for i in src.infolist() if not i.is_dir()]
        dist_info = dist_info_dir(src)
        infos.sort(key=lambda i: _order(i.filename, dist_info))
        tmp = wheel.with_name(wheel.name + ".canonical")
        with atomic_writer(tmp) as raw, zipfile.ZipFile(raw, "w") as dst:
            for info in infos:
                mode = (info.external_attr >> 16) & 0o777
                exe = bool(mode & 0o111)
                out = zipfile.ZipInfo(info.filename, date_time=stamp)
                out.create_system = 3  # unix, so the mode bits mean what they say
                out.external_attr = ((stat.S_IFREG | (0o755 if exe else 0o644)) << 16)
                out.compress_type = zipfile.ZIP_DEFLATED
                with src.open(info) as member, dst.open(out, "w") as target:
                    while chunk := member.read(1 << 20):
                        target.write(chunk)
    same = sha256_file(tmp) == sha256_file(wheel)
    if same:
        tmp.unlink()
        return False
    os.replace(tmp, wheel)
    return True


# zig 0.15 names the folder of each compilation's generated builtin.zig (``<cache>/b/<32 hex>``)
# by a digest that differs from one zig process to the next for the same compilation, and its
# compiler_rt, built in the cache, carries that folder in its debug info: two clean builds of
# the same wheel differed in those 32 characters once the wheel linked a compiler_rt function
# (grpcio: 128-bit division). The folder is zig's scratch space, like a build folder a
# prefix map hides; the digest becomes zeros, the same length, so no offset moves.
_ZIG_BUILTIN = re.compile(rb"(/zig-cache/b/|/zigcache-[0-9a-f]{12}/[a-z]+/b/)[0-9a-f]{32}(?=\x00)")
_ZEROS = b"0" * 32


def normalise_zig_builtin_paths(wheel: Path) -> list[str]:
    """Rewrite the digests of zig's builtin folders in ``wheel``'s ELF members (their RECORD
    lines follow); return the members that changed."""
    with zipfile.ZipFile(wheel) as src:
        dist_info = dist_info_dir(src)
        changed: dict[str, bytes] = {}
        for info in src.infolist():
            if info.is_dir() or info.file_size < 4:
                continue
            data = src.read(info)
            if data[:4] != b"\x7fELF":
                continue
            fixed = _ZIG_BUILTIN.sub(lambda m: m.group(1) + _ZEROS, data)
            if fixed != data:
                changed[info.filename] = fixed
        if not changed:
            return []
        record_name = f"{dist_info}/RECORD"
        lines = src.read(record_name).decode().splitlines()
        for i, line in enumerate(lines):
            path = line.rsplit(",", 2)[0]
            if path in changed:
                digest = base64.urlsafe_b64encode(hashlib.sha256(changed[path]).digest())
                lines[i] = f"{path},sha256={digest.decode().rstrip('=')},{len(changed[path])}"
        tmp = wheel.with_name(wheel.name + ".zig-paths")
        with atomic_writer(tmp) as raw, zipfile.ZipFile(raw, "w") as dst:
            for info in src.infolist():
                if info.filename in changed:
                    data = changed[info.filename]
                elif info.filename == record_name:
                    data = ("\n".join(lines) + "\n").encode()
                else:
                    data = src.read(info)
                dst.writestr(info, data)
    os.replace(tmp, wheel)
    return sorted(changed)


def elf_members(wheel: Path) -> list[str]:
    """Members of the wheel that are ELF files (extension modules, grafted libraries)."""
    found = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.file_size < 4:
                continue
            with zf.open(info) as fh:
                if fh.read(4) == b"\x7fELF":
                    found.append(info.filename)
    return found

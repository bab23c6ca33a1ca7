"""Fetch crates by Cargo.lock's checksums into kiln's cache, before the sealed build.

Each crate is downloaded once, from a registry in crates.io's layout (a URL template
with ``{name}`` and ``{version}``), checked against its checksum and unpacked safely
beside it with the ``.cargo-checksum.json`` cargo's directory source wants. A second build
finds it by checksum and fetches nothing; the .crate file is checked again every time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiln import http
from kiln.archive import extract
from kiln.crates.lockfile import LockedCrate, RustSources
from kiln.errors import FetchError, HashMismatchError, UnsafeArchiveError, UsageError
from kiln.files import exclusive, sha256_file, write_atomic
from kiln.progress import reporter

DEFAULT_CRATES_URL = "https://static.crates.io/crates/{name}/{name}-{version}.crate"
CRATES_URL_ENV = "KILN_CRATES_URL"
CHECKSUM_FILE = ".cargo-checksum.json"
_LOOPBACK = ("http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/")
_REGISTRY_HINT = (f"kiln fetches the crates Cargo.lock pins before the build, which has no "
                  f"network: point {CRATES_URL_ENV} (or [build] crates-url) at a registry or "
                  f"mirror this machine reaches, in crates.io's layout ({DEFAULT_CRATES_URL})")


@dataclass(frozen=True)
class FetchedCrate:
    """A crate in kiln's cache: its checked .crate file and its unpacked folder."""

    crate: LockedCrate
    url: str  # where it was (or would have been) fetched from
    archive: Path
    unpacked: Path  # <name>-<version>/, with .cargo-checksum.json


@dataclass(frozen=True)
class VendoredCrates:
    """Every registry crate an sdist's Cargo.lock files pin, fetched and checked."""

    registry: str  # the URL template they were fetched through
    locks: tuple[str, ...]
    crates: tuple[FetchedCrate, ...]


def check_crates_url(template: str, where: str) -> str:
    """``template`` if it is a URL kiln can fetch crates from, naming both placeholders."""
    if not template.startswith(("https://", "file://", *_LOOPBACK)):
        raise UsageError(f"{where}: {template!r} must start with https:// or file:// "
                         "(or http:// on loopback)", hint=f"crates.io: {DEFAULT_CRATES_URL}")
    if "{name}" not in template or "{version}" not in template:
        raise UsageError(f"{where}: {template!r} must name {{name}} and {{version}}",
                         hint=f"crates.io's layout: {DEFAULT_CRATES_URL}")
    return template


def crate_url(template: str, crate: LockedCrate) -> str:
    quote = urllib.parse.quote
    return template.replace("{name}", quote(crate.name)).replace("{version}",
                                                                 quote(crate.version))


def registry_name(template: str) -> str:
    """The registry as a person reads it: the template up to its first placeholder."""
    return template.split("{", 1)[0]


def fetch_crates(rust: RustSources, template: str, cache: Path) -> VendoredCrates:
    """Every crate ``rust`` pins, in ``cache`` and checked; the first that fails stops it."""
    if rust.vendored_by:
        reporter().note(f"the sdist carries its Rust crates ({rust.vendored_by} replaces "
                        "crates.io): nothing to fetch")
    elif rust.crates:
        reporter().stage("crates", f"{len(rust.crates)} from {registry_name(template)}")
    fetched = tuple(fetch_crate(crate, template, cache) for crate in rust.crates)
    return VendoredCrates(registry=template, locks=rust.locks, crates=fetched)


def fetch_crate(crate: LockedCrate, template: str, cache: Path) -> FetchedCrate:
    """One crate, from the cache when its checksum is there, else from the registry."""
    folder = cache / "crates" / crate.checksum
    fetched = FetchedCrate(crate, crate_url(template, crate),
                           archive=folder / f"{crate.folder}.crate",
                           unpacked=folder / crate.folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    try:
        with exclusive(lock):
            if not fetched.archive.is_file():
                _download(fetched, template)
            check_checksum(crate, fetched.archive)
            if not (fetched.unpacked / CHECKSUM_FILE).is_file():
                unpack_crate(crate, fetched.archive, fetched.unpacked)
    except FetchError:
        # Nothing of a crate that could not be fetched stays behind.
        if not any(p != lock for p in folder.iterdir()):
            lock.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return fetched


def _download(fetched: FetchedCrate, template: str) -> None:
    crate = fetched.crate
    part = fetched.archive.with_name(fetched.archive.name + ".download")
    part.unlink(missing_ok=True)
    try:
        http.download(fetched.url, part,
                      what=f"crate {crate.label} from the crate registry {registry_name(template)}")
    except FetchError as exc:
        for leftover in (part, part.with_name(part.name + ".lock")):
            leftover.unlink(missing_ok=True)
        raise FetchError(exc.message, hint=_REGISTRY_HINT) from exc
    os.replace(part, fetched.archive)


def check_checksum(crate: LockedCrate, archive: Path) -> None:
    """Refuse (and remove) a .crate file whose sha256 is not Cargo.lock's checksum."""
    actual = sha256_file(archive)
    if actual != crate.checksum:
        archive.unlink(missing_ok=True)
        raise HashMismatchError(
            f"crate {crate.label}: the .crate file has sha256 {actual}, but Cargo.lock's "
            f"checksum is {crate.checksum}",
            hint="the registry or mirror served other bytes than crates.io published: the "
                 "download was tampered with or corrupted, or the mirror is wrong")


def unpack_crate(crate: LockedCrate, archive: Path, target: Path) -> None:
    """Unpack ``archive`` (checked) into ``target`` with its .cargo-checksum.json, whole or not
    at all; refuse a crate that writes outside its folder or holds anything but it."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        top = extract(archive, staging / "x")
        if top.name != crate.folder or top.parent != staging / "x":
            raise UnsafeArchiveError(f"crate {crate.label}: {archive.name} does not hold one "
                                     f"folder {crate.folder}/, as a .crate file does")
        write_atomic(top / CHECKSUM_FILE, cargo_checksums(top, crate.checksum))
        if target.exists():
            shutil.rmtree(target)  # a half-written one from an older kiln
        top.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cargo_checksums(folder: Path, package_sha256: str,
                    digest: Callable[[Path], str] = sha256_file) -> str:
    """The .cargo-checksum.json of an unpacked crate: each file's sha256, and the crate's."""
    files = {path.relative_to(folder).as_posix(): digest(path)
             for path in sorted(folder.rglob("*"))
             if path.is_file() and path.name != CHECKSUM_FILE}
    return json.dumps({"files": files, "package": package_sha256}, sort_keys=True)

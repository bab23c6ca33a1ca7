"""What an sdist's Cargo.lock files pin: each registry crate by name, version and checksum.

Path crates are part of the sdist and need nothing; crates from git or from a registry
other than crates.io cannot be fetched by checksum, and are refused by name.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln import toml
from kiln.archive import read_members
from kiln.errors import BuildError, UnsupportedError
from kiln.pep517 import backend_of, requirement_name, requirements_of, sdist_pyproject

# How Cargo.lock names crates.io: the git index (every Cargo.lock) or the sparse one.
CRATES_IO_SOURCES = ("registry+https://github.com/rust-lang/crates.io-index",
                     "sparse+https://index.crates.io/")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_CRATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_CRATE_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,100}\Z")
_MAX_LOCK_BYTES = 8 << 20
_UNSUPPORTED_HINT = ("kiln builds offline from crates pinned by checksum in Cargo.lock (from "
                     "crates.io or a mirror of it) and from path crates inside the sdist; "
                     "ask upstream to publish the crate, or to vendor it into the sdist")


@dataclass(frozen=True)
class LockedCrate:
    """One registry crate as Cargo.lock pins it."""

    name: str
    version: str
    checksum: str  # sha256 of the .crate file
    source: str  # "registry+https://github.com/rust-lang/crates.io-index"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def folder(self) -> str:
        """The crate's folder: in its .crate file, and in the vendor folder."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class RustSources:
    """An sdist's Rust: where its Cargo.lock files are, and the registry crates they pin."""

    locks: tuple[str, ...]  # paths inside the sdist's top folder ("src/rust/Cargo.lock")
    crates: tuple[LockedCrate, ...]  # sorted by name and version, each once
    # The sdist's own cargo configuration that replaces crates.io with crates it carries
    # (`cargo vendor`): cargo reads it before kiln's, so nothing is fetched.
    vendored_by: str = ""


def parse_cargo_lock(text: str, where: str) -> tuple[LockedCrate, ...]:
    """The registry crates a Cargo.lock pins; path crates are left out, git crates refused."""
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise BuildError(f"{where}: not a Cargo.lock kiln can read: {exc}") from exc
    packages = data.get("package", [])
    # Cargo.lock version 1 kept the checksums apart, in [metadata].
    metadata = data.get("metadata", {})
    if not isinstance(packages, list) or not isinstance(metadata, dict):
        raise BuildError(f"{where}: not a Cargo.lock kiln can read: [[package]] must be a list")
    crates = (_locked_crate(entry, metadata, where) for entry in packages)
    return tuple(crate for crate in crates if crate is not None)


def _locked_crate(entry: Any, metadata: dict[str, Any], where: str) -> LockedCrate | None:
    if not isinstance(entry, dict):
        raise BuildError(f"{where}: a [[package]] entry is not a table")
    name, version, source = entry.get("name"), entry.get("version"), entry.get("source")
    if not isinstance(name, str) or not _CRATE_NAME.match(name) \
            or not isinstance(version, str) or not _CRATE_VERSION.match(version):
        raise BuildError(f"{where}: a [[package]] entry has no valid name and version "
                         f"({name!r} {version!r})")
    if source is None:
        return None  # a path crate: its files are in the sdist
    if not isinstance(source, str):
        raise BuildError(f"{where}: crate {name} {version}: source must be a string")
    if source.startswith("git+"):
        raise UnsupportedError(
            f"{where}: crate {name} {version} comes from git ({source.removeprefix('git+')}), "
            "which kiln cannot fetch by checksum", hint=_UNSUPPORTED_HINT)
    if source not in CRATES_IO_SOURCES:
        raise UnsupportedError(
            f"{where}: crate {name} {version} comes from the registry {source}; kiln fetches "
            "crates.io crates only (from crates.io or a mirror of it)", hint=_UNSUPPORTED_HINT)
    checksum = entry.get("checksum", metadata.get(f"checksum {name} {version} ({source})"))
    if not isinstance(checksum, str) or not _SHA256.match(checksum):
        raise BuildError(f"{where}: crate {name} {version} has no sha256 checksum",
                         hint="kiln fetches only crates that Cargo.lock pins by checksum")
    return LockedCrate(name, version, checksum, source)


def has_rust(sdist: Path) -> bool:
    """Whether the sdist's build compiles Rust (see :func:`_builds_rust`)."""
    with read_members(sdist, max_bytes=_MAX_LOCK_BYTES) as (names, read):
        return _builds_rust({_inside_top(name): name for name in names}, read)


# Build requirements that compile a package's Rust with cargo.
_RUST_BUILDERS = frozenset({"maturin", "setuptools-rust"})


def _builds_rust(inside: dict[str, str], read: Callable[[str], bytes]) -> bool:
    """Whether the sdist's own build compiles Rust: a Cargo.toml at its top, maturin or
    setuptools-rust among its build requirements or as its backend, or a setup.py that
    imports setuptools_rust. A Cargo.toml deeper down in a package built otherwise is data:
    numpy vendors meson, whose test cases hold Cargo.toml and Cargo.lock files."""
    if not any(posixpath.basename(rel) == "Cargo.toml" for rel in inside):
        return False
    if "Cargo.toml" in inside:
        return True
    if "setup.py" in inside and b"setuptools_rust" in read(inside["setup.py"]):
        return True
    pyproject = sdist_pyproject(list(inside.values()), read)
    if backend_of(pyproject).split(".")[0] == "maturin":
        return True
    return any(requirement_name(r) in _RUST_BUILDERS for r in requirements_of(pyproject))


def rust_sources(sdist: Path) -> RustSources | None:
    """The Rust of an sdist, read without unpacking it; None when its build compiles none."""
    with read_members(sdist, max_bytes=_MAX_LOCK_BYTES) as (names, read):
        inside = {_inside_top(name): name for name in names}
        if not _builds_rust(inside, read):
            return None
        locks = sorted(rel for rel in inside if posixpath.basename(rel) == "Cargo.lock")
        for rel in sorted(inside):
            if _is_cargo_config(rel) and _replaces_crates_io(read(inside[rel])):
                return RustSources(tuple(locks), (), vendored_by=rel)
        found: dict[str, LockedCrate] = {}
        for rel in locks:
            where = f"{sdist.name}: {rel}"
            text = read(inside[rel]).decode("utf-8", "replace")
            for crate in parse_cargo_lock(text, where):
                _add(found, crate, where)
    return RustSources(tuple(locks), tuple(found[k] for k in sorted(found)))


def _is_cargo_config(rel: str) -> bool:
    return rel.endswith((".cargo/config.toml", ".cargo/config"))


def _replaces_crates_io(text: bytes) -> bool:
    """Whether a cargo configuration points crates.io elsewhere (at vendored crates)."""
    try:
        config = toml.loads(text.decode("utf-8", "replace"))
    except toml.TOMLDecodeError:
        return False
    source = config.get("source")
    crates_io = source.get("crates-io") if isinstance(source, dict) else None
    return isinstance(crates_io, dict) and "replace-with" in crates_io


def _inside_top(name: str) -> str:
    """A member's path inside the sdist's top folder (``pkg-1.0/src/Cargo.lock`` → ``src/…``)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts[1:]) if len(parts) > 1 else "/".join(parts)


def _add(found: dict[str, LockedCrate], crate: LockedCrate, where: str) -> None:
    known = found.setdefault(crate.folder, crate)
    if known.checksum != crate.checksum:
        raise BuildError(f"{where}: crate {crate.label} has checksum {crate.checksum}, but "
                         f"another Cargo.lock in the sdist gives {known.checksum}")

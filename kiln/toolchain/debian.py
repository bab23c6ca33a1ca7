"""Debian's archive, read the way apt reads it, without apt and without root.

A suite's ``InRelease`` is checked with ``gpgv`` against Debian's archive keyring; the
signed text gives the sha256 of the ``Packages`` index; the index gives the sha256 of
every ``.deb``. Nothing is used whose digest was not checked along that chain.
"""

from __future__ import annotations

import email.utils
import lzma
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kiln import http, proc
from kiln.errors import EnvironmentSetupError, FetchError, HashMismatchError, VerificationError
from kiln.files import sha256_file, write_atomic

MIRROR = "https://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Debian's names for kiln's architectures.
DEBIAN_ARCHES = {"aarch64": "arm64", "x86_64": "amd64", "ppc64le": "ppc64el", "s390x": "s390x"}
_FIELD = re.compile(r"^([A-Za-z0-9-]+):\s?(.*)$")
_SUITE = re.compile(r"[a-z][a-z0-9-]*\Z")


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    architecture: str
    filename: str  # path in the archive, "pool/main/…/x.deb"
    sha256: str
    size: int
    depends: tuple[tuple[str, ...], ...]  # each entry: alternatives, names only
    provides: tuple[str, ...]


def keyring() -> Path:
    return Path(os.environ.get("KILN_DEBIAN_KEYRING", KEYRING))


def verify_release(inrelease: Path, suite: str, *, now: float | None = None,
                   keys: Path | None = None) -> str:
    """The signed text of ``inrelease``, once gpgv has checked it against Debian's keys
    (or ``keys``: another archive's keyring)."""
    gpgv = shutil.which("gpgv")
    keys = keys or keyring()
    if gpgv is None or not keys.is_file():
        raise EnvironmentSetupError(
            "checking Debian's signed Release needs gpgv and Debian's archive keyring",
            hint="apt-get install gpgv debian-archive-keyring (or set KILN_DEBIAN_KEYRING)")
    signed = inrelease.with_name(inrelease.name + ".verified")
    signed.unlink(missing_ok=True)  # gpgv will not write over a file
    out = proc.capture([gpgv, "--status-fd", "1", "--keyring", keys, "--output", signed,
                        inrelease], what=f"gpgv {inrelease.name}", error=VerificationError,
                       check=False, quiet=True)
    status = out.stdout.decode(errors="replace")
    if out.returncode != 0 or "[GNUPG:] VALIDSIG" not in status:
        why = out.stderr.decode(errors="replace").strip().splitlines()
        raise VerificationError(f"Debian {suite}: InRelease signature did not verify: "
                                f"{why[-1] if why else 'no valid signature'}",
                                hint=f"is {keys} Debian's current archive keyring?")
    text = signed.read_text(encoding="utf-8")
    signed.unlink()
    fields = release_fields(text)
    if suite not in (fields.get("Suite"), fields.get("Codename")):
        raise VerificationError(f"Debian {suite}: the signed Release is for "
                                f"{fields.get('Codename') or fields.get('Suite')!r}")
    valid_until = fields.get("Valid-Until")
    if valid_until:
        parsed = email.utils.parsedate_to_datetime(valid_until).timestamp()
        if parsed < (now if now is not None else time.time()):
            raise VerificationError(f"Debian {suite}: the signed Release expired {valid_until}",
                                    hint="a stale mirror or a replayed Release; try again later")
    return text


def release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _FIELD.match(line)
        if match:
            fields[match.group(1)] = match.group(2).strip()
    return fields


def release_sha256(text: str, path: str) -> tuple[str, int]:
    """The sha256 and size the signed Release gives for ``path`` (``main/binary-arm64/…``)."""
    in_sha256 = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        if in_sha256:
            parts = line.split()
            if len(parts) == 3 and parts[2] == path:
                return parts[0], int(parts[1])
    raise VerificationError(f"the signed Release lists no sha256 for {path}")


def _paragraphs(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
            continue
        if line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            key = match.group(1)
            fields[key] = match.group(2).strip()
    if fields:
        yield fields


def _relation(value: str) -> tuple[tuple[str, ...], ...]:
    groups = []
    for group in value.split(","):
        names = tuple(alt.strip().split(" ")[0].split(":")[0].split("(")[0]
                      for alt in group.split("|") if alt.strip())
        if names:
            groups.append(names)
    return tuple(groups)


def parse_packages(lines: Iterable[str]) -> dict[str, DebPackage]:
    """A ``Packages`` index: name → package (the newest version when one is listed twice)."""
    index: dict[str, DebPackage] = {}
    for fields in _paragraphs(lines):
        if "Package" not in fields or "SHA256" not in fields or "Filename" not in fields:
            continue
        depends = _relation(fields.get("Pre-Depends", "")) + _relation(fields.get("Depends", ""))
        provides = tuple(p[0] for p in _relation(fields.get("Provides", "")))
        pkg = DebPackage(fields["Package"], fields.get("Version", ""),
                         fields.get("Architecture", ""), fields["Filename"], fields["SHA256"],
                         int(fields.get("Size", "0")), depends, provides)
        index.setdefault(pkg.name, pkg)
    return index


def closure(index: dict[str, DebPackage], roots: Iterable[str],
            skip: frozenset[str] = frozenset()) -> tuple[list[DebPackage], list[str]]:
    """``roots`` and everything they depend on; and the dependencies no package satisfies.

    Versions are not compared: one suite's index is consistent with itself.
    """
    providers: dict[str, str] = {}
    for pkg in index.values():
        for virtual in pkg.provides:
            providers.setdefault(virtual, pkg.name)
    chosen: dict[str, DebPackage] = {}
    missing: list[str] = []
    todo = list(roots)
    for root in todo:
        if root not in index:
            raise EnvironmentSetupError(f"Debian's index has no package {root}")
    while todo:
        name = todo.pop(0)
        if name in chosen or name in skip:
            continue
        pkg = index[name]
        chosen[name] = pkg
        for alternatives in pkg.depends:
            if any(a in chosen for a in alternatives):
                continue
            pick = next((a for a in alternatives if a in index), None)
            pick = pick or next((providers[a] for a in alternatives if a in providers), None)
            if pick is None:
                missing.append(" | ".join(alternatives))
            elif pick not in skip:
                todo.append(pick)
    return sorted(chosen.values(), key=lambda p: p.name), sorted(set(missing))


@dataclass(frozen=True)
class Suite:
    """One suite of the archive, for one architecture, its index read and checked."""

    name: str
    arch: str  # Debian's spelling: arm64
    packages: dict[str, DebPackage]
    release_date: str


def load_suite(name: str, arch: str, downloads: Path, *, mirror: str = MIRROR,
               keys: Path | None = None) -> Suite:
    """Fetch and check ``InRelease`` and ``main/binary-<arch>/Packages.xz`` for ``name``.

    ``mirror`` and ``keys`` name another archive in Debian's format (Ubuntu's) and its
    keyring; the default is Debian's, checked against Debian's archive keyring.
    """
    index_file, text = _signed_index(name, f"main/binary-{arch}/Packages.xz", downloads,
                                     mirror=mirror, keys=keys)
    with lzma.open(index_file, "rt", encoding="utf-8", errors="replace") as fh:
        packages = parse_packages(fh)
    return Suite(name, arch, packages, release_fields(text).get("Date", ""))


def _signed_index(name: str, rel: str, downloads: Path, *, mirror: str = MIRROR,
                  keys: Path | None = None) -> tuple[Path, str]:
    """Suite ``name``'s index file ``rel`` (``main/source/Sources.xz`` …), fetched and checked
    against the sha256 and size its ``InRelease`` gives once gpgv has checked that; and the
    signed Release text."""
    if not _SUITE.match(name):
        raise EnvironmentSetupError(f"{name!r} is not a Debian suite name")
    base = f"{mirror}/dists/{name}"
    folder = downloads / (name if mirror == MIRROR else
                          f"{urllib.parse.urlparse(mirror).netloc}-{name}")
    folder.mkdir(parents=True, exist_ok=True)
    inrelease = folder / "InRelease"
    write_atomic(inrelease, http.get_bytes(f"{base}/InRelease", what=f"Debian {name} InRelease"))
    text = verify_release(inrelease, name, keys=keys)
    sha, size = release_sha256(text, rel)
    index_file = folder / f"{rel.replace('/', '-')}-{sha[:16]}"
    http.download(f"{base}/{rel}", index_file, sha256=sha, what=f"Debian {name} {rel}")
    if index_file.stat().st_size != size:
        raise HashMismatchError(f"Debian {name} {rel}: size differs from the signed Release")
    return index_file, text


@dataclass(frozen=True)
class SourcePackage:
    name: str
    version: str
    directory: str  # "pool/main/liby/libyaml"
    files: tuple[tuple[str, int, str], ...]  # (sha256, size, file name) from Checksums-Sha256


def parse_sources(lines: Iterable[str]) -> dict[str, list[SourcePackage]]:
    """A ``Sources`` index: name → every version it lists, each with its files' sha256."""
    index: dict[str, list[SourcePackage]] = {}
    for fields in _paragraphs(lines):
        name, directory = fields.get("Package"), fields.get("Directory", "")
        if not name or not directory.startswith("pool/") or ".." in directory.split("/"):
            continue
        files = []
        for line in fields.get("Checksums-Sha256", "").splitlines():
            parts = line.split()
            if len(parts) == 3 and "/" not in parts[2]:
                files.append((parts[0], int(parts[1]), parts[2]))
        index.setdefault(name, []).append(
            SourcePackage(name, fields.get("Version", ""), directory, tuple(files)))
    return index


def load_sources(name: str, downloads: Path, *,
                 mirror: str = MIRROR) -> dict[str, list[SourcePackage]]:
    """Fetch and check ``InRelease`` and ``main/source/Sources.xz`` for suite ``name``."""
    index_file, _ = _signed_index(name, "main/source/Sources.xz", downloads, mirror=mirror)
    with lzma.open(index_file, "rt", encoding="utf-8", errors="replace") as fh:
        return parse_sources(fh)


def download_debs(packages: Iterable[DebPackage], folder: Path, *,
                  mirror: str = MIRROR) -> list[Path]:
    """Each package's ``.deb``, its sha256 checked against the signed index."""
    paths = []
    for pkg in packages:
        if not pkg.filename.startswith("pool/") or ".." in pkg.filename.split("/"):
            raise FetchError(f"Debian index: odd file name {pkg.filename!r} for {pkg.name}")
        target = folder / f"{pkg.sha256[:16]}-{pkg.filename.rsplit('/', 1)[-1]}"
        http.download(f"{mirror}/{pkg.filename}", target, sha256=pkg.sha256,
                      what=f"Debian {pkg.name} {pkg.version}")
        if sha256_file(target) != pkg.sha256:  # a cached copy changed behind kiln's back
            target.unlink()
            raise HashMismatchError(f"{target}: sha256 differs from Debian's index",
                                    hint="the cached copy was removed; run the command again")
        paths.append(target)
    return paths


def unpack_debs(debs: Iterable[Path], root: Path, *, log: Path | None = None) -> None:
    """``dpkg-deb -x`` each package into ``root`` (no maintainer scripts run)."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise EnvironmentSetupError("unpacking Debian packages needs dpkg-deb",
                                    hint="apt-get install dpkg (Debian and Ubuntu have it)")
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc.run([dpkg_deb, "-x", deb, root], what=f"dpkg-deb -x {deb.name}",
                 error=EnvironmentSetupError, log=log)

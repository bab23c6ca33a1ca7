"""Making the pins in ``kiln/resources/cpython.toml``: a maintainer's step, never a build's.

A pin is made from an archive's signed index, the way apt would trust it: Debian's suites
are checked against Debian's archive keyring; Ubuntu's against Ubuntu's archive keyring,
which kiln takes from Debian's own ``ubuntu-keyring`` package (so it too is checked along
Debian's signed chain). The aarch64 header tree is derived from the x86_64 package; when
the archive has an arm64 package of the same version, its pyconfig.h is compared with the
derived one, and a difference stops the pin.
"""

from __future__ import annotations

import datetime
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiln import toml
from kiln.errors import EnvironmentSetupError, VerificationError
from kiln.toolchain import debian
from kiln.toolchain.cpython import (
    ARCHES,
    ARCHIVES,
    HeaderPin,
    assemble_headers,
    derive_pyconfig,
    tree_digest,
)

# Where each CPython's pinned headers come from: the suite whose own release (not its
# updates) ships it, so the package stays in the archive for the suite's life.
DEFAULT_SOURCES = {
    "3.8": ("ubuntu", "focal"),
    "3.9": ("debian", "bullseye"),
    "3.10": ("ubuntu", "jammy"),
    "3.11": ("debian", "bookworm"),
    "3.12": ("ubuntu", "noble"),
    "3.13": ("debian", "trixie"),
    "3.14": ("debian", "sid"),
}
_KEYRING_SUITE = "trixie"


def ubuntu_keyring(downloads: Path) -> Path:
    """Ubuntu's archive keyring, from Debian's ``ubuntu-keyring`` package (checked by Debian)."""
    suite = debian.load_suite(_KEYRING_SUITE, "amd64", downloads)
    package = suite.packages.get("ubuntu-keyring")
    if package is None:
        raise EnvironmentSetupError(f"Debian {_KEYRING_SUITE} has no ubuntu-keyring package")
    deb, = debian.download_debs([package], downloads / "debs")
    root = downloads / f"ubuntu-keyring-{package.sha256[:16]}"
    debian.unpack_debs([deb], root)
    keys = root / "usr" / "share" / "keyrings" / "ubuntu-archive-keyring.gpg"
    if not keys.is_file():
        raise EnvironmentSetupError(f"{package.filename} holds no ubuntu-archive-keyring.gpg")
    return keys


@dataclass(frozen=True)
class MadePin:
    pin: HeaderPin
    checked_arm64: str  # "" when the archive has no arm64 package to compare with


def make_pin(minor: str, downloads: Path, *, archive: str | None = None,
             suite: str | None = None) -> MadePin:
    """Pin CPython ``minor``'s ``libpython3.X-dev`` from ``archive``'s ``suite``."""
    default = DEFAULT_SOURCES.get(minor, ("debian", "sid"))
    archive, suite = archive or default[0], suite or default[1]
    if archive not in ARCHIVES:
        raise EnvironmentSetupError(f"archive {archive!r}: one of {', '.join(ARCHIVES)}")
    mirror = ARCHIVES[archive]
    keys = ubuntu_keyring(downloads) if archive == "ubuntu" else None
    loaded = debian.load_suite(suite, "amd64", downloads, mirror=mirror, keys=keys)
    name = f"libpython{minor}-dev"
    package = loaded.packages.get(name)
    if package is None:
        raise EnvironmentSetupError(f"{archive} {suite} has no {name}")
    deb, = debian.download_debs([package], downloads / "debs", mirror=mirror)
    trees: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="kiln-pin-") as tmp:
        unpacked = Path(tmp) / "deb"
        debian.unpack_debs([deb], unpacked)
        for arch in ARCHES:
            made = Path(tmp) / arch
            assemble_headers(unpacked, minor, arch, made)
            trees[arch] = tree_digest(made)
        checked = _compare_arm64(minor, package, archive, suite, downloads, keys, unpacked)
    pin = HeaderPin(
        minor=minor, version=package.version.split("-")[0].split("+")[0], archive=archive,
        suite=suite, package=name, package_version=package.version, path=package.filename,
        sha256=package.sha256, size=package.size, trees=tuple(sorted(trees.items())),
        snapshot=datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    return MadePin(pin, checked)


def _compare_arm64(minor: str, amd64: debian.DebPackage, archive: str, suite: str,
                   downloads: Path, keys: Path | None, unpacked: Path) -> str:
    """Check the derived aarch64 pyconfig.h against the archive's own arm64 package."""
    if archive != "debian":  # Ubuntu's arm64 packages live on ports.ubuntu.com
        return ""
    loaded = debian.load_suite(suite, "arm64", downloads, keys=keys)
    arm = loaded.packages.get(amd64.name)
    if arm is None or arm.version != amd64.version:
        return ""
    deb, = debian.download_debs([arm], downloads / "debs")
    with tempfile.TemporaryDirectory(prefix="kiln-pin-arm64-") as tmp:
        debian.unpack_debs([deb], Path(tmp))
        real = (Path(tmp) / "usr" / "include" / "aarch64-linux-gnu" / f"python{minor}" /
                "pyconfig.h").read_text()
    x86 = (unpacked / "usr" / "include" / "x86_64-linux-gnu" / f"python{minor}" /
           "pyconfig.h").read_text()
    if derive_pyconfig(x86, "aarch64") != real:
        raise VerificationError(
            f"{archive} {suite}: the aarch64 pyconfig.h kiln derives for CPython {minor} "
            f"differs from {arm.name} {arm.version} arm64's",
            hint="a new architecture macro: add it to kiln/toolchain/cpython.py's lists")
    return f"{arm.name} {arm.version} arm64"


def render_pin(made: MadePin) -> str:
    pin = made.pin
    entry = {
        "version": pin.version, "archive": pin.archive, "suite": pin.suite,
        "package": pin.package, "package-version": pin.package_version, "path": pin.path,
        "sha256": pin.sha256, "size": pin.size, "snapshot": pin.snapshot,
        "trees": dict(pin.trees),
    }
    note = (f"# aarch64's pyconfig.h derived and checked against {made.checked_arm64}\n"
            if made.checked_arm64 else "# aarch64's pyconfig.h derived (no arm64 package "
                                       "to compare with in this archive)\n")
    return note + toml.dumps({pin.minor: entry})

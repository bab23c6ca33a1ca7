"""The Rust toolchain a build of Rust code runs: rustc and cargo, named by digest.

kiln takes the toolchain rustup (or a distribution) installed: the folder ``rustc --print
sysroot`` names, which holds the real ``bin/rustc``, ``bin/cargo`` and the standard library
of each target, not rustup's proxies (they would look for their settings in the build's
HOME). A hermetic build sees it read-only at ``/kiln/rust``; a build without bubblewrap sees
it where it is, its name remapped to ``/kiln/rust`` in every binary. It links through the
hermetic toolchain's ``cc``, so a Rust wheel has the zig toolchain's glibc floor.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln import proc
from kiln.errors import UnsupportedError
from kiln.files import sha256_file
from kiln.memo import StatMemo
from kiln.memo import enabled as memo_enabled
from kiln.toolchain.targets import Target
from kiln.toolchain.tool import Tool

RUST_INSIDE = "/kiln/rust"
# kiln's arch names → Rust's target triples (glibc Linux).
RUST_TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu"}
# The rebuild's "time" variation runs the build under libfaketime, which deadlocks rustc:
# rustc's own allocator (jemalloc) starts inside libfaketime's start-up, which allocates.
RUST_TIME_VARIATION = ("time", "libfaketime deadlocks rustc (its jemalloc allocator starts "
                               "inside libfaketime's own start-up; `rustc -V` never returns)")
_INSTALL_HINT = ("install Rust with rustup (https://rustup.rs) so that rustc and cargo are on "
                 "PATH; kiln records the toolchain it finds by digest")


@dataclass(frozen=True)
class RustToolchain:
    """rustc and cargo of one installed toolchain, by version and digest."""

    sysroot: Path
    rustc_version: str  # "rustc 1.95.0 (59807616e 2026-04-14)"
    commit: str  # rustc's commit hash: which compiler and standard library exactly
    cargo_version: str
    rustc_sha256: str
    driver_sha256: str  # librustc_driver: the compiler itself (bin/rustc only starts it)
    cargo_sha256: str

    def tools(self, triple: str) -> tuple[Tool, ...]:
        """As the record names them, at the path a build sees them."""
        return (Tool("rustc", f"{self.rustc_version}, commit {self.commit}, target {triple}",
                     path=f"{RUST_INSIDE}/bin/rustc", sha256=self.rustc_sha256),
                Tool("rustc driver", self.rustc_version,
                     path=f"{RUST_INSIDE}/lib/librustc_driver.so", sha256=self.driver_sha256),
                Tool("cargo", self.cargo_version, path=f"{RUST_INSIDE}/bin/cargo",
                     sha256=self.cargo_sha256))

    def identity(self, triple: str) -> tuple[tuple[str, str], ...]:
        """What names it in a build id: its digests and target, never where it is installed."""
        return (("rustc", self.rustc_sha256), ("rustc driver", self.driver_sha256),
                ("cargo", self.cargo_sha256), ("rust target", triple))


def rust_triple(target: Target) -> str:
    triple = RUST_TRIPLES.get(target.arch) if target.is_linux else None
    if triple is None:
        raise UnsupportedError(f"kiln builds Rust for {', '.join(RUST_TRIPLES)} Linux, not "
                               f"{target.name}")
    return triple


def linker_variables(triple: str, cc: str, cxx: str, ar: str) -> tuple[tuple[str, str], ...]:
    """Point cargo's linker and the cc crate at ``cc`` (the hermetic toolchain's wrappers)."""
    upper = triple.upper().replace("-", "_")
    lower = triple.replace("-", "_")
    return ((f"CARGO_TARGET_{upper}_LINKER", cc), (f"CC_{lower}", cc), (f"CXX_{lower}", cxx),
            (f"AR_{lower}", ar))


@functools.cache
def find_rust() -> RustToolchain:
    """The toolchain behind the ``rustc`` on PATH; UnsupportedError if there is none."""
    rustc = shutil.which("rustc")
    if rustc is None:
        raise UnsupportedError("the sdist has Rust code (a Cargo.toml), and rustc is not on PATH",
                               hint=_INSTALL_HINT)
    out = proc.capture([rustc, "--print", "sysroot"], what="rustc --print sysroot",
                       error=UnsupportedError, quiet=True)
    sysroot = Path(out.stdout.decode().strip()).resolve()
    binaries = {name: sysroot / "bin" / name for name in ("rustc", "cargo")}
    missing = [str(p) for p in binaries.values() if not p.is_file()]
    # rustup's toolchains keep the driver in lib/, Debian's in lib/<multiarch>/.
    drivers = sorted((sysroot / "lib").glob("librustc_driver-*.so")) or sorted(
        (sysroot / "lib").glob("*/librustc_driver-*.so"))
    if missing or not drivers:
        raise UnsupportedError(f"the Rust toolchain at {sysroot} has no "
                               f"{', '.join(missing) or 'lib/librustc_driver-*.so'}",
                               hint=_INSTALL_HINT)
    return _describe(sysroot, binaries["rustc"], binaries["cargo"], drivers[-1])


def _describe(sysroot: Path, rustc: Path, cargo: Path, driver: Path) -> RustToolchain:
    memo = StatMemo("rust") if memo_enabled() else None
    key = str(sysroot)
    known = memo.get(key) if memo else None
    if known is None:
        verbose = _ask([rustc, "-vV"], "rustc -vV")
        fields = dict(line.split(": ", 1) for line in verbose.splitlines()[1:] if ": " in line)
        known = {"rustc": verbose.splitlines()[0], "commit": fields.get("commit-hash", "unknown"),
                 "cargo": _ask([cargo, "-V"], "cargo -V").splitlines()[0],
                 "rustc_sha256": sha256_file(rustc), "driver_sha256": sha256_file(driver),
                 "cargo_sha256": sha256_file(cargo)}
        if memo:
            memo.put(key, [rustc, cargo, driver], known)
    return RustToolchain(sysroot=sysroot, rustc_version=known["rustc"], commit=known["commit"],
                         cargo_version=known["cargo"], rustc_sha256=known["rustc_sha256"],
                         driver_sha256=known["driver_sha256"], cargo_sha256=known["cargo_sha256"])


def _ask(argv: list[Path | str], what: str) -> str:
    out = proc.capture(argv, what=what, error=UnsupportedError, quiet=True)
    return out.stdout.decode(errors="replace").strip()


def check_own_folder(rust: RustToolchain) -> None:
    """Refuse a toolchain installed among the host's other programs (Debian's rustc, whose
    sysroot is /usr): showing its folder to a hermetic build would show the host's compilers."""
    if rust.sysroot in (Path("/usr"), Path("/usr/local"), Path("/")):
        raise UnsupportedError(
            f"the Rust toolchain's folder is {rust.sysroot}, which holds the host's other "
            "compilers and tools too; a hermetic build sees only a folder of its own",
            hint="install Rust with rustup (https://rustup.rs), whose toolchain folder holds "
                 "Rust alone, or build with --backend host")


def check_target(rust: RustToolchain, triple: str) -> None:
    """Refuse a target whose standard library the toolchain does not carry."""
    if not (rust.sysroot / "lib" / "rustlib" / triple / "lib").is_dir():
        raise UnsupportedError(f"the Rust toolchain at {rust.sysroot} has no standard library "
                               f"for {triple}", hint=f"rustup target add {triple}")

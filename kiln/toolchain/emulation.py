"""Run a foreign wheel's tests under qemu-user, with a CPython from Debian's packages.

``prepare_sysroot`` unpacks the target architecture's ``python3.X-minimal`` and what it
depends on (from the Debian suite that ships that CPython) into a folder of kiln's cache;
``qemu-<arch>-static -L ROOT ROOT/usr/bin/python3.X`` then runs it. Nothing on the host
changes: no foreign dpkg architecture, no binfmt handler, no root.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln import installer, proc
from kiln.errors import EnvironmentSetupError, UnsupportedError, WheelTestError
from kiln.files import exclusive, write_atomic
from kiln.installer import IndexOptions
from kiln.progress import reporter
from kiln.recipe import TestSpec
from kiln.toolchain import debian
from kiln.toolchain.sandbox import Sandbox
from kiln.toolchain.targets import Target, host_target
from kiln.wheeltest import TestOutcome

# The Debian suite that ships each CPython (still on deb.debian.org). 3.10 and 3.12 were
# never in a Debian release: there is no arm64 build of them to run.
SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie", "3.14": "sid"}
# Packages a sysroot never needs (they only install or configure other packages).
_SKIP = frozenset({"dpkg", "tar", "debconf", "perl-base", "install-info", "libc-bin"})
MANIFEST = "kiln-sysroot.json"
# The newest glibc uv can be told a foreign platform has.
_UV_GLIBC_MAX = 40


def suite_for(minor: str) -> str:
    suite = SUITES.get(minor)
    if suite is None:
        raise UnsupportedError(
            f"no Debian suite ships CPython {minor}, so kiln has no foreign {minor} to emulate",
            hint=f"emulated tests run for CPython {', '.join(SUITES)}; test {minor} wheels on "
                 "a machine of their architecture")
    return suite


def qemu_for(target: Target) -> Path:
    """``qemu-<arch>-static`` (Debian's qemu-user-static), or why it cannot be had."""
    name = f"qemu-{target.arch}-static"
    found = shutil.which(name)
    if found is None:
        raise EnvironmentSetupError(f"{name} is not installed; it runs {target.name} programs "
                                    "on this host", hint="apt-get install qemu-user-static")
    return Path(found)


@dataclass(frozen=True)
class Sysroot:
    """A foreign CPython unpacked into a folder, and what it was made of."""

    root: Path
    target: Target
    minor: str
    suite: str
    python_version: str  # Debian's version of python3.X-minimal
    glibc: str  # "2.36"
    packages: tuple[tuple[str, str, str], ...]  # (name, version, sha256)

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / f"python{self.minor}"

    def argv(self, qemu: Path) -> list[str]:
        """How to start this CPython on the host."""
        return [str(qemu), "-L", str(self.root), str(self.python)]

    @property
    def uv_platform(self) -> str:
        """uv's ``--python-platform`` for wheels this CPython can load."""
        minor = min(int(self.glibc.split(".")[1]), _UV_GLIBC_MAX)
        if minor < 17:
            raise UnsupportedError(f"{self.suite}'s glibc {self.glibc} predates manylinux2014")
        return f"{self.target.arch}-manylinux_2_{minor}"


def sysroot_roots(minor: str) -> list[str]:
    """The packages a sysroot is made of, with their dependencies: CPython, and the C++
    runtime and libgcc_s that the manylinux policies count on every system having (a wheel
    such as numpy's links libstdc++.so.6 and does not carry it)."""
    return [f"python{minor}-minimal", f"libpython{minor}-stdlib", "libstdc++6", "libgcc-s1"]


def _load(root: Path, target: Target) -> Sysroot | None:
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if data.get("roots") != sysroot_roots(data.get("python", "")):
        return None  # made of fewer packages by an older kiln: made again
    return Sysroot(root=root, target=target, minor=data["python"], suite=data["suite"],
                   python_version=data["python_version"], glibc=data["glibc"],
                   packages=tuple(tuple(p) for p in data["packages"]))



def build_root(root: Path, suite: str, arch: str, roots: Sequence[str], downloads: Path, *,
               log: Path | None = None) -> tuple[list[debian.DebPackage], list[str], str]:
    """Unpack ``roots`` and their dependencies from ``suite`` into ``root``.

    Returns the packages, the dependencies nothing satisfied, and the suite's date.
    """
    loaded = debian.load_suite(suite, arch, downloads)
    packages, missing = debian.closure(loaded.packages, roots, _SKIP)
    reporter().note(f"unpacking {len(packages)} Debian {suite} {arch} packages into {root}")
    debs = debian.download_debs(packages, downloads / "debs")
    debian.unpack_debs(debs, root, log=log)
    _merge_usr(root)
    return packages, missing, loaded.release_date


def _merge_usr(root: Path) -> None:
    """/lib → usr/lib and friends, as base-files makes them on a merged-/usr system.

    Newer suites ship the dynamic loader only under /usr/lib, while binaries ask for
    /lib/ld-linux-aarch64.so.1; the links come from a package a sysroot does not need.
    """
    for name in ("bin", "sbin", "lib", "lib64"):
        top, usr = root / name, root / "usr" / name
        if not top.exists() and not top.is_symlink() and usr.is_dir():
            top.symlink_to(f"usr/{name}")


def prepare_sysroot(target: Target, minor: str, cache: Path, *,
                    log: Path | None = None) -> Sysroot:
    """The cached sysroot for CPython ``minor`` on ``target``, made on first use."""
    suite = suite_for(minor)
    arch = debian.DEBIAN_ARCHES.get(target.arch)
    if not target.is_linux or arch is None:
        raise UnsupportedError(f"kiln cannot emulate {target.name}")
    root = cache / "sysroots" / f"{suite}-{arch}-py{minor}"
    found = _load(root, target)
    if found is not None:
        return found
    with exclusive(root.with_name(root.name + ".lock")):
        found = _load(root, target)
        if found is not None:
            return found
        reporter().stage("sysroot", f"CPython {minor} for {target.name} from Debian {suite}")
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            unpacked = staging / "root"
            packages, missing, date = build_root(
                unpacked, suite, arch, sysroot_roots(minor), cache / "debian", log=log)
            by_name = {p.name: p for p in packages}
            libc = by_name.get("libc6")
            if libc is None:
                raise EnvironmentSetupError(f"Debian {suite}: python{minor} pulled in no libc6")
            manifest = {
                "suite": suite, "release_date": date, "arch": arch, "python": minor,
                "roots": sysroot_roots(minor),
                "python_version": by_name[f"python{minor}-minimal"].version,
                "glibc": ".".join(libc.version.split("-")[0].split(".")[:2]),
                "packages": [[p.name, p.version, p.sha256] for p in packages],
                "unsatisfied": missing,
            }
            write_atomic(unpacked / MANIFEST, json.dumps(manifest, indent=1))
            trial = _load(unpacked, target)
            assert trial is not None
            _smoke_test(trial, log)
            if root.exists():
                shutil.rmtree(root)
            unpacked.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    made = _load(root, target)
    assert made is not None
    return made


def _smoke_test(sysroot: Sysroot, log: Path | None) -> None:
    """Start the foreign CPython once, so a broken sysroot fails here and not in a test."""
    argv = [*sysroot.argv(qemu_for(sysroot.target)), "-I", "-c",
            "import sys, zlib, ssl, ctypes; print(sys.version)"]
    proc.run(argv, what=f"starting Debian {sysroot.suite}'s CPython {sysroot.minor} under qemu",
             error=EnvironmentSetupError, log=log, env=_base_env(Path(tempfile.gettempdir())),
             hint="the log shows what qemu said; the unpacked folder was not kept, so the "
                  "next run unpacks it again")


def _base_env(tmp: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp), "TMPDIR": str(tmp),
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}


def install_for_target(sysroot: Sysroot, into: Path, requirements: Sequence[str], *,
                       index: IndexOptions, log: Path, label: str) -> None:
    """Install wheels for the foreign platform into ``into`` (never building an sdist here)."""
    argv: list[str | Path] = [
        installer.uv_binary(), "pip", "install", "--quiet", "--target", into,
        "--python", sys.executable, "--python-version", sysroot.minor,
        "--python-platform", sysroot.uv_platform, "--only-binary", ":all:", *index.args(),
        *requirements]
    proc.run(argv, what=f"{label}: installing the wheel for its emulated tests",
             error=WheelTestError, env=installer.uv_env(), log=log,
             hint=f"every requirement needs a wheel for {sysroot.uv_platform}: an sdist "
                  "would be built for this host, not for the target")


def _resolve(argv: tuple[str, ...], python: list[str], site: Path) -> list[str]:
    head = argv[0]
    if head in ("python", "python3") or head == Path(python[-1]).name:
        return [*python, *argv[1:]]
    script = site / "bin" / head
    if script.is_file():  # a console script: run it with the foreign CPython
        return [*python, str(script), *argv[1:]]
    return [shutil.which(head, path="/usr/local/bin:/usr/bin:/bin") or head, *argv[1:]]


def run_emulated_tests(wheel: Path, spec: TestSpec, minor: str, target: Target, *, work: Path,
                       index: IndexOptions, log: Path, label: str, cache: Path,
                       sdist: Path | None = None, test_lock: Path | None = None) -> TestOutcome:
    """Install ``wheel`` for ``target`` and run the recipe's test commands under qemu."""
    from kiln.wheeltest import commands_for, copy_test_files, has_tests, run_suite

    if not has_tests(spec):
        return TestOutcome(False, None, (), 0.0, why_not="the recipe has no [test] commands")
    if target == host_target():
        raise UnsupportedError(f"{wheel.name} is for this host; it needs no emulation")
    started = time.monotonic()
    try:
        qemu = qemu_for(target)
        suite_for(minor)
    except (EnvironmentSetupError, UnsupportedError) as exc:
        return TestOutcome(False, None, (), 0.0, emulated=True,
                           why_not=f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    commands = commands_for(spec, wheel)
    sysroot = prepare_sysroot(target, minor, cache, log=log)
    work.mkdir(parents=True, exist_ok=True)
    scratch_root = Path(tempfile.mkdtemp(prefix="emulated-test-", dir=work))
    try:
        site = scratch_root / "site"
        if test_lock is not None:  # the locked test requirements first, each by its hash
            install_for_target(sysroot, site, ["--require-hashes", "--no-deps", "-r",
                                               str(test_lock)], index=index, log=log,
                               label=label)
        install_for_target(sysroot, site,
                           [str(wheel), *(spec.requires if test_lock is None else ())],
                           index=index, log=log, label=label)
        tmp = scratch_root / "tmp"
        tmp.mkdir()
        copy_test_files(spec, sdist, tmp, scratch_root)
        sandbox = Sandbox(binds=(), tmp=tmp, hostname="kiln-test", visible=(site, sysroot.root))
        # The sandbox shows ``tmp`` as its private /tmp.
        inside_tmp = Path("/tmp") if sandbox.isolated else tmp
        env = {**_base_env(inside_tmp), "PYTHONPATH": str(site)}
        python = sysroot.argv(qemu)

        def wrap(argv: tuple[str, ...]) -> list[str]:
            return sandbox.wrap(_resolve(argv, python, site), cwd=str(inside_tmp),
                                network=False)

        counts = run_suite(commands, wrap, scratch=tmp, inside=str(inside_tmp), env=env,
                           log=log, what=f"{label}: test command (under qemu, Debian "
                                         f"{sysroot.suite} CPython {sysroot.python_version})")
        return TestOutcome(True, True, tuple(proc.render(c) for c in commands),
                           round(time.monotonic() - started, 3), emulated=True, counts=counts)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)

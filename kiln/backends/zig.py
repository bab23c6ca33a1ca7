"""A pinned zig as the C and C++ compiler: manylinux wheels for x86_64 and aarch64 from any
Linux host, cross-compiling when the target is not the host.

zig comes from PyPI's ``ziglang`` wheel, pinned by version and by the wheel's sha256 in
``kiln/resources/toolchains.toml``, installed by kiln into its cache. It carries glibc
stubs for any version, so ``-target aarch64-linux-gnu.2.17`` links against glibc 2.17
whatever the host has. Small wrapper scripts (``cc``, ``c++``, ``ar`` …) put the target
on every call; the build sees them as ``CC``, ``CXX``, ``LDSHARED``, ``AR`` and first on
``PATH``. Nothing from a recipe is ever written into a wrapper.
"""

from __future__ import annotations

import fcntl
import functools
import json
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kiln import installer, proc, toml
from kiln.backends import BuildJob, RawBuild, Tool, Toolchain
from kiln.backends.pep517build import pep517_build
from kiln.buildenv import Workspace
from kiln.errors import BuildError, EnvironmentSetupError, UnsupportedError
from kiln.files import sha256_file, write_atomic
from kiln.installer import IndexOptions
from kiln.pep517 import BuildSystem
from kiln.progress import reporter
from kiln.targets import Target, host_target

# kiln's arch names → zig's (and CMake's CMAKE_SYSTEM_PROCESSOR). Other Linux arches zig
# could target are left out until kiln can test their wheels.
ZIG_ARCHES = {"x86_64": "x86_64", "aarch64": "aarch64"}
# Where the zig install and its cache appear in debug info, whatever the host calls them.
ZIG_LIB_CANONICAL = "/kiln/zig/lib"
ZIG_CACHE_CANONICAL = "/kiln/zig-cache"
SHIMS_CANONICAL = "/kiln/zig-include"
# Given to every zig cc/c++ call (and so part of the toolchain's record and build id). zig
# turns UBSan on, and links its runtime, whenever -O is missing; gcc and clang do not,
# and C extensions lean on wrapping overflow, so it is switched off.
COMPILE_FLAGS = ("-fno-sanitize=undefined",)
_GLIBC = re.compile(r"2\.\d{1,2}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_VERSION = re.compile(r"\d+\.\d+\.\d+(\.post\d+)?\Z")

# Wrapper name → the zig subcommand and whether it compiles (takes -target and prefix maps).
WRAPPERS: dict[str, tuple[str, bool]] = {
    "cc": ("cc", True), "gcc": ("cc", True), "clang": ("cc", True),
    "c++": ("c++", True), "g++": ("c++", True), "clang++": ("c++", True),
    "ar": ("ar", False), "ranlib": ("ranlib", False), "objcopy": ("objcopy", False),
}

# Build backends that cannot be pointed at another architecture from here, and why.
_CROSS_REFUSED = {
    "mesonpy": "meson-python takes the extension suffix from the interpreter that runs the "
               "build, so a cross build would name its modules for the host",
    "maturin": "maturin compiles Rust, and kiln's zig backend pins only a C/C++ toolchain",
}
_CROSS_REFUSED_REQUIRES = {
    "setuptools-rust": "setuptools-rust compiles Rust, and kiln's zig backend pins only a "
                       "C/C++ toolchain",
}
# What a build's log says when it tried to run a program compiled for the target.
_RAN_TARGET_BINARY = re.compile(
    r"Exec format error|cannot execute binary file|cannot run test program while cross "
    r"compiling|cannot run C compiled programs", re.IGNORECASE)


@dataclass(frozen=True)
class ZigPin:
    """The zig kiln uses: a version of the ``ziglang`` wheel and each host's wheel digest."""

    package: str
    version: str
    wheels: tuple[tuple[str, str], ...]  # (host target name, sha256)

    def wheel_sha256(self, host: Target) -> str:
        found = dict(self.wheels).get(host.name)
        if found is None:
            raise UnsupportedError(
                f"no pinned {self.package} {self.version} wheel for a {host.name} host",
                hint=f"pinned hosts: {', '.join(h for h, _ in self.wheels)}; add this host's "
                     "wheel sha256 (from PyPI) to kiln/resources/toolchains.toml")
        return found


def parse_pin(text: str, where: str = "toolchains.toml") -> ZigPin:
    """The ``[zig]`` table of a toolchains file, checked field by field."""
    data = toml.loads(text).get("zig")
    if not isinstance(data, dict):
        raise EnvironmentSetupError(f"{where}: no [zig] table")
    package, version, wheels = data.get("package"), data.get("version"), data.get("wheels")
    if not isinstance(package, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", package):
        raise EnvironmentSetupError(f"{where}: [zig] package must be a project name")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise EnvironmentSetupError(f"{where}: [zig] version must look like 0.15.2")
    if not isinstance(wheels, dict) or not wheels:
        raise EnvironmentSetupError(f"{where}: [zig.wheels] must map hosts to sha256 digests")
    for host, digest in wheels.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise EnvironmentSetupError(f"{where}: [zig.wheels] {host}: not a sha256 digest")
    return ZigPin(package, version, tuple(sorted(wheels.items())))


@functools.cache
def zig_pin() -> ZigPin:
    text = (resources.files("kiln") / "resources" / "toolchains.toml").read_text("utf-8")
    return parse_pin(text, "kiln/resources/toolchains.toml")


@dataclass(frozen=True)
class ZigInstall:
    root: Path  # <cache>/tools/ziglang-<version>
    version: str
    wheel_sha256: str

    @property
    def zig(self) -> Path:
        return self.root / "ziglang" / "zig"

    @property
    def lib(self) -> Path:
        return self.root / "ziglang" / "lib"


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed(root: Path, pin: ZigPin, sha: str) -> ZigInstall | None:
    """The install at ``root`` if it is the pinned one and its zig binary is untouched."""
    marker = root / "kiln-install.json"
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    install = ZigInstall(root, pin.version, sha)
    if info.get("wheel_sha256") != sha or info.get("version") != pin.version:
        return None
    try:
        st = install.zig.stat()
    except OSError:
        return None
    # Changed since kiln installed it: only the digest can say whether it is still ours.
    changed = [st.st_size, st.st_mtime_ns] != info.get("zig_stat")
    if changed and sha256_file(install.zig) != info.get("zig_sha256"):
        return None
    return install


def install_zig(cache: Path, index: IndexOptions, *, log: Path | None = None) -> ZigInstall:
    """The pinned zig, installed into ``cache/tools`` with ``--require-hashes`` if needed."""
    pin = zig_pin()
    sha = pin.wheel_sha256(host_target())
    root = cache / "tools" / f"{pin.package}-{pin.version}"
    found = _installed(root, pin, sha)
    if found is not None:
        return found
    with _exclusive(root.with_name(root.name + ".lock")):
        found = _installed(root, pin, sha)
        if found is not None:
            return found
        reporter().stage("toolchain", f"installing {pin.package} {pin.version} into {root}")
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            requirements = staging / "requirements.txt"
            requirements.write_text(f"{pin.package}=={pin.version} --hash=sha256:{sha}\n")
            target = staging / "install"
            proc.run([installer.uv_binary(), "pip", "install", "--quiet", "--no-deps",
                      "--require-hashes", "--python", sys.executable, "--target", target,
                      *index.args(), "-r", requirements],
                     what=f"installing {pin.package} {pin.version} (sha256 {sha[:12]}…)",
                     error=EnvironmentSetupError, env=installer.uv_env(), log=log,
                     hint="the zig backend needs the ziglang wheel from the index "
                          "(about 90 MB, once)")
            install = ZigInstall(target, pin.version, sha)
            out = proc.capture([install.zig, "version"], what="zig version",
                               error=EnvironmentSetupError, quiet=True)
            said = out.stdout.decode().strip()
            if said != pin.version.split(".post")[0]:
                raise EnvironmentSetupError(f"the {pin.package} {pin.version} wheel holds zig "
                                            f"{said!r}")
            st = install.zig.stat()
            write_atomic(target / "kiln-install.json", json.dumps({
                "version": pin.version, "wheel_sha256": sha,
                "zig_sha256": sha256_file(install.zig), "zig_stat": [st.st_size, st.st_mtime_ns],
            }, indent=1))
            if root.exists():
                shutil.rmtree(root)  # a broken or other install: replaced whole
            target.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    done = _installed(root, pin, sha)
    if done is None:  # pragma: no cover - only if someone changes the cache under us
        raise EnvironmentSetupError(f"{root}: the zig install kiln just made does not check out")
    return done


def zig_triple(target: Target, glibc: str) -> str:
    """zig's ``-target`` for a kiln target and a glibc version (``aarch64-linux-gnu.2.17``)."""
    if not target.is_linux or target.arch not in ZIG_ARCHES:
        raise UnsupportedError(
            f"the zig backend builds for {', '.join('linux-' + a for a in ZIG_ARCHES)}, "
            f"not {target.name}",
            hint="macOS wheels need a macOS runner (--backend cibuildwheel)")
    if not _GLIBC.match(glibc):
        raise UnsupportedError(f"glibc {glibc!r} is not a version like 2.17")
    return f"{ZIG_ARCHES[target.arch]}-linux-gnu.{glibc}"


def wrapper_scripts(install: ZigInstall, triple: str, zig_cache: Path,
                    shims: Path) -> dict[str, str]:
    """Each wrapper's text. Every value is quoted; none comes from a recipe."""
    q = shlex.quote
    exports = (f"ZIG_GLOBAL_CACHE_DIR={q(str(zig_cache))}\n"
               f"ZIG_LOCAL_CACHE_DIR={q(str(zig_cache))}\n"
               "export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR\n")
    # The zig install, its cache and the header shims live wherever kiln's cache is: map
    # them to fixed names so debug info is the same on every machine.
    maps = " ".join(q(f"-ffile-prefix-map={seen}={canon}") for seen, canon in (
        (install.lib, ZIG_LIB_CANONICAL), (zig_cache, ZIG_CACHE_CANONICAL),
        (shims, SHIMS_CANONICAL)))
    maps = f"{q('-idirafter')} {q(str(shims))} {maps}"
    scripts = {}
    for name, (sub, compiles) in WRAPPERS.items():
        flags = " ".join(q(f) for f in COMPILE_FLAGS)
        args = f"{sub} -target {q(triple)} {flags} {maps}" if compiles else sub
        scripts[name] = (f"#!/bin/sh\n# written by kiln: zig {install.version} {sub}"
                         + (f" for {triple}" if compiles else "") + "\n"
                         + exports + f'exec {q(str(install.zig))} {args} "$@"\n')
    return scripts


def _cmake_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def cmake_toolchain(bin_dir: Path, target: Target, cross: bool) -> str:
    """A CMake toolchain file: zig's wrappers, and the target system when cross-compiling."""
    lines = ["# written by kiln for the zig backend"]
    if cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)",
                  f"set(CMAKE_SYSTEM_PROCESSOR {ZIG_ARCHES[target.arch]})"]
    lines += [f"set(CMAKE_C_COMPILER {_cmake_quote(str(bin_dir / 'cc'))})",
              f"set(CMAKE_CXX_COMPILER {_cmake_quote(str(bin_dir / 'c++'))})",
              f"set(CMAKE_AR {_cmake_quote(str(bin_dir / 'ar'))} CACHE FILEPATH \"\")",
              f"set(CMAKE_RANLIB {_cmake_quote(str(bin_dir / 'ranlib'))} CACHE FILEPATH \"\")"]
    return "\n".join(lines) + "\n"


def write_wrappers(install: ZigInstall, triple: str, target: Target, cross: bool,
                   tools: Path, zig_cache: Path) -> Path:
    """The wrapper folder for ``triple`` (rewritten only when its text would change)."""
    bin_dir = tools / f"zig-{install.version}-wrappers" / triple
    files = {name: (text, 0o755) for name, text in
             wrapper_scripts(install, triple, zig_cache, bin_dir / "include").items()}
    files["toolchain.cmake"] = (cmake_toolchain(bin_dir, target, cross), 0o644)
    (bin_dir / "include").mkdir(parents=True, exist_ok=True)
    for name, (text, mode) in files.items():
        path = bin_dir / name
        try:
            same = path.read_text() == text and (path.stat().st_mode & 0o777) == mode
        except OSError:
            same = False
        if not same:
            write_atomic(path, text, mode=mode)
    return bin_dir


_MULTIARCH_INCLUDE = re.compile(
    r"^#\s*include <([a-z0-9_]+-linux-gnu[a-z0-9]*)/(python3\.\d+t?)/pyconfig\.h>", re.M)


def multiarch_pyconfig(include_dir: Path) -> tuple[str, Path] | None:
    """For Debian's multiarch headers: (``python3.11``, the host's real pyconfig.h).

    Debian's ``pyconfig.h`` only picks ``<x86_64-linux-gnu/python3.11/pyconfig.h>`` (or
    another architecture's) from the system include path, which zig, bringing its own
    libc headers, does not search.
    """
    try:
        text = (include_dir / "pyconfig.h").read_text(errors="replace")
    except OSError:
        return None
    for multiarch, version in _MULTIARCH_INCLUDE.findall(text):
        real = Path("/usr/include") / multiarch / version / "pyconfig.h"
        if multiarch.startswith(host_target().arch + "-") and real.is_file():
            return version, real
    return None


def write_pyconfig_shim(shims: Path, triple: str, include_dir: Path) -> None:
    """Let a Debian interpreter's headers find their pyconfig.h under zig.

    The host's pyconfig.h stands in for the target's: for x86_64 and aarch64 Linux they
    differ only in macros CPython's own core uses (x87/x64 inline assembly, support tier).
    """
    found = multiarch_pyconfig(include_dir)
    if found is None:
        return
    version, real = found
    multiarch = f"{triple.split('-')[0]}-linux-gnu"
    path = shims / multiarch / version / "pyconfig.h"
    text = f'/* written by kiln: Debian multiarch pyconfig.h for zig */\n#include "{real}"\n'
    if not path.is_file() or path.read_text() != text:
        write_atomic(path, text)


def ext_suffix(soabi: str, target: Target) -> str:
    """The suffix ``target``'s interpreter loads (``.cpython-311-aarch64-linux-gnu.so``)."""
    parts = soabi.split("-")
    if len(parts) < 2 or parts[0] != "cpython":
        raise UnsupportedError(f"the zig backend cross-compiles for CPython only, not {soabi!r}")
    return f".{parts[0]}-{parts[1]}-{target.arch}-linux-gnu.so"


@functools.cache
def interpreter_include(python: Path) -> Path:
    """The folder of an interpreter's Python.h."""
    out = proc.capture([python, "-I", "-c",
                        "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))"],
                       what=f"asking {python} for its headers", error=EnvironmentSetupError,
                       quiet=True)
    return Path(out.stdout.decode().strip())


class ZigBackend:
    name = "zig"
    unsupported_variations: tuple[tuple[str, str], ...] = ()

    def toolchain(self, job: BuildJob) -> Toolchain:
        triple = zig_triple(job.target, job.recipe.glibc)
        cross = job.target != host_target()
        suffix = ext_suffix(job.interpreter.soabi, job.target) if cross else ""
        install = install_zig(job.cache, job.index)
        tools = job.cache / "tools"
        zig_cache = tools / "zig-cache"
        zig_cache.mkdir(parents=True, exist_ok=True)
        bin_dir = write_wrappers(install, triple, job.target, cross, tools, zig_cache)
        write_pyconfig_shim(bin_dir / "include", triple, interpreter_include(job.interpreter.path))
        env = [
            ("CC", str(bin_dir / "cc")),
            ("CXX", str(bin_dir / "c++")),
            ("LDSHARED", f"{bin_dir / 'cc'} -shared"),
            ("LDCXXSHARED", f"{bin_dir / 'c++'} -shared"),
            ("AR", str(bin_dir / "ar")),
            ("CMAKE_TOOLCHAIN_FILE", str(bin_dir / "toolchain.cmake")),
        ]
        if cross:
            env += [("_PYTHON_HOST_PLATFORM", f"linux-{job.target.arch}"),
                    ("SETUPTOOLS_EXT_SUFFIX", suffix)]
        glibc = job.recipe.glibc
        return Toolchain(
            tools=(Tool("ziglang", install.version, path=str(install.root),
                        sha256=install.wheel_sha256),
                   Tool("zig cc", " ".join(("-target", triple, *COMPILE_FLAGS))),
                   Tool("glibc", glibc)),
            env=tuple(env),
            tool_dirs=(str(bin_dir),),
            visible=(install.root, bin_dir),
            writable=(zig_cache,),
            cross=cross,
            policy=f"manylinux_{glibc.replace('.', '_')}_{job.target.arch}",
            notes=(f"zig {install.version} -target {triple}"
                   + (f", cross-compiled from {host_target().name}" if cross else ""),),
        )

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        def check(build_system: BuildSystem) -> None:
            if toolchain.cross:
                refuse_cross_backend(build_system, job)

        try:
            return pep517_build(job, toolchain, ws, log, check_backend=check)
        except BuildError as exc:
            if toolchain.cross and ran_target_binary(log):
                raise UnsupportedError(
                    f"{job.label}: the build tried to run a program compiled for "
                    f"{job.target.name}, which a cross build cannot do",
                    hint=f"build it on a {job.target.arch} machine: --backend cibuildwheel "
                         f"on an {job.target.arch} runner", log=log) from exc
            raise


def refuse_cross_backend(build_system: BuildSystem, job: BuildJob) -> None:
    """Raise UnsupportedError for a build backend kiln cannot cross-configure."""
    module = build_system.backend.split(":")[0].split(".")[0]
    why = _CROSS_REFUSED.get(module)
    if why is None:
        for requirement in build_system.requires:
            name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()
            why = _CROSS_REFUSED_REQUIRES.get(name.replace("_", "-"))
            if why:
                break
    if why:
        raise UnsupportedError(
            f"{job.label}: cannot cross-compile with {build_system.backend}: {why}",
            hint=f"build it on a {job.target.arch} machine: --backend cibuildwheel on an "
                 f"{job.target.arch} runner")


def ran_target_binary(log: Path) -> bool:
    try:
        with log.open(encoding="utf-8", errors="replace") as fh:
            return any(_RAN_TARGET_BINARY.search(line) for line in fh)
    except OSError:
        return False


BACKEND = ZigBackend()

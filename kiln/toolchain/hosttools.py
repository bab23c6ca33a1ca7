"""The host's own tools: described (for the host backend's record) or hidden (from a
hermetic build, which must not be able to run them).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
from pathlib import Path

from kiln import proc
from kiln.files import sha256_file
from kiln.memo import StatMemo
from kiln.memo import enabled as memo_enabled
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.tool import Tool

# Compilers, assemblers, linkers and tools that write or rewrite objects; with them the
# build generators and the programs that hand a build the host's flags and libraries.
COMPILERS = ("cc", "c++", "cpp", "c89", "c99", "gcc", "gcc-*", "g++", "g++-*", "clang",
             "clang-*", "clang++", "clang++-*", "clang-cpp*", "gfortran", "gfortran-*", "f77",
             "f95", "as", "ld", "ld.*", "lld", "ld64.lld", "ar", "ranlib", "strip", "objcopy",
             "rustc", "cargo", "rustup", "*-linux-gnu-*gcc*", "*-linux-gnu-*g++*",
             "*-linux-gnu-cpp*", "*-linux-gnu-as", "*-linux-gnu-ld*", "*-linux-gnu-ar",
             "*-linux-gnu-ranlib", "*-linux-gnu-strip", "*-linux-gnu-objcopy",
             "*-linux-gnu-gfortran*")
BUILD_TOOLS = ("cmake", "ctest", "cpack", "ccmake", "ninja", "meson", "pkg-config", "pkgconf",
               "*-linux-gnu-pkg-config", "python*-config", "*-linux-gnu-python*-config")
_BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin")
# Folders of headers, compiler internals and pkg-config files a hermetic build must not find.
_FOLDERS = ("/usr/include", "/usr/local/include", "/usr/lib/gcc", "/usr/libexec/gcc",
            "/usr/lib/gcc-cross", "/usr/lib/pkgconfig", "/usr/local/lib/pkgconfig",
            "/usr/share/pkgconfig", "/usr/lib/x86_64-linux-gnu/pkgconfig",
            "/usr/lib/aarch64-linux-gnu/pkgconfig")


def _matching(patterns: tuple[str, ...], dirs: tuple[str, ...] = _BIN_DIRS) -> list[Path]:
    """The real files behind every name in ``dirs`` that matches ``patterns``."""
    # One expression for all the patterns: /usr/bin holds a thousand names or more, and
    # matching each against fifty patterns one by one took 40 ms of every build, cached
    # ones included.
    matches = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    found: dict[Path, None] = {}
    for folder in dirs:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if not matches(name):
                continue
            real = Path(folder, name).resolve()
            # ld.so is the dynamic loader, which every program needs (Debian puts a link
            # to it in /usr/bin); no shared object is ever hidden.
            if real.is_file() and ".so" not in real.name and name != "ld.so":
                found.setdefault(real)
    return list(found)


@functools.cache
def build_tools() -> tuple[Path, ...]:
    """The host's cmake, ninja, meson, pkg-config and python-config, as real files."""
    return tuple(_matching(BUILD_TOOLS))


@functools.cache
def compilers_and_tools() -> tuple[Path, ...]:
    """Every host compiler, linker and build tool kiln knows by name, as real files."""
    return tuple(_matching(COMPILERS + BUILD_TOOLS))


def hidden_from_hermetic_builds(interpreter: Interpreter) -> tuple[Path, ...]:
    """What a hermetic build must not see: the host's compilers, tools and headers.

    The interpreter's own headers go too: the build compiles against kiln's pinned ones.
    """
    folders = [Path(f) for f in _FOLDERS]
    prefix = interpreter.path.parent.parent
    folders.append(prefix / "include")
    existing = [f for f in folders if f.is_dir() and not f.is_symlink()]
    return (*compilers_and_tools(), *existing)


@functools.cache
def describe_tool(command: str, name: str | None = None) -> Tool | None:
    """A tool on PATH, by version line and the digest of the file that runs."""
    exe = shutil.which(command)
    if exe is None:
        return None
    real = Path(exe).resolve()
    depends = [real]
    if real.name == "rustup":
        # rustup's proxies stay the same file while the toolchains behind them change.
        rustup_home = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
        depends += [p for p in (rustup_home / "settings.toml", rustup_home / "toolchains")
                    if p.exists()]
    memo = StatMemo("tools") if memo_enabled() else None
    key = f"{real} as {command}"
    known = memo.get(key) if memo else None
    if known is None:
        out = proc.capture([exe, "--version"], what=f"{command} --version", check=False,
                           quiet=True)
        text = (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()
        known = {"version": text[0] if text else "unknown", "sha256": sha256_file(real)}
        if memo:
            memo.put(key, depends, known)
    return Tool(name=name or command, version=known["version"], path=str(real),
                sha256=known["sha256"])

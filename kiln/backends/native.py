"""The host's own compiler, for the host's own platform."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from kiln import proc
from kiln.backends import BuildJob, RawBuild, Tool, Toolchain
from kiln.backends.pep517build import pep517_build
from kiln.buildenv import Workspace
from kiln.errors import UnsupportedError
from kiln.files import sha256_file
from kiln.memo import StatMemo
from kiln.memo import enabled as memo_enabled
from kiln.targets import host_target


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


# Tools a native build may reach for; each one found is recorded and pinned by digest.
_OPTIONAL_TOOLS = ("ld", "cmake", "ninja", "make", "pkg-config", "rustc", "cargo", "gfortran")


class NativeBackend:
    name = "native"
    unsupported_variations: tuple[tuple[str, str], ...] = ()

    def toolchain(self, job: BuildJob) -> Toolchain:
        host = host_target()
        if job.target != host:
            raise UnsupportedError(
                f"{job.label}: the native backend builds only for this host ({host.name})",
                hint=f"use --backend zig to cross-compile for {job.target.name}, or build on a "
                     f"{job.target.name} machine",
            )
        tools: list[Tool] = []
        for command, role in ((job.interpreter.cc, "cc"), (job.interpreter.cxx, "c++")):
            tool = describe_tool(command.split()[0], role)
            if tool:
                tools.append(tool)
        for command in _OPTIONAL_TOOLS:
            tool = describe_tool(command)
            if tool:
                tools.append(tool)
        tool_dirs: list[str] = []
        env: list[tuple[str, str]] = []
        cargo = shutil.which("cargo")
        if cargo:
            tool_dirs.append(str(Path(cargo).parent))
            home = Path.home()
            # rustup's proxies find their toolchains through these; the build's HOME is not ours.
            for var, default in (("CARGO_HOME", home / ".cargo"),
                                 ("RUSTUP_HOME", home / ".rustup")):
                value = os.environ.get(var, str(default))
                if Path(value).is_dir():
                    env.append((var, value))
            env.append(("CARGO_NET_OFFLINE", "true"))
        return Toolchain(tools=tuple(tools), env=tuple(env), tool_dirs=tuple(tool_dirs))

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        return pep517_build(job, toolchain, ws, log)


BACKEND = NativeBackend()

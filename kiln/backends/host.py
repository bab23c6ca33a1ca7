"""The host's own compilers and libraries, for the host's own platform.

For what cannot be hermetic yet: a recipe that builds against the host's system packages
(``[build] system-requires``), or names ``backend = "host"``. Its wheels depend on the
machine (its compiler, its glibc, its ``-dev`` packages, how its CPython was configured),
and every record says so: ``"hermetic": false`` and why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kiln.backends import BuildJob, RawBuild, Toolchain
from kiln.backends.pep517build import pep517_build
from kiln.buildenv import Workspace
from kiln.errors import UnsupportedError
from kiln.toolchain.hosttools import describe_tool
from kiln.toolchain.targets import host_target
from kiln.toolchain.tool import Tool

# Tools a host build may reach for; each one found is recorded and pinned by digest.
_OPTIONAL_TOOLS = ("ld", "cmake", "ninja", "make", "pkg-config", "rustc", "cargo", "gfortran")


class HostBackend:
    name = "host"
    # The host backend builds with the interpreter's own configuration and the host's
    # tools: another CPython build, or other tools, are other inputs, not surroundings.
    unsupported_variations: tuple[tuple[str, str], ...] = (
        ("interpreter", "the host backend compiles with the interpreter's own configuration"),
        ("tools", "the host backend builds with the host's own tools"),
    )

    def toolchain(self, job: BuildJob) -> Toolchain:
        host = host_target()
        if job.target != host:
            raise UnsupportedError(
                f"{job.label}: the host backend builds only for this host ({host.name})",
                hint=f"the hermetic backend builds {job.target.name} wheels from any Linux "
                     "host (--backend hermetic)" if job.target.is_linux else
                     f"build on a {job.target.name} machine")
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
        why = [f"built with this host's compilers ({', '.join(t.name for t in tools[:2])}) "
               f"and its CPython's own configuration ({job.interpreter.version} at "
               f"{job.interpreter.path})"]
        if job.system_packages:
            why.append("linked against the host's system packages: "
                       + ", ".join(f"{p.name} {p.version}" for p in job.system_packages))
        return Toolchain(tools=tuple(tools), env=tuple(env), tool_dirs=tuple(tool_dirs),
                         hermetic=False, not_hermetic=tuple(why))

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        return pep517_build(job, toolchain, ws, log)


BACKEND = HostBackend()

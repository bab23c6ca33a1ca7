"""Build tools for the libraries a recipe declares: pkg-config, cmake and ninja, pinned.

Each is a wheel from PyPI named in ``kiln/resources/toolchains.toml`` (``[tools.NAME]``)
with the sha256 of its wheel for each host, installed by kiln into its cache with
``--require-hashes`` and run from there: a library's build never runs the host's cmake or
pkg-config (the hermetic sandbox hides them). The build sees each at
``/kiln/toolchain/tools/NAME``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kiln import installer, proc, toml
from kiln.errors import EnvironmentSetupError, UnsupportedError
from kiln.files import exclusive, sha256_file, write_atomic
from kiln.installer import IndexOptions
from kiln.progress import reporter
from kiln.toolchain.targets import host_target

TOOLS_INSIDE = "/kiln/toolchain/tools"  # NAME → the program; the build's PATH has it
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class ToolPin:
    name: str  # what the build runs it as: "pkg-config", "cmake", "ninja"
    package: str
    version: str
    binary: str  # the program's path inside the installed wheel
    wheels: tuple[tuple[str, str], ...]  # (host target name, sha256)

    def wheel_sha256(self) -> str:
        host = host_target()
        found = dict(self.wheels).get(host.name)
        if found is None:
            raise UnsupportedError(
                f"no pinned {self.package} {self.version} wheel for a {host.name} host",
                hint=f"add this host's wheel sha256 (from PyPI) to [tools.{self.name}.wheels] "
                     "in kiln/resources/toolchains.toml")
        return found


def parse_tool_pins(text: str, where: str = "toolchains.toml") -> dict[str, ToolPin]:
    """The ``[tools.NAME]`` tables of a toolchains file, checked field by field."""
    tables = toml.loads(text).get("tools", {})
    pins = {}
    for name, data in tables.items():
        at = f"{where}: [tools.{name}]"
        package, version = data.get("package"), data.get("version")
        binary, wheels = data.get("binary"), data.get("wheels")
        if not isinstance(package, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", package):
            raise EnvironmentSetupError(f"{at} package must be a project name")
        if not isinstance(version, str) or not version:
            raise EnvironmentSetupError(f"{at} version must be a version string")
        if not isinstance(binary, str) or binary.startswith("/") or ".." in binary.split("/"):
            raise EnvironmentSetupError(f"{at} binary must be a path inside the wheel")
        if not isinstance(wheels, dict) or not wheels or not all(
                isinstance(d, str) and _SHA256.match(d) for d in wheels.values()):
            raise EnvironmentSetupError(f"{at} wheels must map hosts to sha256 digests")
        pins[name] = ToolPin(name, package, version, binary, tuple(sorted(wheels.items())))
    return pins


@functools.cache
def tool_pins() -> dict[str, ToolPin]:
    text = (resources.files("kiln") / "resources" / "toolchains.toml").read_text("utf-8")
    return parse_tool_pins(text, "kiln/resources/toolchains.toml")


@dataclass(frozen=True)
class InstalledTool:
    pin: ToolPin
    root: Path  # <cache>/tools/<package>-<version>: the wheel installed with --target
    wheel_sha256: str

    @property
    def program(self) -> Path:
        return self.root / self.pin.binary

    @property
    def inside(self) -> str:
        """Where a sandboxed build sees the install."""
        return f"{TOOLS_INSIDE}/{self.pin.name}.d"


def _installed(root: Path, pin: ToolPin, sha: str) -> InstalledTool | None:
    try:
        info = json.loads((root / "kiln-install.json").read_text())
    except (OSError, ValueError):
        return None
    tool = InstalledTool(pin, root, sha)
    if info.get("wheel_sha256") != sha or not tool.program.is_file():
        return None
    st = tool.program.stat()
    if [st.st_size, st.st_mtime_ns] != info.get("stat") and \
            sha256_file(tool.program) != info.get("program_sha256"):
        return None
    return tool


def install_tool(name: str, cache: Path, index: IndexOptions) -> InstalledTool:
    """The pinned tool ``name``, installed into ``cache/tools`` (once) by its wheel's hash."""
    pin = tool_pins()[name]
    sha = pin.wheel_sha256()
    root = cache / "tools" / f"{pin.package}-{pin.version}"
    found = _installed(root, pin, sha)
    if found is not None:
        return found
    with exclusive(root.with_name(root.name + ".lock")):
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
                     error=EnvironmentSetupError, env=installer.uv_env(),
                     hint=f"[library] builds need the {pin.package} wheel from the index")
            program = target / pin.binary
            if not program.is_file():
                raise EnvironmentSetupError(f"the {pin.package} {pin.version} wheel holds no "
                                            f"{pin.binary}")
            st = program.stat()
            write_atomic(target / "kiln-install.json", json.dumps({
                "package": pin.package, "version": pin.version, "wheel_sha256": sha,
                "program_sha256": sha256_file(program), "stat": [st.st_size, st.st_mtime_ns],
            }, indent=1))
            if root.exists():
                shutil.rmtree(root)
            target.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    done = _installed(root, pin, sha)
    if done is None:  # pragma: no cover - only if someone changes the cache under us
        raise EnvironmentSetupError(f"{root}: the install kiln just made does not check out")
    return done

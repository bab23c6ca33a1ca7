"""Build tools for the libraries a recipe declares: pkg-config, cmake and ninja, pinned.

Each is a wheel from PyPI named in ``kiln/resources/toolchains.toml`` (``[tools.NAME]``)
with the sha256 of its wheel for each host, installed by kiln into its cache with
``--require-hashes`` and run from there: a library's build never runs the host's cmake or
pkg-config (the hermetic sandbox hides them). The build sees each at
``/kiln/toolchain/tools/NAME``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kiln import toml
from kiln.errors import EnvironmentSetupError, UnsupportedError
from kiln.installer import IndexOptions
from kiln.toolchain.targets import host_target
from kiln.toolchain.wheelinstall import install_wheel

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


def install_tool(name: str, cache: Path, index: IndexOptions) -> InstalledTool:
    """The pinned tool ``name``, installed into ``cache/tools`` (once) by its wheel's hash."""
    pin = tool_pins()[name]
    sha = pin.wheel_sha256()
    root = cache / "tools" / f"{pin.package}-{pin.version}"
    install_wheel(pin.package, pin.version, sha, root, index, program=pin.binary,
                  hint=f"[library] builds need the {pin.package} wheel from the index")
    return InstalledTool(pin, root, sha)

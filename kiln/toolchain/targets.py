"""The platforms kiln builds for, and which of them this host can build natively."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str  # "linux-aarch64"
    os: str  # "linux" | "macos"
    arch: str  # as the wheel tag spells it: "x86_64", "aarch64", "arm64"

    @property
    def is_linux(self) -> bool:
        return self.os == "linux"

    @property
    def is_macos(self) -> bool:
        return self.os == "macos"

    @property
    def raw_platform_tag(self) -> str:
        """The tag a build tags its wheel with before repair (``linux_aarch64``)."""
        if self.is_linux:
            return f"linux_{self.arch}"
        return f"macosx_11_0_{self.arch}"


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("linux-x86_64", "linux", "x86_64"),
        Target("linux-aarch64", "linux", "aarch64"),
        Target("linux-ppc64le", "linux", "ppc64le"),
        Target("linux-s390x", "linux", "s390x"),
        Target("macos-x86_64", "macos", "x86_64"),
        Target("macos-arm64", "macos", "arm64"),
    )
}


def host_target() -> Target:
    import platform

    machine = platform.machine().lower()
    if sys.platform.startswith("linux"):
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        return TARGETS.get(f"linux-{arch}", Target(f"linux-{arch}", "linux", arch))
    if sys.platform == "darwin":
        arch = "arm64" if machine in {"arm64", "aarch64"} else "x86_64"
        return TARGETS[f"macos-{arch}"]
    return Target(f"{sys.platform}-{machine}", sys.platform, machine)


def target_of_platform_tag(tag: str) -> Target | None:
    """The target of a wheel's platform tag (``manylinux_2_17_aarch64`` → linux-aarch64)."""
    for target in TARGETS.values():
        if target.is_linux and tag.startswith(("linux_", "manylinux", "musllinux")):
            if tag.endswith("_" + target.arch):
                return target
        elif target.is_macos and tag.startswith("macosx_") and tag.endswith("_" + target.arch):
            return target
    return None

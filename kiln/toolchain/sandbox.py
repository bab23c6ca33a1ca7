"""Run build steps in a sandbox: fixed paths, a private /tmp, and no network.

With bubblewrap, the build folders are bound at fixed paths under ``/kiln`` and the
backend runs in a fresh network namespace. Without it, paths stay where they are (the
compiler's prefix maps hide them) and the network is cut with ``unshare --net`` where
that works; the record says which of these held.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CANONICAL_ROOT = "/kiln"


@dataclass(frozen=True)
class Bind:
    host: Path
    inside: str
    writable: bool = True


@functools.cache
def bwrap_path() -> Path | None:
    """bubblewrap, if it is installed and can make namespaces here."""
    if os.environ.get("KILN_NO_BWRAP"):
        return None
    found = shutil.which("bwrap")
    if not found:
        return None
    probe = subprocess.run(
        [found, "--ro-bind", "/", "/", "--unshare-net", "--dev", "/dev", "true"],
        capture_output=True, check=False,
    )
    return Path(found) if probe.returncode == 0 else None


@functools.cache
def bwrap_version() -> str:
    exe = bwrap_path()
    if exe is None:
        return ""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


@functools.cache
def pid_namespace_works() -> bool:
    """Whether bubblewrap can give the build its own PID namespace here: then every
    process the build starts, even one that left its session, ends with the sandbox."""
    exe = bwrap_path()
    if exe is None:
        return False
    probe = subprocess.run(
        [exe, "--ro-bind", "/", "/", "--unshare-pid", "--dev", "/dev", "--proc", "/proc",
         "true"],
        capture_output=True, check=False,
    )
    return probe.returncode == 0


@functools.cache
def unshare_net_works() -> bool:
    found = shutil.which("unshare")
    if not found:
        return False
    for flags in (["--net"], ["--map-root-user", "--net"]):
        probe = subprocess.run([found, *flags, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return True
    return False


@functools.cache
def _unshare_flags() -> tuple[str, ...]:
    found = shutil.which("unshare") or "unshare"
    for flags in (("--net",), ("--map-root-user", "--net")):
        probe = subprocess.run([found, *flags, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return (found, *flags)
    return ()


def _root_entries() -> list[str]:
    skip = {"proc", "dev", "tmp", "kiln", "sys"}
    return sorted(e for e in os.listdir("/") if e not in skip and not e.startswith("kiln"))


@dataclass(frozen=True)
class Sandbox:
    """Where each build folder appears to the build, and how to run a command there."""

    binds: tuple[Bind, ...]
    tmp: Path  # the host folder seen as /tmp
    hostname: str = "kiln"
    use_bwrap: bool = True
    # Host paths the build must see where they are (interpreter, kiln's own files): the
    # private /tmp would hide them if they live under /tmp.
    visible: tuple[Path, ...] = field(default=())
    # Host paths the build may write where they are (a compiler cache shared by builds).
    writable: tuple[Path, ...] = field(default=())
    # Host files and folders the build must not see (the host's compilers and headers,
    # for a hermetic build): each file is replaced by ``stub``, each folder by an empty one.
    hidden: tuple[Path, ...] = field(default=())
    stub: Path | None = None

    @property
    def isolated(self) -> bool:
        return self.use_bwrap and bwrap_path() is not None

    def inside(self, host: Path) -> str:
        """The path at which the build sees ``host``."""
        if not self.isolated:
            return str(host)
        host = host.absolute()
        for bind in sorted(self.binds, key=lambda b: len(str(b.host)), reverse=True):
            if host == bind.host or bind.host in host.parents:
                return bind.inside + str(host)[len(str(bind.host)):]
        if host == self.tmp or self.tmp in host.parents:
            return "/tmp" + str(host)[len(str(self.tmp)):]
        return str(host)

    def _hiding(self) -> list[str]:
        args: list[str] = []
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path), "--remount-ro", str(path)]
            elif path.exists() and self.stub is not None:
                args += ["--ro-bind", str(self.stub), str(path)]
        return args

    def network_note(self) -> str:
        if self.isolated:
            return f"off ({bwrap_version() or 'bubblewrap'} --unshare-net)"
        if unshare_net_works():
            return "off (unshare --net)"
        return "NOT isolated: neither bubblewrap nor unshare --net works on this host"

    def wrap(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        network: bool = False,
        extra_binds: Sequence[Bind] = (),
    ) -> list[str]:
        """``argv`` as it must be run: inside bubblewrap, or behind ``unshare --net``."""
        exe = bwrap_path() if self.use_bwrap else None
        if exe is None:
            if not network and _unshare_flags():
                return [*_unshare_flags(), *argv]
            return list(argv)
        args: list[str] = [str(exe), "--die-with-parent", "--unshare-uts", "--unshare-ipc",
                           "--hostname", self.hostname]
        if not network:
            args.append("--unshare-net")
        if pid_namespace_works():
            # --die-with-parent ends only bubblewrap's own child; a PID namespace ends with
            # its first process, so a stopped kiln leaves no compiler or backend behind.
            args.append("--unshare-pid")
        # The host's root, read-only, entry by entry: bubblewrap's own root stays a tmpfs
        # so the fixed /kiln paths can be made without touching the host.
        for entry in _root_entries():
            path = Path("/") / entry
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.exists():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--ro-bind", "/sys", "/sys", "--dev", "/dev", "--proc", "/proc",
                 "--bind", str(self.tmp), "/tmp"]
        for path in self.visible:
            if path == Path("/tmp") or Path("/tmp") in path.parents:
                args += ["--ro-bind", str(path), str(path)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        args += self._hiding()
        for bind in (*self.binds, *extra_binds):
            args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), bind.inside]
        if cwd:
            args += ["--chdir", cwd]
        return [*args, "--", *argv]

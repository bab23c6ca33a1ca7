"""A toolchain wheel (ziglang, cmake, ninja, pkgconf) installed once into kiln's cache.

The wheel is installed with ``--require-hashes`` against its pinned sha256 into a staging
folder, checked, and renamed into place under a lock, so concurrent builds never see half
an install. A marker records the digest of the program that matters, so an install that
changed behind kiln's back is installed again.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from kiln import installer, proc
from kiln.errors import EnvironmentSetupError
from kiln.files import exclusive, sha256_file, write_atomic
from kiln.installer import IndexOptions
from kiln.progress import reporter

MARKER = "kiln-install.json"


def is_installed(root: Path, version: str, sha: str, program: str) -> bool:
    """Whether ``root`` holds the pinned wheel, its ``program`` untouched."""
    try:
        info = json.loads((root / MARKER).read_text())
        st = (root / program).stat()
    except (OSError, ValueError):
        return False
    if info.get("wheel_sha256") != sha or info.get("version") != version:
        return False
    # Changed since kiln installed it: only the digest can say whether it is still ours.
    changed = [st.st_size, st.st_mtime_ns] != info.get("stat")
    return not changed or sha256_file(root / program) == info.get("program_sha256")


def install_wheel(package: str, version: str, sha: str, root: Path, index: IndexOptions, *,
                  program: str, hint: str, check: Callable[[Path], None] | None = None,
                  log: Path | None = None) -> None:
    """``package==version`` (its wheel's sha256 ``sha``) installed at ``root``, once.

    ``program`` is the file inside the wheel the install is for; ``check`` may refuse it
    (raise) before the install is put in place.
    """
    if is_installed(root, version, sha, program):
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(root.with_name(root.name + ".lock")):
        if is_installed(root, version, sha, program):
            return
        reporter().stage("toolchain", f"installing {package} {version} into {root}")
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            requirements = staging / "requirements.txt"
            requirements.write_text(f"{package}=={version} --hash=sha256:{sha}\n")
            target = staging / "install"
            # Copied, not linked from uv's cache: the install is checked by its own digest, and
            # must not share its files with anything else.
            proc.run([installer.uv_binary(), "pip", "install", "--quiet", "--no-deps",
                      "--require-hashes", "--link-mode", "copy", "--python", sys.executable,
                      "--target", target,
                      *index.args(), "-r", requirements],
                     what=f"installing {package} {version} (sha256 {sha[:12]}…)",
                     error=EnvironmentSetupError, env=installer.uv_env(), log=log, hint=hint)
            installed = target / program
            if not installed.is_file():
                raise EnvironmentSetupError(f"the {package} {version} wheel holds no {program}")
            if check is not None:
                check(installed)
            st = installed.stat()
            write_atomic(target / MARKER, json.dumps({
                "package": package, "version": version, "wheel_sha256": sha,
                "program_sha256": sha256_file(installed), "stat": [st.st_size, st.st_mtime_ns],
            }, indent=1))
            if root.exists():
                shutil.rmtree(root)  # a broken or other install: replaced whole
            target.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not is_installed(root, version, sha, program):  # pragma: no cover - changed under us
        raise EnvironmentSetupError(f"{root}: the install kiln just made does not check out")

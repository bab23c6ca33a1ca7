"""Run a recipe's tests against a built wheel, installed alone into a fresh environment."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kiln import installer, proc
from kiln.errors import WheelTestError
from kiln.installer import IndexOptions
from kiln.recipe import TestSpec
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.sandbox import Sandbox


@dataclass(frozen=True)
class TestOutcome:
    ran: bool
    passed: bool | None
    commands: tuple[str, ...]
    seconds: float
    emulated: bool = False
    why_not: str = ""


def _resolve(argv0: str, bin_dir: Path) -> str:
    if argv0 in ("python", "python3"):
        return str(bin_dir / "python")
    local = bin_dir / argv0
    if local.exists():
        return str(local)
    return shutil.which(argv0, path="/usr/local/bin:/usr/bin:/bin") or argv0


def run_wheel_tests(
    wheel: Path,
    spec: TestSpec,
    interpreter: Interpreter,
    *,
    work: Path,
    index: IndexOptions,
    log: Path,
    label: str,
) -> TestOutcome:
    """Install ``wheel`` (with its dependencies and the test requirements) and run the commands.

    The commands run without a shell, without network, in an empty folder, so they
    import the installed wheel and never the source tree.
    """
    if not spec.commands:
        return TestOutcome(False, None, (), 0.0, why_not="the recipe has no [test] commands")
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="test-", dir=work))
    try:
        venv = root / "venv"
        python = installer.create_venv(venv, interpreter.path, log=log)
        installer.install(python, requirements=[str(wheel), *spec.requires], index=index, log=log,
                          what=f"{label}: installing the wheel for its tests", error=WheelTestError)
        scratch = root / "tmp"
        scratch.mkdir()
        sandbox = Sandbox(binds=(), tmp=scratch, hostname="kiln-test",
                          visible=(venv, interpreter.path.parent.parent))
        env = {
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp" if sandbox.isolated else str(scratch),
            "TMPDIR": "/tmp" if sandbox.isolated else str(scratch),
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "VIRTUAL_ENV": str(venv),
            "PYTHONNOUSERSITE": "1",
        }
        cwd = "/tmp" if sandbox.isolated else str(scratch)
        rendered = []
        for argv in spec.commands:
            rendered.append(proc.render(argv))
            resolved = [_resolve(argv[0], venv / "bin"), *argv[1:]]
            proc.run(sandbox.wrap(resolved, cwd=cwd, network=False), env=env, log=log,
                     what=f"{label}: test command `{proc.render(argv)}`", error=WheelTestError,
                     cwd=scratch, hint="the build log holds the command's output")
        return TestOutcome(True, True, tuple(rendered), round(time.monotonic() - started, 3))
    finally:
        shutil.rmtree(root, ignore_errors=True)

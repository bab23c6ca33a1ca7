"""Run a recipe's tests against a built wheel, installed alone into a fresh environment."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln import installer, proc
from kiln.archive import extract
from kiln.errors import WheelTestError
from kiln.installer import IndexOptions
from kiln.lockfile import Lock
from kiln.recipe import TestSpec
from kiln.record import LockedRequirement, TestCountsRef, TestRef
from kiln.testresults import TestCounts, instrument, read_counts, total
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.sandbox import Sandbox

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ERROR_LINE = re.compile(r"\b(?:error|Error|ERROR)\b")


@dataclass(frozen=True)
class TestOutcome:
    ran: bool
    passed: bool | None
    commands: tuple[str, ...]
    seconds: float
    emulated: bool = False
    why_not: str = ""
    counts: TestCounts | None = None  # when a command ran pytest or unittest


def test_ref(outcome: TestOutcome, lock: Lock | None = None, python: str = "") -> TestRef:
    """What the build record says about the tests (and the locked test requirements)."""
    c = outcome.counts
    pins = lock.pins_for(python) if lock is not None and outcome.ran else ()
    return TestRef(ran=outcome.ran, passed=outcome.passed, commands=list(outcome.commands),
                   seconds=outcome.seconds, emulated=outcome.emulated, why_not=outcome.why_not,
                   counts=None if c is None else TestCountsRef(
                       collected=c.collected, passed=c.passed, failed=c.failed,
                       skipped=c.skipped, first_failure=c.first_failure,
                       skip_reasons=list(c.skip_reasons)),
                   requirements=[LockedRequirement(name=p.name, version=p.version,
                                                   hashes=list(p.hashes), marker=p.marker)
                                 for p in pins],
                   lock_sha256=lock.sha256 if lock is not None and outcome.ran else "")


def has_tests(spec: TestSpec) -> bool:
    return bool(spec.commands) or spec.smoke


def compiled_modules(wheel: Path) -> tuple[str, ...]:
    """The dotted names of a wheel's compiled extension modules (``pkg._speedups``)."""
    return _modules(_members(wheel))[0]


def importable_packages(wheel: Path) -> tuple[str, ...]:
    """A pure wheel's top-level modules worth importing: not namespace folders (no
    ``__init__.py``), not stub-only packages (``foo-stubs``, only ``.pyi``)."""
    return _modules(_members(wheel))[1]


def _members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def _modules(members: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(compiled modules by dotted name, importable top-level packages and modules)."""
    compiled, packages = set(), set()
    for member in members:
        folder, _, leaf = member.rpartition("/")
        if leaf.endswith((".so", ".pyd")):
            # a folder that is not an identifier (x.data, x.libs) is no module's
            stem = leaf.split(".", 1)[0]
            parts = [*folder.split("/"), stem] if folder else [stem]
            if all(_IDENTIFIER.match(p) for p in parts):
                compiled.add(".".join(parts))
        top, _, rest = member.partition("/")
        if top.endswith((".dist-info", ".data")):
            continue
        if not rest and top.endswith(".py") and _IDENTIFIER.match(top[:-3]):
            packages.add(top[:-3])
        elif rest == "__init__.py" and _IDENTIFIER.match(top):
            packages.add(top)
    return tuple(sorted(compiled)), tuple(sorted(packages))


# Each module is imported; one that needs a package the wheel does not install (an optional
# backend: zstandard._cffi needs cffi, an extra) is reported and passed over, while a
# failure inside the wheel's own packages fails the test.
_SMOKE = """import importlib
for m in {modules!r}:
    try:
        importlib.import_module(m)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in {own!r}:
            raise
        print(f"skipped {{m}}: it needs {{e.name}}, which the wheel does not require")"""


def smoke_command(wheel: Path) -> tuple[str, ...] | None:
    """``python -c …``: import the compiled modules (else the real packages), or None."""
    compiled, packages = _modules(_members(wheel))
    modules = compiled or packages
    if not modules:
        return None
    if len(modules) == 1:  # the wheel's one module: it must import
        return ("python", "-c", f"import {modules[0]}")
    # A sorted tuple, never a set: the command is recorded, and a set's order is the hash's.
    own = tuple(sorted({m.split(".")[0] for m in (*modules, *packages)}))
    return ("python", "-c", _SMOKE.format(modules=list(modules), own=own))


def commands_for(spec: TestSpec, wheel: Path) -> tuple[tuple[str, ...], ...]:
    """The recipe's commands, then (with ``smoke = true``) the import of the wheel's modules."""
    smoke = smoke_command(wheel) if spec.smoke else None
    if spec.smoke and smoke is None:
        raise WheelTestError(f"{wheel.name}: [test] smoke: the wheel has no module to import",
                             hint="write [test] commands that exercise the package instead")
    return (*spec.commands, *((smoke,) if smoke else ()))


def copy_test_files(spec: TestSpec, sdist: Path | None, into: Path, work: Path) -> None:
    """The sdist's test files (``[test] files``) copied into the folder the tests run in; the
    package's own source is never copied, so the installed wheel is what the tests import."""
    if not spec.files:
        return
    if sdist is None:
        raise WheelTestError("[test] files: no sdist to copy them from",
                             hint="run the recipe's tests through `kiln build`, or "
                                  "`kiln test WHEEL --recipe RECIPE`")
    unpacked = Path(tempfile.mkdtemp(prefix="test-files-", dir=work))
    try:
        top = extract(sdist, unpacked / "src")
        for name in spec.files:
            source = top / name
            if not source.exists() or source.is_symlink():
                raise WheelTestError(f"[test] files: {name} is not in {sdist.name}",
                                     hint="list folders and files as the sdist holds them, "
                                          "relative to its top folder (tests, conftest.py)")
            dest = into / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, symlinks=False, dirs_exist_ok=True)
            else:
                shutil.copy2(source, dest)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def run_suite(commands: Sequence[tuple[str, ...]], wrap: Callable[[tuple[str, ...]], list[str]],
              *, scratch: Path, inside: str, env: Mapping[str, str], log: Path, what: str,
              ) -> TestCounts | None:
    """Run each test command (wrapped for its sandbox) in ``scratch`` (``inside`` is that
    folder as the command sees it); the counts of all of them, or WheelTestError naming the
    first failing test."""
    counted: list[TestCounts | None] = []
    for i, argv in enumerate(commands):
        report = f".kiln-junit-{i}.xml"
        run = instrument(argv, scratch / report, f"{inside}/{report}")
        output = scratch.parent / f"test-output-{i}.log"
        # Unbuffered: a traceback and the lines printed before it reach the log in order.
        finished = proc.run(wrap(run.argv), env={**env, "PYTHONUNBUFFERED": "1"}, log=output,
                            cwd=scratch, check=False, what=f"{what} `{proc.render(argv)}`",
                            error=WheelTestError)
        text = output.read_text(encoding="utf-8", errors="replace")
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text)
        counts = read_counts(run, text)
        counted.append(counts)
        if finished.returncode != 0 or (counts is not None and counts.failed):
            error = WheelTestError(_failure(what, argv, finished.returncode, counts, text),
                                   hint=proc.quote(finished.tail.splitlines()), log=log)
            error.counts, error.command = counts, proc.render(argv)
            raise error
    return total(counted)


def _failure(what: str, argv: tuple[str, ...], code: int, counts: TestCounts | None,
             output: str) -> str:
    said = f"{what} `{proc.render(argv)}` failed (exit {code})"
    if counts is not None and counts.collected:
        if "during collection" in output and not counts.passed:
            said += f": {counts.failed} error(s) while collecting the tests"
        else:
            said += f": {counts.failed} of {counts.collected} failed"
        if counts.first_failure:
            said += f", first {counts.first_failure}"
        return said
    lines = [line.strip() for line in output.splitlines() if line.strip()
             and not proc.SCAFFOLDING.match(line) and not line.startswith("+ ")]
    # The line that says what went wrong ("error: unrecognized arguments"), else the last.
    said_why = next((line for line in reversed(lines) if _ERROR_LINE.search(line)),
                    lines[-1] if lines else "no output")
    return f"{said}: {said_why}"


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
    sdist: Path | None = None,
    test_lock: Path | None = None,
) -> TestOutcome:
    """Install ``wheel`` (with its dependencies and the test requirements) and run the commands.

    The commands run without a shell, without network, in a folder that holds only the
    test files the recipe names, so they import the installed wheel and never the source.
    """
    if not has_tests(spec):
        return TestOutcome(False, None, (), 0.0, why_not="the recipe has no [test] commands")
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="test-", dir=work))
    try:
        commands = commands_for(spec, wheel)
        venv = root / "venv"
        python = installer.create_venv(venv, interpreter.path, log=log)
        if test_lock is not None:  # the locked test requirements first, each by its hash
            installer.install(python, requirement_files=[test_lock], index=index, log=log,
                              require_hashes=True, no_deps=True, error=WheelTestError,
                              what=f"{label}: installing the locked test requirements "
                                   f"({test_lock.name})")
        installer.install(python, requirements=[str(wheel), *(spec.requires if test_lock is None
                                                              else ())],
                          index=index, log=log, error=WheelTestError,
                          what=f"{label}: installing the wheel for its tests")
        scratch = root / "tmp"
        scratch.mkdir()
        copy_test_files(spec, sdist, scratch, root)
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

        def wrap(argv: tuple[str, ...]) -> list[str]:
            resolved = [_resolve(argv[0], venv / "bin"), *argv[1:]]
            return sandbox.wrap(resolved, cwd=cwd, network=False)

        counts = run_suite(commands, wrap, scratch=scratch, inside=cwd, env=env, log=log,
                           what=f"{label}: test command")
        return TestOutcome(True, True, tuple(proc.render(c) for c in commands),
                           round(time.monotonic() - started, 3), counts=counts)
    finally:
        shutil.rmtree(root, ignore_errors=True)

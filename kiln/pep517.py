"""Call an sdist's build backend (PEP 517) inside the sandbox, with no network."""

from __future__ import annotations

import re
import shutil
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pyproject_hooks

from kiln import proc, toml
from kiln.archive import read_members
from kiln.diagnose import explain
from kiln.errors import BuildError
from kiln.toolchain.sandbox import Bind, Sandbox

LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
LEGACY_REQUIRES = ("setuptools>=40.8.0",)


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...]


# Build backends whose defaults put a random name into what they build, and the setting
# that fixes it; kiln passes it unless the recipe sets that key itself. meson-python
# builds in ".mesonpy-<random>" and writes that folder into generated files (contourpy's
# _build_config.py, numpy's __config__.py).
# A config setting's value: a string, or several (meson-python's setup-args, when kiln adds
# a cross file to the recipe's own).
ConfigSettings = dict[str, "str | list[str]"]

FIXED_BUILD_SETTINGS: dict[str, dict[str, str]] = {
    "mesonpy": {"build-dir": "build"},
}


def effective_config_settings(backend: str,
                              recipe_settings: Mapping[str, str]) -> dict[str, str]:
    """The recipe's config settings, plus kiln's fixed build folder for backends that need one."""
    return {**FIXED_BUILD_SETTINGS.get(backend, {}), **recipe_settings}


def sdist_pyproject(names: Sequence[str], read: Callable[[str], bytes]) -> dict[str, Any]:
    """An sdist's top-level pyproject.toml, from ``archive.read_members``; {} when absent
    or unreadable."""
    path = next((n for n in names if n.count("/") == 1 and n.endswith("/pyproject.toml")),
                None)
    if path is None:
        return {}
    try:
        return toml.loads(read(path).decode("utf-8", "replace"))
    except (OSError, tarfile.TarError, zipfile.BadZipFile, KeyError, toml.TOMLDecodeError):
        return {}


def requirement_name(requirement: str) -> str:
    """The normalized project a PEP 508 requirement names: "setuptools_rust[toml]>=1" →
    "setuptools-rust"."""
    name = re.split(r"[<>=!~;\[ @(]", requirement, maxsplit=1)[0]
    return name.strip().lower().replace("_", "-")


def requirements_of(pyproject: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``[build-system] requires`` a pyproject.toml names (the strings among them)."""
    system = pyproject.get("build-system")
    requires = system.get("requires") if isinstance(system, dict) else None
    return tuple(r for r in requires if isinstance(r, str)) if isinstance(requires, list) else ()


def backend_of(pyproject: Mapping[str, Any]) -> str:
    """The build backend a pyproject.toml names (PEP 517's default when it names none)."""
    system = pyproject.get("build-system")
    backend = system.get("build-backend") if isinstance(system, dict) else None
    return backend if isinstance(backend, str) and backend else LEGACY_BACKEND


def sdist_backend(archive: Path) -> str:
    """The build backend an sdist names, read without unpacking it."""
    try:
        with read_members(archive) as (names, read):
            return backend_of(sdist_pyproject(names, read))
    except (OSError, tarfile.TarError, zipfile.BadZipFile):
        return LEGACY_BACKEND


def read_build_system(project: Path) -> BuildSystem:
    """The ``[build-system]`` table of an unpacked sdist, with PEP 517's defaults."""
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        if not (project / "setup.py").is_file():
            raise BuildError(f"{project.name}: neither pyproject.toml nor setup.py in the sdist",
                             hint="is the [source] url an sdist of a Python project?")
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND, ())
    try:
        data = toml.load(pyproject)
    except toml.TOMLDecodeError as exc:
        raise BuildError(f"{project.name}/pyproject.toml is not valid TOML: {exc}") from exc
    table = data.get("build-system")
    if table is None:
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND, ())
    requires = table.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BuildError(f"{project.name}/pyproject.toml: [build-system] requires must be a "
                         "list of strings")
    backend = table.get("build-backend") or LEGACY_BACKEND
    backend_path = table.get("backend-path", [])
    return BuildSystem(tuple(requires), str(backend), tuple(backend_path))


@dataclass(frozen=True)
class HookRun:
    """Where and how hooks run: which python, which sandbox, which variables."""

    python: str  # as the sandbox sees it
    project_inside: str  # the unpacked sdist as the sandbox sees it
    sandbox: Sandbox
    env: Mapping[str, str]
    log: Path
    timeout: float
    umask: int = 0o022
    prefix: Sequence[str] = ()  # taskset, faketime … in front of the sandbox
    inner_prefix: Sequence[str] = ()  # faketime … inside the sandbox
    label: str = ""
    hermetic: bool = False  # the build sees no host headers, libraries or tools


class _Runner:
    def __init__(self, run: HookRun, control: Path) -> None:
        self.run = run
        self.control = control

    def __call__(self, cmd: Sequence[str], cwd: str | None = None,
                 extra_environ: Mapping[str, str] | None = None) -> None:
        _python, script, hook, control_dir = cmd
        # The hook script lives in kiln's own site-packages, which may be out of the
        # sandbox's sight (a venv under /tmp): hand it a copy beside the control files.
        local_script = Path(control_dir) / "_in_process.py"
        shutil.copyfile(script, local_script)
        env = {**self.run.env, **(extra_environ or {})}
        argv = [*self.run.inner_prefix, self.run.python, str(local_script), hook, control_dir]
        wrapped = self.run.sandbox.wrap(
            argv, cwd=cwd, network=False,
            extra_binds=[Bind(Path(control_dir), control_dir, writable=True)],
        )
        # bubblewrap changes to ``cwd`` itself (--chdir); without it the hook runs there.
        here = Path(cwd) if cwd and not self.run.sandbox.isolated else None
        proc.run([*self.run.prefix, *wrapped], what=f"{self.run.label}: backend hook {hook}",
                 error=BuildError, env=env, log=self.run.log, timeout=self.run.timeout,
                 umask=self.run.umask, cwd=here)


def _caller(build_system: BuildSystem, run: HookRun) -> pyproject_hooks.BuildBackendHookCaller:
    return pyproject_hooks.BuildBackendHookCaller(
        run.project_inside,
        build_system.backend,
        backend_path=list(build_system.backend_path) or None,
        runner=_Runner(run, Path()),
        python_executable=run.python,
    )


_LAST_LINE = re.compile(r" failed \(exit -?\d+\): ")


def _explained(exc: BuildError, log: Path, *, hermetic: bool = False) -> BuildError:
    """The failure with the log's own reason in its message, and a hint for known causes."""
    cause = explain(log, hermetic=hermetic)
    if cause is None:
        return exc
    message = exc.message
    # the tool's last line, which the message ends with, can be a whole compiler command
    if (tail := _LAST_LINE.search(message)) and len(message) - tail.end() > 160:
        message = message[:tail.end() + 160] + "…"
    if cause.line and cause.line not in message:
        message += f"; the log says: {cause.line}"
    better = BuildError(message, hint=cause.hint or exc.hint, log=exc.log or log)
    better.exit_code = exc.exit_code
    return better


def _hook_errors(run: HookRun, hook: str, exc: Exception) -> BuildError:
    if isinstance(exc, pyproject_hooks.BackendUnavailable):
        return BuildError(f"{run.label}: build backend cannot be imported: "
                          f"{exc.traceback.strip().splitlines()[-1:] or exc}",
                          hint="is the backend among the locked build requirements?", log=run.log)
    if isinstance(exc, pyproject_hooks.HookMissing):
        return BuildError(f"{run.label}: build backend has no {exc.hook_name} hook", log=run.log)
    return BuildError(f"{run.label}: {hook} failed: {exc}", log=run.log)


_HOOK_LOG: ContextVar[Path | None] = ContextVar("kiln_hook_log", default=None)
_ROUTE_LOCK = threading.Lock()
_routed = False


def _route_backend_warnings() -> None:
    """Send pyproject-hooks' copies of the backend's warnings to the build log.

    Once per process, through ``warnings.showwarning``: ``catch_warnings`` swaps global
    state and is not safe while a build and its ``--check-repro`` twin run in two threads
    (one thread's warnings then reached the terminal). Each hook call names its log in a
    context variable; other warnings go where they always went.
    """
    global _routed
    with _ROUTE_LOCK:
        if _routed:
            return
        original = warnings.showwarning
        warnings.filterwarnings("always", category=pyproject_hooks.BuildBackendWarning)

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
            log = _HOOK_LOG.get()
            if log is not None and issubclass(category, pyproject_hooks.BuildBackendWarning):
                with log.open("a", encoding="utf-8") as fh:
                    fh.write(f"warning from the build backend: {message}\n")
                return
            original(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        _routed = True


@contextmanager
def _warnings_to_log(log: Path) -> Iterator[None]:
    """Backend warnings (deprecated classifiers …) belong in the build log, not the terminal."""
    _route_backend_warnings()
    token = _HOOK_LOG.set(log)
    try:
        yield
    finally:
        _HOOK_LOG.reset(token)


def get_requires_for_build_wheel(build_system: BuildSystem, run: HookRun,
                                 config_settings: Mapping[str, str | list[str]]) -> list[str]:
    caller = _caller(build_system, run)
    try:
        with _warnings_to_log(run.log):
            reqs = caller.get_requires_for_build_wheel(dict(config_settings) or None)
    except (pyproject_hooks.BackendUnavailable, pyproject_hooks.HookMissing) as exc:
        raise _hook_errors(run, "get_requires_for_build_wheel", exc) from exc
    except BuildError as exc:
        raise _explained(exc, run.log, hermetic=run.hermetic) from exc.__cause__
    return [str(r) for r in reqs]


def build_wheel(build_system: BuildSystem, run: HookRun, out_inside: str,
                config_settings: Mapping[str, str | list[str]]) -> str:
    """Run the backend's build_wheel; return the wheel's file name."""
    caller = _caller(build_system, run)
    try:
        with _warnings_to_log(run.log):
            name: Any = caller.build_wheel(out_inside, dict(config_settings) or None)
    except (pyproject_hooks.BackendUnavailable, pyproject_hooks.HookMissing) as exc:
        raise _hook_errors(run, "build_wheel", exc) from exc
    except BuildError as exc:
        raise _explained(exc, run.log, hermetic=run.hermetic) from exc.__cause__
    if not isinstance(name, str) or not name.endswith(".whl"):
        raise BuildError(f"{run.label}: build backend returned {name!r}, not a wheel name",
                         log=run.log)
    return name

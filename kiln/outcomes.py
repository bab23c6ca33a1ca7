"""The last outcome of each recipe × Python × target, kept in the wheelhouse.

A finished wheel has its build record beside it; a failed build leaves nothing there
but a log. So after every attempt the pipeline writes a small file,
``<wheelhouse>/.kiln/status/<recipe>-<python>-<target>.json``, saying whether it worked
and, when not, why (the error, its hint, its exit code, the log). ``kiln status`` reads
them beside the build records. A failure before any Python or target was tried (a
missing system package, a download) is written as ``<recipe>-all-all.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kiln.files import write_atomic
from kiln.progress import reporter

if TYPE_CHECKING:
    from kiln.pipeline import JobResult

OUTCOME_KIND: Literal["https://kiln.dev/build-outcome/v1"] = "https://kiln.dev/build-outcome/v1"
STATUS_DIR = Path(".kiln") / "status"
ALL = "all"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FailureRef(Model):
    kind: str  # the KilnError subclass: BuildError, NotReproducibleError …
    message: str
    hint: str | None = None
    exit_code: int
    log: str | None = None  # relative to the wheelhouse when it lies inside it


class Outcome(Model):
    kind: Literal["https://kiln.dev/build-outcome/v1"] = OUTCOME_KIND
    recipe: str  # the recipe file's stem: its name in the catalogue
    name: str = ""  # empty when the recipe could not be read
    version: str = ""
    python: str  # "3.11", or "all" for a failure before any build started
    target: str
    ok: bool
    cached: bool = False
    wheel: str | None = None
    covered_by: str | None = None  # the Python whose abi3 or pure wheel serves this one
    tests: str | None = None  # for such a wheel: its tests with this Python (passed …)
    seconds: float = 0.0
    finished: datetime
    failure: FailureRef | None = None


def outcome_path(wheelhouse: Path, recipe: str, python: str, target: str) -> Path:
    name = "-".join(_UNSAFE.sub("_", part) for part in (recipe, python or ALL, target or ALL))
    return wheelhouse / STATUS_DIR / f"{name}.json"


def _relative(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def outcome_of(result: JobResult, wheelhouse: Path, *, now: datetime | None = None) -> Outcome:
    record = result.record
    failure = None
    if result.error is not None:
        error = result.error
        failure = FailureRef(kind=type(error).__name__, message=error.message, hint=error.hint,
                             exit_code=error.exit_code,
                             log=_relative(error.log or result.log, wheelhouse))
    if record is not None:
        name, version = record.recipe.name, record.recipe.version
    else:
        name, version = _recipe_identity(result.recipe)
    return Outcome(
        recipe=result.recipe.stem, name=name, version=version,
        python=result.python or ALL, target=result.target or ALL,
        ok=result.ok, cached=result.cached, covered_by=result.covered_by or None,
        tests=_tests(result) if result.covered_by else None,
        wheel=result.wheel.name if result.wheel else None,
        seconds=result.seconds, finished=now or datetime.now(timezone.utc), failure=failure,
    )


def _tests(result: JobResult) -> str:
    test = result.covered_test
    if test is None:
        return "failed" if result.error is not None else "not run"
    from kiln.wheeltest import test_ref

    return test_ref(test).summary()


def _recipe_identity(path: Path) -> tuple[str, str]:
    from kiln.errors import KilnError
    from kiln.recipe import load_recipe

    try:
        recipe = load_recipe(path)
    except KilnError:
        return "", ""
    return recipe.name, recipe.version


def record_outcomes(wheelhouse: Path, results: Iterable[JobResult]) -> None:
    """Write the outcome of each attempted build (skipped ones were not attempted, and
    bad input, such as a malformed recipe or a wrong sha256, is refused without a trace)."""
    for result in results:
        if result.skipped or (result.error is not None and result.error.bad_input):
            continue
        outcome = outcome_of(result, wheelhouse)
        path = outcome_path(wheelhouse, outcome.recipe, result.python, result.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, outcome.model_dump_json(indent=2) + "\n")
        except OSError as exc:
            # The wheel and its record are what matter; a status file is a convenience.
            reporter().note(f"could not write {path}: {exc.strerror or exc}")


def read_outcomes(wheelhouse: Path) -> tuple[list[Outcome], list[str]]:
    """Every outcome file in ``wheelhouse``, and a problem line for each unreadable one."""
    folder = wheelhouse / STATUS_DIR
    outcomes: list[Outcome] = []
    problems: list[str] = []
    if not folder.is_dir():
        return outcomes, problems
    for path in sorted(folder.glob("*.json")):
        try:
            outcomes.append(Outcome.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            problems.append(f"{path}: unreadable ({type(exc).__name__}); ignored")
    return outcomes, problems

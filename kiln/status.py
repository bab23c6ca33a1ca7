"""``kiln status``: what became of every recipe × Python × target, from what kiln left behind.

Three sources, newest fact wins:

- the wheelhouse's build records (``W.build.json``): built, tag, tests, reproducible; with
  ``W.dsse.json`` / ``W.sigstore.json`` beside the wheel: signed;
- kiln's outcome files (``<wheelhouse>/.kiln/status/``): failures and why (see
  ``kiln.outcomes``), which leave no record;
- the audit branch, when there is one: wheels recorded by any builder (CI included), and
  whether two builders disagreed about one wheel's bytes.

The same rows render as a terminal table, as JSON, and as ``PACKAGES.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from kiln.diagnose import first_error
from kiln.errors import KilnError
from kiln.outcomes import ALL, Outcome, read_outcomes
from kiln.recipe import Recipe, load_recipe, recipe_files
from kiln.record import RECORD_SUFFIX, BuildRecord, load_record

SIGNATURE_SUFFIXES = ((".dsse.json", "dsse"), (".sigstore.json", "sigstore"))


@dataclass(frozen=True)
class AuditFact:
    """What the audit branch says about one wheel (kiln.audit's records, summarised)."""

    wheel: str
    sha256: str
    project: str
    version: str
    python: str  # "3.11.7"
    target: str
    reproducible: bool | None
    signatures: tuple[str, ...]
    builder: str
    recorded_at: datetime
    conflict: bool  # another builder recorded this filename with other bytes
    hermetic: bool | None = None  # None: the statement does not say (an older kiln's)


@dataclass(frozen=True)
class Cell:
    """The last known result of one recipe for one Python and target."""

    recipe: str  # the recipe file's stem
    name: str
    version: str
    python: str
    target: str
    result: str  # built | cached | reused | failed | not reproducible | recorded | not built
    #             | invalid (the recipe itself could not be read: ``why`` says why)
    wheel: str | None = None
    tag: str = ""
    reproducible: bool | None = None  # None: not checked
    repro_expected: bool = True
    signed: tuple[str, ...] = ()
    tests: str = ""  # passed | failed | not run (why) | ""
    seconds: float | None = None
    finished: datetime | None = None
    why: str = ""  # for failures: the error and its hint
    log: str | None = None
    audit: str = ""  # recorded | conflict | ""
    earlier_wheel: str | None = None  # a failure after an earlier success
    backend: str = ""  # what built it: hermetic | host | cibuildwheel
    hermetic: bool | None = None  # None: not known (not built, or an older record)

    @property
    def ok(self) -> bool:
        return self.result in ("built", "cached", "reused", "recorded")


@dataclass(frozen=True)
class RecipeSummary:
    path: str
    name: str
    version: str
    pythons: tuple[str, ...]
    targets: tuple[str, ...]
    system_requires: tuple[tuple[str, tuple[str, ...]], ...]
    description: str
    error: str = ""  # the recipe itself did not load


@dataclass
class Status:
    recipes: list[RecipeSummary] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable files, no audit branch …
    audit_source: str = ""  # "the audit branch (refs/heads/audit)", or "" when none

    def to_json(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if isinstance(obj, datetime):
                return obj.isoformat()
            if isinstance(obj, tuple):
                return [plain(x) for x in obj]
            return obj

        return {
            "recipes": [{k: plain(v) for k, v in r.__dict__.items()} for r in self.recipes],
            "cells": [{**{k: plain(v) for k, v in c.__dict__.items()}, "ok": c.ok}
                      for c in self.cells],
            "problems": list(self.problems),
            "audit": self.audit_source or None,
        }


def description(recipe_path: Path) -> str:
    """The recipe's opening comment: what its author says the package is (and any caveat)."""
    words = []
    for line in recipe_path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        words.append(stripped.lstrip("#").strip())
    return " ".join(w for w in words if w)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _records(wheelhouse: Path, problems: list[str]) -> list[BuildRecord]:
    records: list[BuildRecord] = []
    if not wheelhouse.is_dir():
        return records
    for path in sorted(wheelhouse.glob(f"*.whl{RECORD_SUFFIX}")):
        try:
            records.append(load_record(path))
        except KilnError as exc:
            problems.append(f"{exc.message}; ignored")
    return records


def _signatures(wheelhouse: Path, wheel: str) -> tuple[str, ...]:
    return tuple(kind for suffix, kind in SIGNATURE_SUFFIXES
                 if (wheelhouse / f"{wheel}{suffix}").is_file())


def read_audit_facts(repo: Path, branch: str) -> tuple[list[AuditFact], str]:
    """The audit branch's records, summarised; ([], why) when there is no branch to read.

    Imports kiln.audit lazily: status works the same without it.
    """
    try:
        from kiln.audit import AuditBranch
    except ImportError:
        return [], "kiln's audit module is not installed"
    try:
        audit = AuditBranch.open(repo, branch)
        if audit.tip() is None:
            return [], f"no {branch} branch in {repo}"
        entries = audit.entries()
        where = audit.read_ref()
    except KilnError as exc:
        return [], f"audit branch not read: {exc.message}"
    facts = [AuditFact(
        wheel=e.record.wheel.filename, sha256=e.record.wheel.sha256,
        project=e.record.project, version=e.record.version, python=e.record.python,
        target=e.record.target, reproducible=e.record.reproducibility.reproducible,
        signatures=tuple(s.type for s in e.record.signatures), builder=e.record.builder,
        recorded_at=e.record.recorded_at, conflict=e.conflict,
        hermetic=_statement_hermetic(e.record.statement)) for e in entries]
    return facts, where


def _statement_hermetic(statement: dict[str, Any]) -> bool | None:
    definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
    value = (definition.get("internalParameters") or {}).get("hermetic")
    return value if isinstance(value, bool) else None


def _record_cell(recipe: Recipe, python: str, target: str, record: BuildRecord,
                 wheelhouse: Path) -> Cell:
    test = record.test
    tests = test.summary()
    repro = record.repro
    return Cell(
        recipe=recipe.path.stem, name=recipe.name, version=recipe.version, python=python,
        target=target, result="cached" if record.cached else "built",
        wheel=record.wheel.filename,
        tag=record.repair.policy or record.wheel.platform_tags[-1],
        reproducible=repro.reproducible if repro and repro.checked else None,
        repro_expected=repro.expected if repro else recipe.repro.expected,
        signed=_signatures(wheelhouse, record.wheel.filename), tests=tests,
        seconds=record.seconds, finished=record.finished,
        log=record.log.name if record.log else None,
        backend=record.backend, hermetic=record.hermetic,
    )


def _failure_cell(recipe: Recipe, python: str, target: str, outcome: Outcome,
                  earlier: BuildRecord | None, wheelhouse: Path) -> Cell:
    failure = outcome.failure
    why = failure.message if failure else "failed"
    if failure and failure.log:
        found = first_error(wheelhouse / failure.log)
        if found and found not in why:
            why += f"; the log says: {found}"
    if failure and failure.hint:
        why += f" (hint: {failure.hint})"
    not_repro = failure is not None and failure.kind == "NotReproducibleError"
    return Cell(
        recipe=recipe.path.stem, name=recipe.name, version=recipe.version, python=python,
        target=target, result="not reproducible" if not_repro else "failed",
        reproducible=False if not_repro else None, seconds=outcome.seconds,
        finished=outcome.finished, why=why, log=failure.log if failure else None,
        earlier_wheel=earlier.wheel.filename if earlier else None,
    )


def _audit_cell(recipe: Recipe, python: str, target: str, fact: AuditFact) -> Cell:
    return Cell(recipe=recipe.path.stem, name=recipe.name, version=recipe.version,
                python=python, target=target, result="recorded", wheel=fact.wheel,
                reproducible=fact.reproducible, signed=fact.signatures,
                finished=fact.recorded_at, audit="conflict" if fact.conflict else "recorded",
                why=f"recorded by {fact.builder}", hermetic=fact.hermetic)


def _newest(items: Iterable[Any], when: Any) -> Any:
    return max(items, key=when, default=None)


def cell_for(recipe: Recipe, python: str, target: str, *, records: list[BuildRecord],
             outcomes: list[Outcome], audit: list[AuditFact], wheelhouse: Path) -> Cell:
    """Combine the three sources for one recipe, Python and target."""
    project = recipe.project
    record = _newest((r for r in records
                      if canonicalize_name(r.recipe.name) == project
                      and r.recipe.version == recipe.version
                      and _minor(r.python.version) == python and r.target == target),
                     lambda r: r.finished)
    outcome = _newest((o for o in outcomes
                       if o.recipe == recipe.path.stem
                       and (not o.version or o.version == recipe.version)
                       and o.python in (python, ALL) and o.target in (target, ALL)),
                      lambda o: o.finished)
    facts = [f for f in audit if canonicalize_name(f.project) == project
             and f.version == recipe.version and _minor(f.python) == python
             and f.target == target]
    failed_last = outcome is not None and not outcome.ok and (
        record is None or outcome.finished >= record.finished)
    reused = None
    if outcome is not None and outcome.ok and outcome.covered_by and (
            record is None or outcome.finished >= record.finished):
        # an abi3 or pure wheel built with another Python, tested with this one
        reused = _newest((r for r in records if r.wheel.filename == outcome.wheel
                          and _minor(r.python.version) == outcome.covered_by),
                         lambda r: r.finished)
    if failed_last:
        cell = _failure_cell(recipe, python, target, outcome, record, wheelhouse)
    elif reused is not None and outcome is not None:
        cell = _replace(_record_cell(recipe, python, target, reused, wheelhouse),
                        result="reused", tests=outcome.tests or "not run",
                        seconds=outcome.seconds, finished=outcome.finished,
                        why=f"the wheel built with Python {outcome.covered_by} installs here")
    elif record is not None:
        cell = _record_cell(recipe, python, target, record, wheelhouse)
        if outcome is not None and outcome.ok and outcome.wheel == record.wheel.filename \
                and not outcome.cached:
            cell = _replace(cell, seconds=outcome.seconds)  # the whole job, rebuild included
    elif facts:
        return _audit_cell(recipe, python, target, _newest(facts, lambda f: f.recorded_at))
    else:
        return Cell(recipe=recipe.path.stem, name=recipe.name, version=recipe.version,
                    python=python, target=target, result="not built")
    if cell.wheel:
        mine = [f for f in facts if f.wheel == cell.wheel]
        if any(f.conflict for f in mine) or len({f.sha256 for f in mine}) > 1:
            cell = _replace(cell, audit="conflict")
        elif mine:
            cell = _replace(cell, audit="recorded", signed=tuple(sorted(
                set(cell.signed) | {s for f in mine for s in f.signatures})))
    return cell


def _replace(cell: Cell, **changes: Any) -> Cell:
    from dataclasses import replace

    return replace(cell, **changes)


def collect_status(paths: Sequence[Path], *, wheelhouse: Path, audit_repo: Path | None = None,
                   audit_branch: str = "audit") -> Status:
    """The status of every recipe in ``paths`` (files or folders of ``*.toml``)."""
    status = Status()
    records = _records(wheelhouse, status.problems)
    outcomes, unreadable = read_outcomes(wheelhouse)
    status.problems.extend(unreadable)
    audit: list[AuditFact] = []
    if audit_repo is not None:
        audit, where = read_audit_facts(audit_repo, audit_branch)
        if audit or where.startswith("refs/"):
            status.audit_source = f"the audit branch ({where})"
        else:
            status.problems.append(where)
    for path in recipe_files(paths):
        try:
            recipe = load_recipe(path)
        except KilnError as exc:
            status.recipes.append(RecipeSummary(path=str(path), name=path.stem, version="",
                                                pythons=(), targets=(), system_requires=(),
                                                description="", error=exc.message))
            # Listed, never dropped: a recipe kiln cannot read is one the catalogue lacks.
            # Its row names the file; the folder is in ``recipes`` (``path``, ``error``).
            why = (exc.message.replace(f"{path}: ", f"{path.name}: ", 1)
                   + (f" ({exc.hint})" if exc.hint else ""))
            status.cells.append(Cell(recipe=path.stem, name=path.stem, version="", python="",
                                     target="", result="invalid", why=why))
            continue
        status.recipes.append(RecipeSummary(
            path=str(path), name=recipe.name, version=recipe.version, pythons=recipe.pythons,
            targets=recipe.targets, system_requires=recipe.system_requires,
            description=description(path)))
        for python in recipe.pythons:
            for target in recipe.targets:
                status.cells.append(cell_for(recipe, python, target, records=records,
                                             outcomes=outcomes, audit=audit,
                                             wheelhouse=wheelhouse))
    return status

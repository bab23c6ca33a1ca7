"""``kiln repro --against``: rebuild a wheel that someone else built and compare."""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

from kiln import http
from kiln.errors import KilnError, UsageError
from kiln.explain import compare_inputs, find_their_inputs, inputs_from_record
from kiln.pipeline import BuildOptions, JobResult, build_recipes
from kiln.recipe import load_recipe
from kiln.record import BuildRecord
from kiln.repro import ReproReport, compare_wheels, write_report
from kiln.toolchain.targets import target_of_platform_tag
from kiln.wheelfile import parse_name


@dataclass(frozen=True)
class Rebuild:
    theirs: Path
    result: JobResult
    report: ReproReport
    report_path: Path


def fetch_wheel(location: str, cache: Path) -> Path:
    """A wheel given as a path or an https:// url (downloaded once into the cache)."""
    if "://" not in location:
        path = Path(location)
        if not path.is_file():
            raise UsageError(f"{location}: no such wheel")
        return path
    name = urllib.parse.unquote(urllib.parse.urlparse(location).path.rsplit("/", 1)[-1])
    key = hashlib.sha256(location.encode()).hexdigest()[:16]
    return http.download(location, cache / "against" / key / name, what="downloading the wheel")


def explain_inputs(location: str, theirs: Path, sha256: str,
                   record: BuildRecord | None) -> dict[str, object]:
    """The report's ``inputs`` and ``their_record``: what differed going in, when known."""
    if record is None:
        return {}
    found = find_their_inputs(location, theirs, sha256)
    if found is None:
        return {"their_record": None}
    differing = compare_inputs(inputs_from_record(record), found.inputs,
                               hermetic=record.hermetic and found.hermetic)
    return {"inputs": differing, "their_record": found.where}


def rebuild_against(recipe_path: Path, location: str, options: BuildOptions) -> Rebuild:
    theirs = fetch_wheel(location, options.cache)
    name = parse_name(theirs.name)
    recipe = load_recipe(recipe_path)
    if name.name != recipe.project or name.version != recipe.version:
        raise UsageError(f"{theirs.name} is not {recipe.label}",
                         hint="pick the recipe of the wheel's project and version")
    py_tags = sorted({t.interpreter for t in name.tags if t.interpreter.startswith("cp")})
    targets = {target_of_platform_tag(t) for t in name.platform_tags}
    if not name.is_pure and (not py_tags or None in targets or len(targets) != 1):
        raise UsageError(f"{theirs.name}: cannot tell which CPython and target built it")
    if name.is_pure:
        chosen = replace(options, pythons=recipe.pythons[:1])
    else:
        target = targets.pop()
        assert target is not None
        python = f"{py_tags[0][2]}.{py_tags[0][3:]}"
        chosen = replace(options, pythons=(python,), targets=(target.name,))
    results = build_recipes([recipe_path], chosen)
    built = [r for r in results if not r.skipped]
    if not built or built[0].error is not None or built[0].wheel is None:
        error = built[0].error if built and built[0].error else None
        raise error or KilnError(f"{recipe.label}: the rebuild produced no wheel")
    ours = built[0].wheel
    report = compare_wheels(ours, theirs, first_record=built[0].record)
    report = report.model_copy(update=explain_inputs(location, theirs, report.second.sha256,
                                                     built[0].record))
    report_path = options.output / f"{theirs.name}.against.repro.json"
    report = write_report(report, report_path, diffoscope=options.diffoscope,
                          wheels=(ours, theirs))
    return Rebuild(theirs=theirs, result=built[0], report=report, report_path=report_path)

"""``kiln repro --against`` and ``kiln rebuild``: rebuild a wheel someone else built, compare.

``kiln repro --against`` is given the recipe. ``kiln rebuild`` is given only the wheel (a
path or a URL): the recipe and its lock come from the wheel's own build record or signed
provenance, which carry both files' text and sha256 (kiln.record, kiln.provenance). They
are looked for beside the wheel (``W.build.json``, ``W.dsse.json``, ``W.sigstore.json``), at
the wheel's URL + ``.build.json`` or ``.provenance`` (what ``kiln index`` publishes beside
each wheel), and on the audit branch. Each text must hash to its recorded sha256; a record
that does not carry them says what is missing.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kiln import http
from kiln.errors import KilnError, UsageError
from kiln.explain import compare_inputs, find_their_inputs, inputs_from_record
from kiln.pipeline import AfterBuild, BuildOptions, JobResult, build_recipes
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
            raise UsageError(f"{location}: no such wheel",
                             hint="give the path of a .whl file, or its URL on a kiln index "
                                  "(https://…/files/…/NAME-VERSION-….whl)")
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


def rebuild_against(recipe_path: Path, location: str, options: BuildOptions,
                    after: Sequence[AfterBuild] = ()) -> Rebuild:
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
    results = build_recipes([recipe_path], chosen, after=after)
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


# --------------------------------------------------------------------------- kiln rebuild

@dataclass(frozen=True)
class Recovered:
    """The inputs a wheel's record or provenance carries: enough to build it again."""

    where: str  # "W.build.json beside the wheel", "URL.provenance", "the audit branch" …
    recipe_name: str  # the recipe file's name, e.g. markupsafe.toml
    recipe_text: str
    recipe_sha256: str
    lock_text: str
    lock_sha256: str
    backend: str


def _from_record(record: BuildRecord, where: str) -> dict[str, str]:
    lock = record.lock
    return {"where": where, "recipe_path": record.recipe.path,
            "recipe_text": record.recipe.text, "recipe_sha256": record.recipe.sha256,
            "lock_text": lock.text if lock else "", "lock_sha256": lock.sha256 if lock else "",
            "backend": record.backend}


def _from_statement(statement: dict[str, Any], where: str) -> dict[str, str]:
    import base64
    import binascii

    definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
    external = definition.get("externalParameters") or {}
    recipe = external.get("recipe") or {}
    found = {"where": where, "recipe_path": str(recipe.get("path", "")),
             "recipe_text": str(recipe.get("text", "")),
             "recipe_sha256": str(recipe.get("sha256", "")), "lock_text": "",
             "lock_sha256": "", "backend": str(external.get("backend", ""))}
    for dep in definition.get("resolvedDependencies") or []:
        if (dep.get("annotations") or {}).get("kind") == "lock":
            found["lock_sha256"] = str((dep.get("digest") or {}).get("sha256", ""))
            try:
                found["lock_text"] = base64.b64decode(dep.get("content") or "").decode()
            except (binascii.Error, ValueError):
                found["lock_text"] = ""
    return found


def _candidates(location: str, wheel: Path, sha256: str) -> list[dict[str, str]]:
    """What each place that may describe the wheel says, nearest first (read, not trusted:
    the rebuild is what is checked)."""
    from kiln.explain import _statement_of
    from kiln.record import RECORD_SUFFIX

    found: list[dict[str, str]] = []
    if "://" not in location:
        beside = wheel.with_name(wheel.name + RECORD_SUFFIX)
        if beside.is_file():
            try:
                record = BuildRecord.model_validate_json(beside.read_bytes())
                if record.wheel.sha256 == sha256:
                    found.append(_from_record(record, str(beside)))
            except ValueError:
                pass
        for suffix in (".dsse.json", ".sigstore.json"):
            statement = _statement_of(wheel.with_name(wheel.name + suffix))
            if statement is not None:
                found.append(_from_statement(statement, str(wheel.name + suffix)))
    else:
        try:
            record = BuildRecord.model_validate_json(
                http.get_bytes(location + RECORD_SUFFIX, what="the wheel's build record"))
            if record.wheel.sha256 == sha256:
                found.append(_from_record(record, location + RECORD_SUFFIX))
        except (KilnError, ValueError):
            pass
        found += _from_provenance(location + ".provenance")
    from kiln.audit.branch import find_record

    try:
        audit = find_record(wheel.name, sha256)
    except KilnError:
        audit = None
    if audit is not None and audit.wheel.sha256 == sha256:
        found.append(_from_statement(audit.statement, "the audit branch"))
    return found


def _from_provenance(url: str) -> list[dict[str, str]]:
    """The statements in a PEP 740 provenance object served beside a wheel."""
    import base64
    import json

    try:
        document = http.get_json(url, what="the wheel's provenance")
    except KilnError:
        return []
    out = []
    for bundle in (document.get("attestation_bundles") or []) if isinstance(document,
                                                                            dict) else []:
        for attestation in bundle.get("attestations") or []:
            try:
                envelope = attestation["envelope"]
                statement = json.loads(base64.b64decode(envelope["statement"]))
            except (KeyError, TypeError, ValueError):
                continue
            if isinstance(statement, dict):
                out.append(_from_statement(statement, url))
    return out


def recover_inputs(location: str, wheel: Path, sha256: str) -> Recovered:
    """The recipe and lock that built ``wheel``, from the first place that carries both."""
    from kiln.files import sha256_bytes

    candidates = _candidates(location, wheel, sha256)
    if not candidates:
        raise UsageError(
            f"{wheel.name}: no build record or provenance found (beside it, at its URL + "
            ".build.json or .provenance, or on the audit branch of this folder's repository)",
            hint="rebuild it with its recipe instead: `kiln repro RECIPE --against WHEEL`")
    missing: dict[str, list[str]] = {}
    for found in candidates:
        lacking = []
        for what in ("recipe", "lock"):
            text, digest = found[f"{what}_text"], found[f"{what}_sha256"]
            if not text:
                lacking.append(f"the {what} text")
            elif sha256_bytes(text.encode()) != digest:
                lacking.append(f"a {what} text that matches its sha256 (it does not)")
        if not lacking:
            name = Path(found["recipe_path"]).name or "recipe.toml"
            if not name.endswith(".toml") or name.startswith("."):
                name = "recipe.toml"
            return Recovered(where=found["where"], recipe_name=name,
                             recipe_text=found["recipe_text"],
                             recipe_sha256=found["recipe_sha256"],
                             lock_text=found["lock_text"], lock_sha256=found["lock_sha256"],
                             backend=found["backend"])
        missing[found["where"]] = lacking
    said = "; ".join(f"{where} lacks {' and '.join(what)}" for where, what in missing.items())
    raise UsageError(f"{wheel.name}: cannot rebuild from its record alone: {said}",
                     hint="records written before kiln carried the recipe and lock text lack "
                          "them; rebuild with the recipe: `kiln repro RECIPE --against WHEEL`")


def materialise(found: Recovered, cache: Path) -> Path:
    """The recovered recipe and lock as files (in the cache, named by the recipe's digest)."""
    from kiln.files import write_atomic

    folder = cache / "rebuild" / found.recipe_sha256[:16]
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / found.recipe_name
    write_atomic(recipe.with_suffix(".lock"), found.lock_text)
    write_atomic(recipe, found.recipe_text)
    return recipe


def rebuild_from_record(location: str, options: BuildOptions,
                        after: Sequence[AfterBuild] = ()) -> tuple[Recovered, Rebuild]:
    """``kiln rebuild``: recover the inputs from the wheel's record, rebuild, compare."""
    from kiln.files import sha256_file

    theirs = fetch_wheel(location, options.cache)
    found = recover_inputs(location, theirs, sha256_file(theirs))
    recipe = materialise(found, options.cache)
    if options.backend is None and found.backend:
        options = replace(options, backend=found.backend)
    return found, rebuild_against(recipe, location, options, after=after)

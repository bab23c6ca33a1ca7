"""``kiln build``, ``kiln lock`` and ``kiln repro``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from kiln.cli.app import app, report_error
from kiln.cli.common import (
    CacheOption,
    CratesUrlOption,
    FindLinksOption,
    IndexUrlOption,
    JsonOption,
    NoIndexOption,
    cache_dir,
    index_options,
    terminal,
)
from kiln.cli.console import err, out, print_json, table
from kiln.errors import BuildsFailedError, KilnError, UsageError
from kiln.installer import PYPI_SIMPLE
from kiln.progress import reporting
from kiln.recipe import BACKEND_ALIASES, BACKENDS, ENV_NAME, RESERVED_ENV
from kiln.toolchain.targets import TARGETS

PythonOption = Annotated[list[str] | None, typer.Option(
    "--python", "-p", help="CPython version to build for (repeatable) [default: the recipe's].")]
TargetOption = Annotated[list[str] | None, typer.Option(
    "--target", "-t", help=f"Target (repeatable): {', '.join(TARGETS)}.")]
BackendOption = Annotated[str | None, typer.Option(
    "--backend", "-b", help=f"Build backend: {', '.join(BACKENDS)} [default: the recipe's].")]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="The wheelhouse.")]
PythonPathOption = Annotated[list[str] | None, typer.Option(
    "--python-path", help="Use this interpreter for a version: 3.11=/opt/py311/bin/python3.11.")]


def _python_paths(values: list[str] | None) -> tuple[tuple[str, Path], ...]:
    pairs = []
    for value in values or ():
        version, sep, path = value.partition("=")
        if not sep or not path:
            raise UsageError(f"--python-path {value!r} must be VERSION=PATH",
                             hint="for example --python-path 3.11=/usr/bin/python3.11")
        pairs.append((version, Path(path)))
    return tuple(pairs)


def _env_pairs(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values or ():
        name, sep, literal = value.partition("=")
        if not sep or not ENV_NAME.match(name) or name in RESERVED_ENV:
            raise UsageError(f"--env {value!r} must be NAME=VALUE with a name kiln does not set",
                             hint="for example --env GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS=2")
        pairs.append((name, literal))
    return tuple(pairs)


def _check_choices(targets: list[str] | None, backend: str | None) -> None:
    for target in targets or ():
        if target not in TARGETS:
            raise UsageError(f"--target {target}: unknown target",
                             hint=f"targets: {', '.join(TARGETS)}")
    if backend is not None and backend not in BACKENDS and backend not in BACKEND_ALIASES:
        raise UsageError(f"--backend {backend}: unknown backend",
                         hint=f"backends: {', '.join(BACKENDS)}")


def result_json(result: Any) -> dict[str, Any]:
    from kiln.wheeltest import test_ref

    status = _status(result).split(" ")[0]
    data: dict[str, Any] = {
        "recipe": str(result.recipe), "label": result.label, "python": result.python,
        "target": result.target, "status": status, "seconds": result.seconds,
        "wheel": str(result.wheel) if result.wheel else None,
        "log": str(result.log) if result.log else None,
        "record": result.record.model_dump(mode="json") if result.record else None,
    }
    if result.skipped:
        data["skipped"] = result.skipped
    if result.covered_by:
        data["covered_by"] = result.covered_by
        test = result.covered_test
        data["test"] = None if test is None else test_ref(test).model_dump(mode="json")
    if result.error is not None:
        report = getattr(result.error, "report", None)
        data["error"] = {"message": result.error.message, "hint": result.error.hint,
                         "exit_code": result.error.exit_code,
                         "log": str(result.error.log) if result.error.log else None,
                         "report": str(report) if report else None}
        counts = getattr(result.error, "counts", None)
        if counts is not None:  # the tests that failed: what their runner counted
            data["error"]["tests"] = {
                "command": result.error.command, "collected": counts.collected,
                "passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped,
                "first_failure": counts.first_failure}
    return data


def _status(r: Any) -> str:
    if r.skipped:
        return "skipped"
    if not r.ok:
        return "failed"
    if r.covered_by:
        return f"reused ({r.covered_by})"
    return "cached" if r.cached else "built"


def print_results(results: list[Any], *, show_repro: bool) -> None:
    from kiln.wheeltest import test_ref

    rows = []
    for r in results:
        rec = r.record
        status = _status(r)
        tag = (rec.repair.policy or rec.wheel.platform_tags[-1]) if rec else r.target
        row = [rec.wheel.filename if rec else r.label, tag,
               rec.wheel.sha256[:12] if rec else "", f"{r.seconds:.1f}", status]
        if rec is not None:
            covered = r.covered_test if r.covered_by else None
            test = test_ref(covered) if covered is not None else None if r.covered_by else rec.test
            tests = "—" if test is None or not test.ran else test.summary()
        else:
            tests = ""
        row.append(tests)
        if show_repro:
            repro = rec.repro if rec else None
            row.append("yes" if repro and repro.reproducible else
                       "no (expected)" if repro and not repro.expected else
                       "no" if repro else "")
        rows.append(row)
    columns = ["wheel", "tag", "sha256", "s", "status", "tests"]
    if show_repro:
        columns.append("reproducible")
    table(None, columns, rows)


def refused(results: list[Any]) -> bool:
    """Nothing was attempted: every result is a recipe refused before any build started."""
    return bool(results) and all(r.error is not None and not r.python for r in results)


def finish(results: list[Any], *, json_output: bool = False) -> None:
    """Print every failure's error and hint; exit with the right code.

    With ``json_output`` stdout holds only the JSON already printed: the reproducibility
    report's table is not added (its path is in the JSON). One failed result is raised as
    its own error: one ``error:`` and one ``hint:``, no label line and no summary.
    """
    from kiln.errors import NotReproducibleError
    from kiln.repro import ReproReport

    failures = [r for r in results if r.error is not None]
    for r in failures:
        assert r.error is not None
        if isinstance(r.error, NotReproducibleError) and r.error.report is not None \
                and not json_output:
            report = ReproReport.model_validate_json(r.error.report.read_bytes())
            print_report(report, r.error.report)
    for r in results:
        if r.skipped:
            err.print(Text(f"skipped {r.label}: {r.skipped}", style="dim"))
    if len(results) == 1 and failures:
        assert failures[0].error is not None
        raise failures[0].error
    for r in failures:
        assert r.error is not None
        err.print(Text(r.label, style="bold"))
        report_error(r.error)
    if failures:
        codes = {r.error.exit_code for r in failures if r.error}
        message = f"{len(failures)} of {len(results)} build(s) failed: " + ", ".join(
            r.label for r in failures)
        error = BuildsFailedError(message)
        if len(codes) == 1:
            error.exit_code = codes.pop()
        raise error
    if not any(r.ok for r in results):
        raise KilnError("nothing was built", hint="every target was skipped; see above")


def build_options(**kwargs: Any) -> Any:
    from kiln.pipeline import BuildOptions

    return BuildOptions(**kwargs)


@app.command()
def build(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files (recipes/*.toml).")],
    output: OutputOption = Path("wheelhouse"),
    python: PythonOption = None,
    target: TargetOption = None,
    backend: BackendOption = None,
    check_repro: Annotated[bool, typer.Option(
        "--check-repro", help="Build a second time in varied surroundings and compare.")] = False,
    diffoscope: Annotated[bool, typer.Option(
        "--diffoscope", help="With --check-repro: add diffoscope's HTML report.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build even if an identical "
                                                              "build is cached.")] = False,
    no_test: Annotated[bool, typer.Option("--no-test", help="Skip the recipe's tests.")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast",
                                            help="Stop at the first failure.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace wheels in the "
                                                                "wheelhouse that differ.")] = False,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="Extra build variable NAME=VALUE (literal; repeatable).")] = None,
    install_system_deps: Annotated[bool, typer.Option(
        "--install-system-deps", envvar="KILN_INSTALL_SYSTEM_DEPS",
        help="Install the packages a recipe's system-requires names (apt-get as root, or "
             "brew) instead of stopping with the command to run.")] = False,
    python_path: PythonPathOption = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", envvar="KILN_JOBS", min=1,
        help="Compiles at once, a build and its --check-repro twin together; the wheel is "
             "the same for any count [default: the CPUs kiln may use].")] = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    json_output: JsonOption = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="With --backend cibuildwheel: print cibuildwheel's "
                               "configuration (CIBW_* and TOML), build nothing.")] = False,
    sign_key: Annotated[Path | None, typer.Option(
        "--sign-key", envvar="KILN_SIGN_KEY",
        help="Sign each wheel's provenance with this private key (writes W.dsse.json).")] = None,
    audit: Annotated[bool, typer.Option(
        "--audit", envvar="KILN_AUDIT",
        help="Record each wheel on the audit branch of the repository kiln runs in.")] = False,
    audit_branch: Annotated[str, typer.Option(
        "--audit-branch", envvar="KILN_AUDIT_BRANCH", help="The audit branch's name.")
    ] = "audit",
    crates_url: CratesUrlOption = None,
) -> None:
    """Build, repair and test wheels from recipes; put them in the wheelhouse with their records."""
    from kiln.pipeline import AfterBuild, build_recipes

    _check_choices(target, backend)
    if print_config:
        from kiln.cli.print_config import cibuildwheel_configs, print_configs

        with reporting(terminal()):
            entries = cibuildwheel_configs(
                recipes, pythons=tuple(python or ()), targets=tuple(target or ()),
                backend=backend, cache=cache_dir(cache), extra_env=_env_pairs(env),
                index=index_options(index_url, find_links, no_index))
        print_configs(entries, json_output=json_output)
        return
    options = build_options(
        output=output.absolute(), cache=cache_dir(cache), pythons=tuple(python or ()),
        targets=tuple(target or ()), backend=backend,
        index=index_options(index_url, find_links, no_index), use_cache=not no_cache,
        run_tests=not no_test, check_repro=check_repro, fail_fast=fail_fast,
        overwrite=overwrite, python_paths=_python_paths(python_path), diffoscope=diffoscope,
        extra_env=_env_pairs(env), install_system_deps=install_system_deps, jobs=jobs,
        crates_url=crates_url,
    )
    # Steps run on each finished wheel, in order (signing, then the audit record).
    after: list[AfterBuild] = []
    if sign_key is not None:
        from kiln.signing.wheels import key_signing_step

        after.append(key_signing_step(sign_key))
    if audit:  # after signing, so the record carries the signature
        from kiln.audit import audit_step

        after.append(audit_step(Path.cwd(), audit_branch))
    # A plain build (kiln.cli.quickbuild's command line) keeps its answer for next time, if
    # its recipes and locks are still the ones it read.
    request = inputs = None
    if not (env or backend or python_path or check_repro or diffoscope or no_cache or overwrite
            or install_system_deps or sign_key or audit):
        from kiln.replay import BuildRequest, read_inputs

        request = BuildRequest(recipes=tuple(p.absolute() for p in recipes),
                               pythons=tuple(python or ()), targets=tuple(target or ()),
                               tests=not no_test, cache=cache_dir(cache),
                               output=output.absolute())
        inputs = read_inputs(request)
    reporter = terminal()
    try:
        with reporting(reporter):
            results = build_recipes(recipes, options, after=after)
    finally:
        reporter.close()
    if json_output:
        print_json([result_json(r) for r in results])
    elif not refused(results):
        print_results(results, show_repro=check_repro)
    finish(results, json_output=json_output)
    if request is not None and inputs is not None:
        from kiln.replay import remember

        remember(request, results, inputs)


@app.command()
def lock(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.")],
    python_path: PythonPathOption = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    json_output: JsonOption = False,
) -> None:
    """Resolve each recipe's build requirements and write RECIPE.lock with hashes."""
    from kiln.lock import resolve_lock
    from kiln.recipe import load_recipe

    index = index_options(index_url, find_links, no_index)
    locks = []
    reporter = terminal()
    try:
        with reporting(reporter):
            for path in recipes:
                recipe = load_recipe(path)
                locks.append(resolve_lock(recipe, cache=cache_dir(cache), index=index,
                                          python_paths=dict(_python_paths(python_path))))
    finally:
        reporter.close()
    if json_output:
        print_json([{"lock": str(lk.path), "sha256": lk.sha256, "pythons": list(lk.pythons),
                     "pins": [{"name": p.name, "version": p.version, "marker": p.marker,
                               "hashes": list(p.hashes)} for p in lk.pins]} for lk in locks])
        return
    for lk in locks:
        table(f"{lk.path} (CPython {', '.join(lk.pythons)})", ["requirement", "version", "marker",
                                                                "hashes"],
              [[p.name, p.version, p.marker, str(len(p.hashes))] for p in lk.pins])


@app.command()
def repro(
    recipe: Annotated[Path, typer.Argument(help="The recipe of the wheel.")],
    against: Annotated[str, typer.Option("--against", help="A wheel built elsewhere: a path or "
                                                           "an https:// url.")],
    output: OutputOption = Path("wheelhouse"),
    backend: BackendOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild even if cached.")] = False,
    diffoscope: Annotated[bool, typer.Option("--diffoscope", help="Add diffoscope's HTML "
                                                                  "report.")] = False,
    python_path: PythonPathOption = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    crates_url: CratesUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rebuild a wheel someone else built, and say whether ours is bit-for-bit the same."""
    from kiln.errors import NotReproducibleError
    from kiln.rebuild import rebuild_against

    _check_choices(None, backend)
    options = build_options(output=output.absolute(), cache=cache_dir(cache), backend=backend,
                            index=index_options(index_url, find_links, no_index),
                            use_cache=not no_cache, run_tests=False,
                            python_paths=_python_paths(python_path), diffoscope=diffoscope,
                            crates_url=crates_url)
    reporter = terminal()
    try:
        with reporting(reporter):
            done = rebuild_against(recipe, against, options)
    finally:
        reporter.close()
    report = done.report
    if json_output:
        print_json(report.model_dump(mode="json"))
    else:
        print_report(report, done.report_path)
    if not report.reproducible:
        raise NotReproducibleError(f"our rebuild of {done.theirs.name} differs: {report.summary()}",
                                   hint=(report.suggestions() or [f"see {done.report_path}"])[0])


@app.command()
def rebuild(
    wheel: Annotated[str, typer.Argument(help="The wheel to rebuild: a path, or its URL on a "
                                              "kiln index (no recipe needed).")],
    output: OutputOption = Path("wheelhouse"),
    backend: BackendOption = None,
    use_cache: Annotated[bool, typer.Option(
        "--use-cache", help="Serve our own earlier build of the same inputs from the cache "
                            "(default: build again).")] = False,
    diffoscope: Annotated[bool, typer.Option("--diffoscope", help="Add diffoscope's HTML "
                                                                  "report.")] = False,
    python_path: PythonPathOption = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    sign_key: Annotated[Path | None, typer.Option(
        "--sign-key", envvar="KILN_SIGN_KEY",
        help="Sign our rebuild's provenance with this private key (the rebuilder's own key; "
             "writes W.dsse.json).")] = None,
    audit: Annotated[bool, typer.Option(
        "--audit", envvar="KILN_AUDIT",
        help="Record our rebuild on the audit branch of the repository kiln runs in: the "
             "same bytes add this signer as a witness, other bytes a conflict.")] = False,
    audit_branch: Annotated[str, typer.Option(
        "--audit-branch", envvar="KILN_AUDIT_BRANCH", help="The audit branch's name.")
    ] = "audit",
    crates_url: CratesUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rebuild a wheel from its own build record or provenance, with no recipe file, and say
    whether ours is bit-for-bit the same (the independent rebuilder's command)."""
    from kiln.errors import NotReproducibleError
    from kiln.pipeline import AfterBuild
    from kiln.rebuild import rebuild_from_record

    _check_choices(None, backend)
    options = build_options(output=output.absolute(), cache=cache_dir(cache), backend=backend,
                            index=index_options(index_url, find_links, no_index),
                            use_cache=use_cache, run_tests=False,
                            python_paths=_python_paths(python_path), diffoscope=diffoscope,
                            crates_url=crates_url)
    after: list[AfterBuild] = []
    if sign_key is not None:
        from kiln.signing.wheels import key_signing_step

        after.append(key_signing_step(sign_key))
    if audit:
        from kiln.audit import audit_step

        after.append(audit_step(Path.cwd(), audit_branch))
    reporter = terminal()
    try:
        with reporting(reporter):
            found, done = rebuild_from_record(wheel, options, after=after)
    finally:
        reporter.close()
    report = done.report
    if json_output:
        print_json({**report.model_dump(mode="json"), "inputs_from": found.where,
                    "recipe_sha256": found.recipe_sha256, "lock_sha256": found.lock_sha256,
                    "ours": str(done.result.wheel), "report_path": str(done.report_path)})
    else:
        out.print(Text(f"recipe {found.recipe_name} ({found.recipe_sha256[:12]}) and its lock "
                       f"({found.lock_sha256[:12]}) from {found.where}"))
        print_report(report, done.report_path)
    if not report.reproducible:
        raise NotReproducibleError(f"our rebuild of {done.theirs.name} differs: {report.summary()}",
                                   hint=(report.suggestions() or [f"see {done.report_path}"])[0])


def print_report(report: Any, path: Path) -> None:
    if report.inputs:
        table(f"inputs that differ (theirs from {report.their_record})",
              ["input", "ours", "theirs", "shapes the bytes"],
              [[d.input, d.ours, d.theirs, "yes" if d.shapes_bytes else "no"]
               for d in report.inputs])
    elif report.their_record:
        out.print(Text(f"every recorded input is the same (theirs from {report.their_record})"))
    elif report.their_record is None and not report.reproducible:
        out.print(Text("their build record was not found (beside the wheel, at its url + "
                       ".build.json, or on the audit branch): only the members can be compared"))
    if report.reproducible:
        out.print(Text.assemble(("identical", "green"), f": {report.wheel} sha256 "
                                f"{report.first.sha256}"))
        return
    table(f"{report.wheel}: {report.first.sha256[:12]} vs {report.second.sha256[:12]}",
          ["member", "how", "cause", "detail"],
          [[d.member or "(archive)", d.aspect, d.cause_title, d.detail]
           for d in report.differences])
    for suggestion in report.suggestions():
        out.print(Text(f"• {suggestion}"))
    out.print(Text(f"report: {path}"))

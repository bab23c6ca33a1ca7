"""The order of things: recipes → sdists → locks → builds (→ rebuilds) → wheelhouse.

The only module that knows the whole flow. Each step is a function of its own module;
this one picks them, runs them for every recipe × Python × target, keeps going past a
failure unless told to stop, and reports one result per build.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextvars import copy_context
from dataclasses import dataclass, field, replace
from pathlib import Path

from kiln import observe, schedule
from kiln.backends import Backend, BuildJob, Toolchain, get_backend
from kiln.build import BuildOutcome, build_id, run_build, test_wheel
from kiln.buildenv import CANONICAL, cpu_count, varied
from kiln.cache import BuildCache
from kiln.crates.fetch import DEFAULT_CRATES_URL, VendoredCrates, check_crates_url, fetch_crates
from kiln.crates.lockfile import rust_sources
from kiln.errors import KilnError, NothingToDoError, NotReproducibleError
from kiln.fetch import FetchedSource, fetch_sdist, source_date_epoch
from kiln.files import Artifact, copy_atomic, sha256_file
from kiln.installer import IndexOptions
from kiln.lock import resolve_lock, resolve_test_lock
from kiln.lockfile import (
    Lock,
    check_lock,
    read_lock,
    read_test_lock,
    test_lock_is_current,
    test_lock_path,
)
from kiln.outcomes import record_outcomes
from kiln.proc import CancelScope, run_in_scope
from kiln.progress import PrefixedReporter, reporter, reporting
from kiln.prune import Bound, Busy, bound_from_env, human_size, in_use, prune
from kiln.recipe import Recipe, canonical_backend, default_backend, load_recipe
from kiln.record import BuildRecord, FileRef, ReproRef, record_path, write_record
from kiln.toolchain.interpreters import find_interpreter, other_interpreter
from kiln.toolchain.rust import RUST_TIME_VARIATION
from kiln.toolchain.sysdeps import ensure_system_packages
from kiln.toolchain.targets import TARGETS, Target, host_target
from kiln.toolchain.zig import cache_entries
from kiln.wheelfile import parse_name
from kiln.wheeltest import TestOutcome, has_tests


@dataclass(frozen=True)
class BuildOptions:
    output: Path = Path("wheelhouse")
    cache: Path = Path(".cache/kiln")
    pythons: tuple[str, ...] = ()  # empty: the recipe's
    targets: tuple[str, ...] = ()  # empty: the recipe's, as far as this host can build them
    backend: str | None = None  # None: the recipe's
    index: IndexOptions = field(default_factory=IndexOptions)
    use_cache: bool = True
    run_tests: bool = True
    check_repro: bool = False
    fail_fast: bool = False
    overwrite: bool = False
    python_paths: tuple[tuple[str, Path], ...] = ()
    diffoscope: bool = False
    extra_env: tuple[tuple[str, str], ...] = ()
    install_system_deps: bool = False  # apt-get/brew install a recipe's missing system-requires
    jobs: int | None = None  # compiles at once, the build and its twin together; None: the CPUs
    crates_url: str | None = None  # --crates-url, KILN_CRATES_URL; None: the recipe's, or crates.io


@dataclass
class JobResult:
    """What became of one recipe × Python × target."""

    recipe: Path
    label: str
    python: str = ""
    target: str = ""
    ok: bool = False
    skipped: str = ""  # why it was not attempted
    cached: bool = False
    wheel: Path | None = None
    record: BuildRecord | None = None
    error: KilnError | None = None
    seconds: float = 0.0
    log: Path | None = None
    covered_by: str = ""  # the Python whose wheel (abi3 or pure) serves this one too
    covered_test: TestOutcome | None = None  # the tests run on that wheel with this Python
    cache_entry: Path | None = None  # the build cache's entry that holds this wheel


# Steps that run on each finished wheel (signing, the audit branch); they add to the
# record's neighbours, never change the wheel.
AfterBuild = Callable[[JobResult], None]


def _pythons(recipe: Recipe, options: BuildOptions) -> tuple[str, ...]:
    return options.pythons or recipe.pythons


def _targets(recipe: Recipe, options: BuildOptions, backend_name: str) -> tuple[
        list[Target], list[tuple[str, str]]]:
    """The targets to build, and those the recipe lists but this host cannot build (and why)."""
    if options.targets:
        return [TARGETS[t] for t in options.targets], []
    host = host_target()
    chosen, skipped = [], []
    for name in recipe.targets:
        target = TARGETS[name]
        if backend_name == "host" and target != host:
            how = ("the hermetic backend builds it from any Linux host"
                   if target.is_linux and host.is_linux else f"build on a {target.os} host")
            skipped.append((name, f"the host backend builds for {host.name} only; {how}"))
        elif backend_name == "hermetic" and not target.is_linux:
            skipped.append((name, "kiln's hermetic toolchain builds Linux wheels only; macOS "
                                  "needs a macOS runner"))
        elif backend_name == "hermetic" and target.arch not in ("x86_64", "aarch64"):
            skipped.append((name, "the hermetic backend builds x86_64 and aarch64 wheels only; "
                                  "use --backend cibuildwheel"))
        else:
            chosen.append(target)
    return chosen, skipped


def choose_backend(recipe: Recipe, options: BuildOptions) -> str:
    """The backend a build uses: the command line's, the recipe's, else kiln's default."""
    if options.backend:
        return canonical_backend(options.backend)
    if recipe.backend:
        return recipe.backend
    chosen, why = default_backend(recipe)
    if why:
        reporter().note(f"{recipe.label}: building with the {chosen} backend: {why}")
    return chosen


def ensure_lock(recipe: Recipe, options: BuildOptions, pythons: tuple[str, ...],
                source: FetchedSource | None = None) -> Lock:
    lock = read_lock(recipe)
    if lock is None:
        reporter().note(f"{recipe.lock_path} does not exist yet: resolving the build "
                        "requirements and writing it")
        lock = resolve_lock(recipe, cache=options.cache, index=options.index,
                            python_paths=dict(reversed(options.python_paths)), source=source)
    check_lock(recipe, lock, pythons)
    return lock


def ensure_test_lock(recipe: Recipe, options: BuildOptions, pythons: tuple[str, ...],
                     source: FetchedSource | None = None) -> Lock | None:
    """The lock of ``[test] requires``, resolved now when it is missing or out of date
    (the tests change more often than the build, and a stale one only costs a resolve)."""
    if not recipe.test.requires or not options.run_tests:
        return None
    lock = read_test_lock(recipe)
    if lock is None or not test_lock_is_current(recipe, lock, pythons):
        reporter().note(f"{test_lock_path(recipe)} is missing or out of date: resolving the "
                        "test requirements and writing it")
        lock = resolve_test_lock(recipe, index=options.index, source=source)
    return lock


def build_recipes(
    paths: Sequence[Path],
    options: BuildOptions,
    after: Sequence[AfterBuild] = (),
) -> list[JobResult]:
    if not paths:
        raise NothingToDoError("no recipes given", hint="kiln build recipes/NAME.toml")
    bound = bound_from_env()  # a bad KILN_CACHE_MAX_* stops the command before it builds
    results: list[JobResult] = []
    # No prune removes what these builds use; a build that makes the cache holds it from
    # when its inputs are fetched (below), so a refused recipe leaves no cache behind.
    with in_use(options.cache, if_exists=True):
        total = options.jobs or cpu_count()
        # Signing, the audit branch and apt-get take one recipe at a time.
        at_once = schedule.width(total, len(paths), check_repro=options.check_repro,
                                 one_at_a_time=bool(options.fail_fast or after
                                                    or options.install_system_deps))
        if at_once > 1:
            reporter().note(f"{len(paths)} recipes, {at_once} side by side with "
                            f"{total // at_once} of the {total} jobs each")
            shared = replace(options, jobs=total // at_once)
            for attempted in schedule.side_by_side(
                    list(paths), at_once, lambda path: _build_recipe(path, shared, after)):
                record_outcomes(options.output, attempted)
                results.extend(attempted)
        else:
            for path in paths:
                attempted = _build_recipe(path, options, after)
                record_outcomes(options.output, attempted)  # what `kiln status` reads
                results.extend(attempted)
                if options.fail_fast and any(not r.ok and not r.skipped for r in results):
                    break
    if any(r.ok and not r.cached and not r.covered_by for r in results):
        _keep_bounded(options.cache, bound)
    return results


def _keep_bounded(cache: Path, bound: Bound) -> None:
    """After builds that added to the cache, prune it to ``bound``, unless another build
    holds it (that build prunes when it ends)."""
    try:
        report = prune(cache, bound, wait=False)
    except Busy:
        return
    if report.removed_entries:
        reporter().note(f"cache: removed {report.removed_entries} entries "
                        f"({human_size(report.removed_size)}) to keep {bound.describe()} "
                        "(KILN_CACHE_MAX_SIZE, KILN_CACHE_MAX_AGE)")


def _build_recipe(path: Path, options: BuildOptions,
                  after: Sequence[AfterBuild]) -> list[JobResult]:
    out: list[JobResult] = []
    try:
        recipe = load_recipe(path)
        backend_name = choose_backend(recipe, options)
        backend = get_backend(backend_name)
        pythons = _pythons(recipe, options)
        targets, skipped = _targets(recipe, options, backend_name)
        out = [JobResult(recipe=path, label=f"{recipe.label} ({name})", target=name,
                         skipped=why) for name, why in skipped]
        if targets:
            # Containers bring their own libraries; the host's matter to the other backends.
            system = (ensure_system_packages(recipe, install=options.install_system_deps)
                      if backend_name != "cibuildwheel" else ())
            source = fetch_sdist(recipe, options.cache)
            crates = fetch_rust_crates(recipe, source, options, backend_name)
            lock = ensure_lock(recipe, options, pythons, source)
            test_lock = ensure_test_lock(recipe, options, pythons, source)
            epoch = source_date_epoch(source, recipe)
    except KilnError as exc:
        refused = JobResult(recipe=path, label=str(path), error=exc)
        if exc.bad_input:
            return [refused]  # refused whole: nothing was tried, so nothing was skipped
        return [*_noted(out), refused]
    _noted(out)
    if not targets:
        return out
    with in_use(options.cache):  # from here on it writes what a prune would remove
        # Oldest Python first: an abi3 wheel built with it serves the newer ones.
        builds = [(python, target) for python in sorted(pythons, key=_version_key)
                  for target in targets]
        total = options.jobs or cpu_count()

        def attempt(build: tuple[str, Target], jobs: int) -> JobResult:
            python, target = build
            tag = f"cp{python.replace('.', '')}"
            result = JobResult(recipe=path, label=f"{recipe.label} ({tag}, {target.name})",
                               python=python, target=target.name)
            started = time.monotonic()
            try:
                interp = find_interpreter(python, _python_path(options, python))
                job = BuildJob(recipe=recipe, interpreter=interp, target=target, source=source,
                               lock=lock, test_lock=test_lock, source_date_epoch=epoch,
                               index=options.index, surroundings=CANONICAL, cache=options.cache,
                               extra_env=options.extra_env, system_packages=system, jobs=jobs,
                               crates=crates)
                covering = _covering(out, python, target)
                if covering is not None:
                    _test_covered(job, covering, options, result)
                else:
                    _build_job(job, backend, options, result)
                result.ok = True
            except KilnError as exc:
                result.error = exc
                result.log = exc.log or result.log
            result.seconds = round(time.monotonic() - started, 3)
            return result

        for wave in schedule.waves([(p, t.name) for p, t in builds]):
            at_once = schedule.width(total, len(wave), check_repro=options.check_repro,
                                     one_at_a_time=options.fail_fast)
            if at_once > 1:
                reporter().note(f"{recipe.label}: {len(wave)} builds, {at_once} side by side "
                                f"with {total // at_once} of the {total} jobs each")
            for result in schedule.side_by_side(
                    [builds[i] for i in wave], at_once,
                    functools.partial(attempt, jobs=total // at_once)):
                # Signing and the audit branch, one wheel at a time, in the builds' order.
                if result.ok and not result.covered_by:
                    try:
                        for step in after:
                            step(result)
                    except KilnError as exc:
                        result.ok, result.error = False, exc
                out.append(result)
                if options.fail_fast and not result.ok:
                    return out
        return out


def fetch_rust_crates(recipe: Recipe, source: FetchedSource, options: BuildOptions,
                      backend_name: str) -> VendoredCrates | None:
    """The crates the sdist's Cargo.lock files pin, fetched now: the build has no network.

    None when the sdist has no Rust, or for cibuildwheel, whose containers run cargo alone.
    """
    if backend_name == "cibuildwheel":
        return None
    rust = rust_sources(source.path)
    if rust is None:
        return None
    if options.crates_url:
        template = check_crates_url(options.crates_url, "--crates-url (KILN_CRATES_URL)")
    else:
        template = recipe.crates_url or DEFAULT_CRATES_URL
    return fetch_crates(rust, template, options.cache)


def _noted(skipped: list[JobResult]) -> list[JobResult]:
    """Say which targets of a recipe this host skips (once the recipe is not refused)."""
    for result in skipped:
        reporter().note(f"skipping {result.label}: {result.skipped}")
    return skipped


def _python_path(options: BuildOptions, python: str) -> Path | None:
    """The first --python-path given for ``python`` (a second one is for the rebuild)."""
    return next((path for minor, path in options.python_paths if minor == python), None)


def _version_key(python: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in python.split("."))


def _covering(done: list[JobResult], python: str, target: Target) -> JobResult | None:
    """An earlier wheel of this recipe that installs on ``python`` and ``target`` as it is.

    An abi3 wheel (``cp38-abi3-…``) serves every later CPython on its platform, and a
    pure wheel (``py3-none-any``) every Python and platform: building it again would
    give a wheel of the same name, at best the same bytes, at worst a clash.
    """
    wanted = _version_key(python)
    for earlier in done:
        if not earlier.ok or earlier.wheel is None or earlier.covered_by:
            continue
        for tag in parse_name(earlier.wheel.name).tags:
            interpreter = tag.interpreter
            digits = interpreter[2:]
            if not digits.isdigit():
                continue
            floor = (int(digits[0]), int(digits[1:] or 0))
            if wanted[:1] != floor[:1] or wanted[:2] < floor:
                continue
            if tag.abi == "abi3" and interpreter.startswith("cp") and \
                    earlier.target == target.name:
                return earlier
            if tag.abi == "none" and tag.platform == "any" and interpreter.startswith("py"):
                return earlier
    return None


def _test_covered(job: BuildJob, covering: JobResult, options: BuildOptions,
                  result: JobResult) -> None:
    """Run the recipe's tests with this Python on the wheel that already serves it."""
    assert covering.wheel is not None and covering.record is not None
    wheel = covering.wheel
    reporter().note(f"{job.label}: {wheel.name}, built with Python {covering.python}, "
                    f"installs on Python {job.interpreter.minor} too; not building it again")
    result.wheel, result.record, result.covered_by = wheel, covering.record, covering.python
    if not (options.run_tests and has_tests(job.recipe.test)):
        return
    log_name = (f"{job.recipe.project}-{job.recipe.version}-{job.interpreter.tag}-"
                f"{job.target.name}.log")
    kept = options.output / "logs" / log_name
    with tempfile.TemporaryDirectory(prefix="kiln-staging-", dir=_mkdir(options.cache)) as tmp:
        log = Path(tmp) / log_name
        reporter().stage("test", f"{wheel.name} on Python {job.interpreter.minor}")
        try:
            result.covered_test = test_wheel(job, wheel, work=options.cache / "work", log=log)
        except KilnError as exc:
            if log.exists():  # the staging folder goes away; the log that says why stays
                copy_atomic(log, kept)
                exc.log = kept
            raise
        if log.exists():
            copy_atomic(log, kept)
            result.log = kept


def _build_job(job: BuildJob, backend: Backend, options: BuildOptions, result: JobResult) -> None:
    toolchain = backend.toolchain(job)
    tests = [list(c) for c in job.recipe.test.commands] if options.run_tests else "no tests"
    key = BuildCache.key(build_id(job, backend, toolchain),
                         tests=[tests, list(job.recipe.test.requires),
                                list(job.recipe.test.files), job.recipe.test.smoke,
                                job.test_lock.sha256 if job.test_lock else ""])
    logs = options.output / "logs"
    log_name = (f"{job.recipe.project}-{job.recipe.version}-{job.interpreter.tag}-"
                f"{job.target.name}.log")
    work = options.cache / "work"
    with tempfile.TemporaryDirectory(prefix="kiln-staging-", dir=_mkdir(options.cache)) as tmp:
        staging = Path(tmp)
        log = staging / log_name
        try:
            _build_staged(job, backend, toolchain, options, result, key, staging, log, work)
        except KilnError as exc:
            # The staging folder goes away; a failed build's logs stay in the wheelhouse
            # (the --check-repro rebuild's too: it may be the one that failed).
            failed_in = exc.log
            if log.exists():
                kept = logs / log_name
                copy_atomic(log, kept)
                exc.log = kept
            rebuild_log = staging / "rebuild.log"
            if rebuild_log.exists():
                kept = logs / log_name.replace(".log", ".rebuild.log")
                copy_atomic(rebuild_log, kept)
                if failed_in == rebuild_log:
                    exc.log = kept
            raise


def _build_staged(job: BuildJob, backend: Backend, toolchain: Toolchain, options: BuildOptions,
                  result: JobResult, key: str, staging: Path, log: Path, work: Path) -> None:
    cache = BuildCache(options.cache)
    hit = cache.get(key) if options.use_cache else None
    second: BuildOutcome | None = None
    if hit is not None:
        reporter().note(f"{job.label}: using the cached build {key[:12]} (same recipe, sdist, "
                        "lock, interpreter and toolchain; --no-cache builds again)")
        wheel = staging / hit.wheel.name
        shutil.copyfile(hit.wheel, wheel)
        if hit.log:
            shutil.copyfile(hit.log, log)
        first = BuildOutcome(record=hit.record.model_copy(update={"cached": True}), wheel=wheel,
                             log=log)
        result.cached = True
        if options.check_repro:
            second = _varied_build(job, backend, options, work, staging)
    elif options.check_repro:
        first, second = _both_builds(job, backend, toolchain, options, work, staging, log)
    else:
        first = run_build(job, backend, toolchain, work=work, staging=staging / "a", log=log,
                          run_tests=options.run_tests)
    record = first.record
    if second is not None:
        record = _compare(job, backend, first, second, options)
    if hit is None:
        cache.put(key, first.record, first.wheel, log)
    result.cache_entry = cache.root / key
    _deliver(job, record, first.wheel, log, options, result)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def rebuild_job(job: BuildJob, backend: Backend, options: BuildOptions) -> BuildJob:
    """The reproducibility twin of ``job``: the same inputs, other surroundings, another
    CPython build of the same X.Y when the machine has one (the interpreter variation)."""
    unsupported = backend.unsupported_variations
    if job.crates is not None:
        unsupported = (*unsupported, RUST_TIME_VARIATION)
    surroundings = varied(job.recipe.repro.skip_variations, unsupported=unsupported)
    if "interpreter" not in surroundings.applied:
        return replace(job, surroundings=surroundings)
    other = other_interpreter(job.interpreter, explicit=tuple(
        p for minor, p in options.python_paths if minor == job.interpreter.minor))
    if other is None:
        surroundings = replace(
            surroundings, applied=tuple(v for v in surroundings.applied if v != "interpreter"),
            skipped=(*surroundings.skipped,
                     ("interpreter", f"no second build of CPython {job.interpreter.minor} on "
                                     "this machine (give one with a second --python-path)")))
        return replace(job, surroundings=surroundings)
    return replace(job, surroundings=surroundings, interpreter=other)


def _varied_build(job: BuildJob, backend: Backend, options: BuildOptions, work: Path,
                  staging: Path) -> BuildOutcome:
    rebuild = rebuild_job(job, backend, options)
    log = staging / "rebuild.log"
    with reporting(PrefixedReporter(reporter(), "rebuild")):
        # Its own toolchain: its own compiler cache, and its own interpreter's view.
        toolchain = backend.toolchain(rebuild)
        cold = _cache_state(toolchain.compile_cache, toolchain.cache_entries_before)
        if toolchain.libraries:
            cold = f"{cold or 'compiles'}; libraries: " + ", ".join(
                f"{lib.spec.name} " + ("from the rebuild's own library cache, never the build's"
                                       if lib.cached else "built by the rebuild")
                for lib in toolchain.libraries)
        # Tests already ran on the first build; the rebuild only has to make the same bytes.
        outcome = run_build(rebuild, backend, toolchain, work=work, staging=staging / "b",
                            log=log, run_tests=False)
    return replace(outcome, compiles=cold, surroundings=rebuild.surroundings,
                   interpreter=(f"{rebuild.interpreter.version} at {rebuild.interpreter.path}"
                                if rebuild.interpreter != job.interpreter else None))


def _cache_state(cache: Path | None, before: int | None = None) -> str | None:
    """Whether a compiler cache held anything (a rebuild's compiles are then cold): as it was
    ``before`` the toolchain compiled the recipe's libraries into it, when known."""
    if cache is None:
        return None
    entries = cache_entries(cache) if before is None else before
    name = f"{cache.parent.name}/{cache.name}"
    if entries == 0:
        return f"cold: its own compiler cache ({name}) was empty"
    return (f"its own compiler cache ({name}, {entries} objects from earlier rebuilds; "
            "never the build's)")


def _both_builds(job: BuildJob, backend: Backend, toolchain: Toolchain, options: BuildOptions,
                 work: Path, staging: Path, log: Path) -> tuple[BuildOutcome, BuildOutcome]:
    """The build and its varied rebuild: side by side when the job limit allows two, each
    with its share of it."""
    def first(jobs: int) -> BuildOutcome:
        return run_build(replace(job, jobs=jobs), backend, toolchain, work=work,
                         staging=staging / "a", log=log, run_tests=options.run_tests)

    def second(jobs: int) -> BuildOutcome:
        return _varied_build(replace(job, jobs=jobs), backend, options, work, staging)

    if job.jobs < 2:
        return first(job.jobs), second(job.jobs)
    shares = (job.jobs - job.jobs // 2, job.jobs // 2)
    scopes = {"build": CancelScope(), "rebuild": CancelScope()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(copy_context().run, run_in_scope, scopes["build"],
                        functools.partial(first, shares[0]))
        b = pool.submit(copy_context().run, run_in_scope, scopes["rebuild"],
                        functools.partial(second, shares[1]))
        try:
            done, _ = wait([a, b], return_when=FIRST_EXCEPTION)
        except BaseException:
            # Ctrl-C or SIGTERM: stop both builds' programs, or leaving this block would
            # wait for them to finish (an hour, for grpcio).
            for scope in scopes.values():
                scope.cancel("kiln was stopped")
            raise
        failed = next((f for f in (a, b) if f in done and f.exception() is not None), None)
        if failed is not None:
            # No point finishing the twin of a failed build: stop it, report the failure.
            other = "rebuild" if failed is a else "build"
            scopes[other].cancel(f"the {'build' if failed is a else 'rebuild'} beside it failed")
            wait([a, b])
            exc = failed.exception()
            assert exc is not None
            raise exc
        return a.result(), b.result()


def _compare(job: BuildJob, backend: Backend, first: BuildOutcome, second: BuildOutcome,
             options: BuildOptions) -> BuildRecord:
    from kiln.repro import compare_wheels, write_report

    reporter().stage("compare", first.wheel.name)
    report = compare_wheels(first.wheel, second.wheel, surroundings=second.record,
                            first_record=first.record, variations=second.surroundings)
    # A variation counts as applied only when the two builds saw different values.
    asked = second.surroundings.applied if second.surroundings else ()
    first_seen = first.record.observed or None
    seen, alike = observe.compare(first_seen, second.record.observed, asked)
    skipped = dict(report.skipped)
    if first_seen is None:
        why = ("not observed: the build came from the cache of a kiln that recorded no "
               "observations (--no-cache builds it again)")
        skipped.update(dict.fromkeys(asked, why))
    report = report.model_copy(update={"variations": list(seen), "skipped": skipped})
    report_path = options.output / f"{first.wheel.name}.repro.json"
    report = write_report(report, report_path, diffoscope=options.diffoscope,
                          wheels=(first.wheel, second.wheel))
    record = first.record.model_copy(update={"repro": ReproRef(
        checked=True,
        reproducible=report.reproducible,
        digests=[report.first.sha256, report.second.sha256],
        variations=list(report.variations),
        skipped=dict(report.skipped),
        expected=job.recipe.repro.expected,
        report=report_path.name,
        rebuild_interpreter=second.interpreter,
        rebuild_compiles=second.compiles,
        observed=seen,
    )})
    if alike:
        shown = ", ".join(f"{v} ({second.record.observed.get(observe.SHOWS[v], '?')})"
                          for v in alike)
        raise NotReproducibleError(
            f"{job.label}: the rebuild was to vary {', '.join(alike)}, but both builds saw "
            f"the same: {shown}; the check proves nothing about what it did not vary",
            hint="this is a bug in kiln or a host that cannot apply the variation: report it, "
                 "or skip it with [repro] skip-variations", report=report_path)
    if not report.reproducible:
        if job.recipe.repro.expected:
            failures = options.output / "repro-failures" / first.wheel.name
            failures.mkdir(parents=True, exist_ok=True)
            copy_atomic(first.wheel, failures / "build-a.whl")
            copy_atomic(second.wheel, failures / "build-b.whl")
            raise NotReproducibleError(
                f"{job.label}: two builds gave different wheels "
                f"({report.first.sha256[:12]}… vs {report.second.sha256[:12]}…); "
                f"{report.summary()}",
                hint=f"see {report_path} (and {failures}); "
                     + (report.suggestions()[0] if report.suggestions() else
                        "if it cannot be fixed, set [repro] expected = false with a reason"),
                report=report_path,
            )
        reporter().note(f"{job.label}: not reproducible, as the recipe expects "
                        f"({job.recipe.repro.reason})")
    return record


def _deliver(job: BuildJob, record: BuildRecord, wheel: Path, log: Path, options: BuildOptions,
             result: JobResult) -> None:
    """Put the wheel, its record and its log in the wheelhouse, each file whole or not at all."""
    out = _mkdir(options.output)
    target = out / wheel.name
    digest = record.wheel.sha256
    there = sha256_file(target) if target.exists() else None
    if there is not None and there != digest and not options.overwrite:
        raise KilnError(f"{target} already exists with different contents",
                        hint="move it away, or pass --overwrite to replace it")
    log_target = out / "logs" / log.name
    if log.exists():
        copy_atomic(log, log_target)
        art = Artifact.of(log_target)
        record = record.model_copy(update={"log": FileRef(name=f"logs/{log.name}",
                                                          sha256=art.sha256, size=art.size)})
    if there != digest:  # a wheel already there with these bytes stays as it is
        copy_atomic(wheel, target)
    write_record(record, record_path(target))
    result.wheel = target
    result.record = record
    result.log = log_target if log.exists() else None



"""``kiln matrix``: the GitHub Actions build matrix of a set of recipes.

One entry per recipe × Python × target, each a flat object of strings naming the
recipe, the build and the runner and backend that build it. The output is what GitHub
takes as ``strategy.matrix`` (``{"include": [...]}``), in a stable order, and split into
chunks of at most 256 jobs, GitHub's limit for one matrix.

Runners and backends, per target:

=================  ===================  ======================================================
target             runner               backend
=================  ===================  ======================================================
linux-x86_64       ubuntu-latest        the recipe's (hermetic unless it names another, or
                                        builds against system packages: host)
linux-aarch64      ubuntu-24.04-arm     the recipe's (``aarch64="native"``, the default)
linux-aarch64      ubuntu-latest        hermetic, cross-compiling (``aarch64="cross"``)
macos-x86_64       macos-13             host, or cibuildwheel when the recipe says so
macos-arm64        macos-14             host, or cibuildwheel when the recipe says so
=================  ===================  ======================================================

GitHub's arm runners are free for public repositories; ``aarch64="cross"`` keeps every
hermetic Linux job on x86_64 runners (private repositories, or to avoid arm queues); a
recipe built with the host backend stays on the arm runner, since it cannot cross-compile.
The hermetic backend gives the same wheel on either runner. macOS targets build with the
host's compilers on the Mac runner: kiln's hermetic toolchain builds Linux wheels only.
``runners`` overrides the label of any target (self-hosted machines, newer images).
``alternate=True`` picks a different runner image for each target, for independent
rebuilds (``rebuild.yml``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError, NothingToDoError, UsageError
from kiln.recipe import Recipe, default_backend, load_recipe
from kiln.toolchain.targets import TARGETS, Target

GITHUB_MAX_JOBS = 256
AARCH64_MODES = ("native", "cross")
AARCH64_ALIASES = {"zig": "cross"}  # the mode's name before hermetic builds were the default
RUNNERS: Mapping[str, str] = {
    "linux-x86_64": "ubuntu-latest",
    "linux-aarch64": "ubuntu-24.04-arm",
    "macos-x86_64": "macos-13",
    "macos-arm64": "macos-14",
}
# Another image of the same architecture: a rebuild there shares no machine with the build.
ALTERNATE_RUNNERS: Mapping[str, str] = {
    "linux-x86_64": "ubuntu-22.04",
    "linux-aarch64": "ubuntu-22.04-arm",
    "macos-x86_64": "macos-15-intel",
    "macos-arm64": "macos-15",
}
ZIG_RUNNER = "ubuntu-latest"
ZIG_ALTERNATE_RUNNER = "ubuntu-22.04"
# GitHub reads matrix values as `matrix.<key>`: keys must be plain identifiers.
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")

MatrixEntry = dict[str, str]


@dataclass(frozen=True)
class Matrix:
    entries: tuple[MatrixEntry, ...]
    max_jobs: int

    def chunks(self) -> list[dict[str, list[MatrixEntry]]]:
        """The entries as ``strategy.matrix`` objects of at most ``max_jobs`` jobs each."""
        step = self.max_jobs
        return [{"include": list(self.entries[i:i + step])}
                for i in range(0, len(self.entries), step)]

    def single(self) -> dict[str, list[MatrixEntry]]:
        """The whole matrix as one ``strategy.matrix``; refused when GitHub would refuse it."""
        if len(self.entries) > self.max_jobs:
            raise UsageError(f"the matrix has {len(self.entries)} jobs, more than "
                             f"{self.max_jobs} in one matrix",
                             hint="use --chunks (a list of matrices; build.yml runs one "
                                  "reusable-workflow call per chunk)")
        return {"include": list(self.entries)}


def parse_runner_overrides(values: Sequence[str]) -> dict[str, str]:
    """``TARGET=LABEL`` pairs (``--runner linux-aarch64=my-arm-box``)."""
    overrides = {}
    for value in values:
        target, sep, label = value.partition("=")
        if not sep or target not in TARGETS or not _LABEL.match(label):
            raise UsageError(f"--runner {value!r} must be TARGET=LABEL",
                             hint=f"targets: {', '.join(TARGETS)}; for example "
                                  "--runner linux-aarch64=ubuntu-24.04-arm")
        overrides[target] = label
    return overrides


def runner_and_backend(recipe: Recipe, target: Target, *, aarch64: str = "native",
                       alternate: bool = False,
                       runners: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Which runner builds ``target`` for ``recipe``, and with which backend."""
    table = ALTERNATE_RUNNERS if alternate else RUNNERS
    override = (runners or {}).get(target.name)
    if target.is_macos:
        backend = "cibuildwheel" if recipe.backend == "cibuildwheel" else "host"
        return override or table[target.name], backend
    backend = recipe.backend or default_backend(recipe, TARGETS["linux-x86_64"])[0]
    cross = (target.name == "linux-aarch64" and backend == "hermetic"
             and AARCH64_ALIASES.get(aarch64, aarch64) == "cross")
    if cross:
        return override or (ZIG_ALTERNATE_RUNNER if alternate else ZIG_RUNNER), backend
    if override:
        return override, backend
    if target.name not in table:
        raise UsageError(f"{recipe.path}: no GitHub-hosted runner builds {target.name}",
                         hint=f"name one: --runner {target.name}=LABEL (a self-hosted runner)")
    return table[target.name], backend


def _job_id(recipe: Recipe, python: str, target: str) -> str:
    return _ID_UNSAFE.sub("-", f"{recipe.project}-{recipe.version}-cp{python.replace('.', '')}"
                               f"-{target}")


def _python_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def build_matrix(
    paths: Sequence[Path],
    *,
    max_jobs: int = GITHUB_MAX_JOBS,
    aarch64: str = "native",
    alternate: bool = False,
    runners: Mapping[str, str] | None = None,
    pythons: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> Matrix:
    """The matrix of ``paths`` (recipes), optionally narrowed to some Pythons and targets."""
    if not 1 <= max_jobs <= GITHUB_MAX_JOBS:
        raise UsageError(f"--max-jobs {max_jobs}: GitHub runs 1 to {GITHUB_MAX_JOBS} jobs per "
                         "matrix")
    aarch64 = AARCH64_ALIASES.get(aarch64, aarch64)
    if aarch64 not in AARCH64_MODES:
        raise UsageError(f"--aarch64 {aarch64}: must be one of {', '.join(AARCH64_MODES)}")
    for name in targets:
        if name not in TARGETS:
            raise UsageError(f"--target {name}: unknown target",
                             hint=f"targets: {', '.join(TARGETS)}")
    if not paths:
        raise NothingToDoError("no recipes given", hint="kiln matrix recipes/*.toml")
    entries: list[MatrixEntry] = []
    order = list(TARGETS)
    for path in sorted(paths, key=lambda p: p.as_posix()):
        recipe = load_recipe(path)
        chosen_pythons = [p for p in recipe.pythons if not pythons or p in pythons]
        chosen_targets = [t for t in recipe.targets if not targets or t in targets]
        for python in sorted(chosen_pythons, key=_python_key):
            for name in sorted(chosen_targets, key=order.index):
                runner, backend = runner_and_backend(recipe, TARGETS[name], aarch64=aarch64,
                                                     alternate=alternate, runners=runners)
                entries.append({
                    "id": _job_id(recipe, python, name),
                    "recipe": path.as_posix(),
                    "name": recipe.name,
                    "version": recipe.version,
                    "python": python,
                    "target": name,
                    "runner": runner,
                    "backend": backend,
                })
    if not entries:
        raise NothingToDoError("the recipes and filters select no build",
                               hint="check --python and --target against the recipes")
    ids = [e["id"] for e in entries]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UsageError(f"two recipes build the same wheel: {', '.join(twice)}",
                         hint="keep one recipe per project and version")
    matrix = Matrix(entries=tuple(entries), max_jobs=max_jobs)
    for chunk in matrix.chunks():
        check_github_matrix(chunk)
    return matrix


def check_github_matrix(matrix: Mapping[str, object]) -> None:
    """Raise KilnError if GitHub would refuse ``matrix`` as ``strategy.matrix`` (a kiln bug)."""
    include = matrix.get("include")
    if set(matrix) != {"include"} or not isinstance(include, list) or not include:
        raise KilnError("kiln matrix: a matrix must be {\"include\": [non-empty list]}")
    if len(include) > GITHUB_MAX_JOBS:
        raise KilnError(f"kiln matrix: {len(include)} jobs in one matrix (GitHub allows "
                        f"{GITHUB_MAX_JOBS})")
    seen: set[str] = set()
    for entry in include:
        if not isinstance(entry, dict) or not entry:
            raise KilnError("kiln matrix: every include entry must be a non-empty object")
        for key, value in entry.items():
            if not isinstance(key, str) or not KEY.match(key):
                raise KilnError(f"kiln matrix: key {key!r} is not a valid matrix key")
            if not isinstance(value, (str, int, float, bool)):
                raise KilnError(f"kiln matrix: {key} must be a string, number or boolean")
        ident = str(entry.get("id"))
        if ident in seen:
            raise KilnError(f"kiln matrix: job id {ident} appears twice")
        seen.add(ident)


@dataclass(frozen=True)
class RebuildSelection:
    matrix: Matrix | None  # None: nothing to rebuild
    skipped: tuple[tuple[str, str], ...]  # (wheel, why)


def rebuild_matrix(
    paths: Sequence[Path],
    wheels: Sequence[str],
    *,
    index_url: str | None = None,
    max_jobs: int = GITHUB_MAX_JOBS,
    runners: Mapping[str, str] | None = None,
) -> RebuildSelection:
    """Jobs that rebuild ``wheels`` (filenames) from their recipes on different runner images.

    Each entry also names the wheel and, with ``index_url``, where the published copy is
    (from the index's PEP 691 page), for ``kiln repro RECIPE --against URL``.
    """
    from packaging.version import Version

    from kiln.pypi import project_page
    from kiln.wheelfile import parse_name

    recipes = [load_recipe(p) for p in sorted(paths, key=lambda p: p.as_posix())]
    entries: list[MatrixEntry] = []
    skipped: list[tuple[str, str]] = []
    pages: dict[str, dict[str, str]] = {}
    for filename in sorted(dict.fromkeys(wheels)):
        wheel = parse_name(filename)
        recipe = next((r for r in recipes if r.project == wheel.name
                       and Version(r.version) == Version(wheel.version)), None)
        if recipe is None:
            skipped.append((filename, "no recipe of this project and version"))
            continue
        built_by = _python_and_target(filename)
        if built_by is None:
            skipped.append((filename, "cannot tell which CPython and target built it"))
            continue
        python, target = built_by
        runner, backend = runner_and_backend(recipe, target, alternate=True, runners=runners)
        # One job per published wheel, named after it (two builders may have made it).
        entry = {"id": _ID_UNSAFE.sub("-", filename.removesuffix(".whl")),
                 "recipe": recipe.path.as_posix(),
                 "name": recipe.name, "version": recipe.version, "python": python,
                 "target": target.name, "runner": runner, "backend": backend,
                 "wheel": filename}
        if index_url is not None:
            if recipe.project not in pages:
                page = project_page(recipe.project, index_url)
                pages[recipe.project] = {f.filename: f.url for f in page.files}
            url = pages[recipe.project].get(filename)
            if url is None:
                skipped.append((filename, f"not on {index_url}"))
                continue
            entry["wheel_url"] = url
        entries.append(entry)
    return _selection(entries, skipped, max_jobs)


def _selection(entries: list[MatrixEntry], skipped: list[tuple[str, str]],
               max_jobs: int) -> RebuildSelection:
    """The rebuild jobs as a matrix GitHub accepts (None when there are none)."""
    if not entries:
        return RebuildSelection(None, tuple(skipped))
    matrix = Matrix(entries=tuple(entries), max_jobs=max_jobs)
    for chunk in matrix.chunks():
        check_github_matrix(chunk)
    return RebuildSelection(matrix, tuple(skipped))


def _python_and_target(filename: str) -> tuple[str, Target] | None:
    """The CPython X.Y and the target a binary wheel was built for, or None when its tags
    do not say (a pure wheel, several platforms)."""
    from kiln.toolchain.targets import target_of_platform_tag
    from kiln.wheelfile import parse_name

    wheel = parse_name(filename)
    py_tags = sorted({t.interpreter for t in wheel.tags if t.interpreter.startswith("cp")})
    found = {target_of_platform_tag(t) for t in wheel.platform_tags}
    if wheel.is_pure or not py_tags or len(found) != 1:
        return None
    target = found.pop()
    if target is None:
        return None
    return f"{py_tags[0][2]}.{py_tags[0][3:]}", target


def index_rebuild_matrix(
    index_url: str,
    *,
    since_days: int | None = None,
    projects: Sequence[str] = (),
    alternate: bool = False,
    max_jobs: int = GITHUB_MAX_JOBS,
    runners: Mapping[str, str] | None = None,
) -> RebuildSelection:
    """Jobs that rebuild what a kiln index serves, each from the wheel's own build record
    (``kiln rebuild WHEEL_URL``): a rebuilder needs no recipes and no access to the mirror's
    repository. Upstream's links on the index are not kiln's builds and are passed over.
    """
    from datetime import datetime, timedelta, timezone

    from packaging.utils import canonicalize_name

    from kiln.challenge import IndexSource

    cutoff = (datetime.now(timezone.utc) - timedelta(days=since_days)
              if since_days is not None else None)
    table = ALTERNATE_RUNNERS if alternate else RUNNERS
    entries: list[MatrixEntry] = []
    skipped: list[tuple[str, str]] = []
    listed = IndexSource(index_url).files(
        frozenset(canonicalize_name(p) for p in projects) or None)
    for file in sorted(listed, key=lambda f: f.filename):
        if file.upstream or not file.filename.endswith(".whl"):
            continue
        if cutoff is not None and file.uploaded is not None and file.uploaded < cutoff:
            continue
        built_by = _python_and_target(file.filename)
        if built_by is None:
            skipped.append((file.filename, "cannot tell which CPython and target built it"))
            continue
        python, target = built_by
        runner = (runners or {}).get(target.name) or table.get(target.name)
        if runner is None:
            skipped.append((file.filename, f"no GitHub-hosted runner builds {target.name} "
                                           f"(--runner {target.name}=LABEL)"))
            continue
        entries.append({"id": _ID_UNSAFE.sub("-", file.filename.removesuffix(".whl")),
                        "wheel": file.filename, "wheel_url": file.url, "python": python,
                        "target": target.name, "runner": runner})
    return _selection(entries, skipped, max_jobs)

"""Build-requirement locks: resolved once, with hashes, kept beside the recipe.

The lock is a requirements file that pip and uv accept with ``--require-hashes``,
with a header that ties it to the recipe's sdist and Pythons. It holds what the sdist
declares in ``[build-system] requires`` plus what its backend asks for at build time
(``get_requires_for_build_wheel``), resolved for every Python of the recipe at once.
The file's format, and reading it, are in ``kiln.lockfile``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from kiln import installer, proc
from kiln.buildenv import CANONICAL, Workspace, build_variables
from kiln.crates.lockfile import has_rust
from kiln.errors import KilnError, LockError
from kiln.fetch import FetchedSource, fetch_sdist, unpack_sdist
from kiln.files import copy_atomic, write_atomic
from kiln.installer import IndexOptions
from kiln.lockfile import LOCK_FORMAT, Lock, parse_lock, test_lock_path
from kiln.pep517 import BuildSystem, HookRun, get_requires_for_build_wheel, read_build_system
from kiln.progress import reporter
from kiln.recipe import Recipe
from kiln.toolchain import hosttools
from kiln.toolchain.interpreters import Interpreter, find_interpreter
from kiln.toolchain.rust import find_rust


def _dynamic_requires(recipe: Recipe, source: FetchedSource, interp: Interpreter,
                      build_system: BuildSystem, work: Path, index: IndexOptions) -> list[str]:
    """What the backend asks for beyond its static requirements, under ``interp``."""
    # The host's cmake, ninja, meson and pkg-config are hidden, so a backend that provides
    # them itself when the machine lacks them (scikit-build-core, meson-python) asks for
    # them here, and the lock pins them for every host alike.
    # A Rust sdist's backend sees the Rust toolchain the build will use: maturin asks for
    # a package that installs Rust (puccinialin) when it finds no cargo.
    rust_bin = (find_rust().sysroot / "bin",) if has_rust(source.path) else ()
    ws = Workspace.create(work, CANONICAL,
                          visible=(interp.path.parent.parent, *(p.parent for p in rust_bin)),
                          hidden=hosttools.build_tools())
    log = ws.root / "lock.log"
    try:
        project = unpack_sdist(source, ws.src / "unpacked")
        python = installer.create_venv(ws.env, interp.path, log=log)
        installer.install(python, requirements=build_system.requires, index=index, log=log,
                          what=f"installing {recipe.label}'s declared build requirements",
                          error=LockError)
        run = HookRun(
            python=f"{ws.inside(ws.env)}/bin/python",
            project_inside=ws.inside(project),
            sandbox=ws.sandbox,
            env=build_variables(recipe, ws, source_date_epoch=315532800,
                                tool_dirs=tuple(map(str, rust_bin))),
            log=log,
            timeout=600,
            label=f"{recipe.label} (cp{interp.minor.replace('.', '')})",
        )
        return get_requires_for_build_wheel(build_system, run, dict(recipe.config_settings))
    except KilnError as exc:
        # The workspace goes away; the log that says why stays, where the error points.
        if log.exists():
            kept = work.parent / "logs" / f"lock-{recipe.project}-{recipe.version}-" \
                f"cp{interp.minor.replace('.', '')}.log"
            copy_atomic(log, kept)
            exc.log = kept
        raise
    finally:
        ws.remove()


def _merge(static: tuple[str, ...], dynamic: dict[str, list[str]]) -> list[str]:
    """One requirement list for all Pythons: extras that only some Pythons need get markers."""
    lines = list(static)
    every = set.intersection(*(set(v) for v in dynamic.values())) if dynamic else set()
    for req in sorted(every):
        if req not in lines:
            lines.append(req)
    for python, reqs in sorted(dynamic.items()):
        for req in reqs:
            if req in every or req in static:
                continue
            try:
                parsed = Requirement(req)
            except InvalidRequirement as exc:
                raise LockError(f"the build backend asked for {req!r}, which is not a valid "
                                f"requirement: {exc}") from exc
            marker = f'python_version == "{python}"'
            if parsed.marker:
                marker = f"({parsed.marker}) and {marker}"
                parsed.marker = None
            lines.append(f"{parsed} ; {marker}")
    return lines


def resolve_lock(recipe: Recipe, *, cache: Path, index: IndexOptions,
                 python_paths: dict[str, Path] | None = None,
                 source: FetchedSource | None = None) -> Lock:
    """Resolve the recipe's build requirements for all its Pythons and write the lock."""
    source = source or fetch_sdist(recipe, cache)
    reporter().stage("lock", f"{recipe.label}: reading the build requirements")
    work = cache / "work"
    scratch = Workspace.create(work)
    try:
        project = unpack_sdist(source, scratch.src / "unpacked")
        build_system = read_build_system(project)
    finally:
        scratch.remove()
    dynamic: dict[str, list[str]] = {}
    for python in recipe.pythons:
        interp = find_interpreter(python, (python_paths or {}).get(python))
        reporter().stage("lock",
                         f"{recipe.label}: asking the backend under CPython {interp.version}")
        dynamic[python] = _dynamic_requires(recipe, source, interp, build_system, work, index)
    # The recipe's [build] requires join what the sdist declares: tools its build runs
    # without declaring them (a setup.py that calls cmake), now pinned like the rest.
    requirements = _merge((*build_system.requires, *recipe.build_requires), dynamic)
    reporter().stage("lock", f"{recipe.label}: resolving {len(requirements)} requirements")
    result = _compile(recipe, requirements, index,
                      what=f"resolving the build requirements of {recipe.label}")
    body = result.stdout.decode()
    header = [
        f"# {LOCK_FORMAT}: build requirements of {recipe.name} {recipe.version}",
        f"# regenerate with: kiln lock {recipe.path}",
        f"# sdist-sha256: {recipe.source_sha256}",
        f"# pythons: {' '.join(recipe.pythons)}",
        f"# backend: {build_system.backend}",
        f"# requires: {' | '.join(requirements)}",
        f"# resolver: {installer.uv_version()}",
    ]
    text = "\n".join(header) + "\n" + body
    lock = parse_lock(text, recipe.lock_path)  # never write what we could not read back
    write_atomic(recipe.lock_path, text)
    if recipe.test.requires:
        resolve_test_lock(recipe, index=index, source=source)
    return lock


def _compile(recipe: Recipe, requirements: Sequence[str], index: IndexOptions, *, what: str,
             extra: Sequence[str] = (), check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """uv's universal resolution of ``requirements``, with hashes, for the recipe's Pythons."""
    lowest = min(recipe.pythons, key=lambda v: tuple(int(x) for x in v.split(".")))
    return proc.capture(
        [installer.uv_binary(), "pip", "compile", "--quiet", "--universal", "--generate-hashes",
         "--no-header", "--python-version", lowest, *index.args(), *extra, "-"],
        what=what, error=LockError, env=installer.uv_env(), check=check,
        stdin=("\n".join(requirements) + "\n").encode())


# -- the test requirements -------------------------------------------------------------------
# Locked like the build requirements, in their own file (`NAME.test.lock`, see
# kiln.lockfile).

def resolve_test_lock(recipe: Recipe, *, index: IndexOptions,
                      source: FetchedSource | None = None) -> Lock:
    """Resolve ``[test] requires`` for all the recipe's Pythons, with hashes, and write
    ``NAME.test.lock``.

    A suite is written against the test tools of its day: an unpinned ``pytest`` resolved
    today can break an older release's conftest. So the resolution takes only releases
    from before the sdist's newest file (a week's grace), and falls back to today's when
    that cannot be met (a Python newer than the release); the header says which.
    """
    from datetime import datetime, timedelta, timezone

    from kiln.fetch import source_date_epoch

    path = test_lock_path(recipe)
    requirements = list(recipe.test.requires)
    reporter().stage("lock", f"{recipe.label}: resolving {len(requirements)} test "
                             "requirement(s)")
    what = f"resolving the test requirements of {recipe.label} ([test] requires)"
    cutoff = None
    if source is not None:
        released = datetime.fromtimestamp(source_date_epoch(source, recipe), timezone.utc)
        cutoff = (released + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = None
    if cutoff is not None:
        result = _compile(recipe, requirements, index, what=what,
                          extra=("--exclude-newer", cutoff), check=False)
        if result.returncode != 0:
            reporter().note(f"{recipe.label}: the test requirements cannot all be met with "
                            f"releases before {cutoff}; taking today's")
            result, cutoff = None, None
    if result is None:
        result = _compile(recipe, requirements, index, what=what)
    header = [
        f"# {LOCK_FORMAT}: test requirements of {recipe.name} {recipe.version}",
        f"# regenerate with: kiln lock {recipe.path}",
        f"# sdist-sha256: {recipe.source_sha256}",
        f"# pythons: {' '.join(recipe.pythons)}",
        f"# requires: {' | '.join(requirements)}",
        f"# released-before: {cutoff or 'none, the newest releases'}",
        f"# resolver: {installer.uv_version()}",
    ]
    text = "\n".join(header) + "\n" + result.stdout.decode()
    lock = parse_lock(text, path)
    write_atomic(path, text)
    return lock

"""One build: a recipe for one Python and one target, from sdist to a tested wheel and record."""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kiln import __version__
from kiln.backends import Backend, BuildJob, Toolchain
from kiln.buildenv import CANONICAL, Surroundings, Workspace, prefix_maps
from kiln.errors import BuildError, KilnError
from kiln.files import Artifact, sha256_bytes
from kiln.observe import sandbox_text
from kiln.progress import Expectation, compiles_in, last_build, remember_build, reporter
from kiln.record import (
    BuildRecord,
    CPythonRef,
    CrateRef,
    FileRef,
    InterpreterRef,
    LibraryRef,
    LockedRequirement,
    LockRef,
    Normalisation,
    RecipeRef,
    RepairRef,
    SandboxRef,
    SourceRef,
    ToolRef,
    WheelRef,
)
from kiln.repair import repair_wheel
from kiln.toolchain import emulation
from kiln.toolchain.libraries import BuiltLibrary
from kiln.toolchain.sandbox import bwrap_version
from kiln.toolchain.zig import cache_entries
from kiln.wheelfile import canonicalise, normalise_zig_builtin_paths, parse_name
from kiln.wheeltest import TestOutcome, has_tests, run_wheel_tests, test_ref

# Bumped whenever kiln changes what it does to a build in a way that changes its bytes.
# 7: zig's builtin folder digests zeroed in ELF members after repair;
# 6: CPython's headers at /kiln/python/include/python for every X.Y, which debug info names
# (the compiles that do not read Python.h are then one compile for every Python);
# 5: temp-folder maps, C++ by extension; 4: hermetic; 3: libc, meson
NORMALISATION_VERSION = "7"


@dataclass(frozen=True)
class BuildOutcome:
    record: BuildRecord
    wheel: Path  # the finished wheel, in the caller's staging folder
    log: Path
    # For a reproducibility rebuild: how it differed from the build, and its compiles.
    surroundings: Surroundings | None = None
    interpreter: str | None = None  # the other CPython build it ran with, if any
    compiles: str | None = None  # "cold: …" or "its own compiler cache …"


def build_inputs(job: BuildJob, backend: Backend, toolchain: Toolchain) -> dict[str, object]:
    """Everything that may change a build's bytes; its digest is the build id.

    A hermetic toolchain names itself (its pins and its canonical paths): the host, its
    interpreter build and its sandbox version are not inputs, so every host that builds a
    recipe hermetically gives it the same id.
    """
    if toolchain.identity is not None:
        return {
            "kiln": NORMALISATION_VERSION,
            "recipe": _recipe_inputs(job),
            "sdist": job.source.sha256,
            "lock": job.lock.sha256,
            "python": job.interpreter.minor,
            "target": job.target.name,
            "backend": backend.name,
            "toolchain": dict(toolchain.identity),
            "extra_env": dict(job.extra_env),
            "source_date_epoch": job.source_date_epoch,
        }
    return {
        "kiln": NORMALISATION_VERSION,
        "recipe": _recipe_inputs(job),
        "sdist": job.source.sha256,
        "lock": job.lock.sha256,
        "python": {"version": job.interpreter.version, "sha256": job.interpreter.sha256},
        "target": job.target.name,
        "backend": backend.name,
        "toolchain": [[t.name, t.version, t.sha256] for t in toolchain.tools],
        "toolchain_env": dict(toolchain.env),
        "extra_env": dict(job.extra_env),
        "source_date_epoch": job.source_date_epoch,
        "sandbox": bwrap_version() or "none",
        # Only when there are some, so that builds without system packages keep their ids.
        **({"system_packages": [[p.manager, p.name, p.version] for p in job.system_packages]}
           if job.system_packages else {}),
    }


def _recipe_inputs(job: BuildJob) -> dict[str, object]:
    recipe = job.recipe
    return {
        "name": recipe.name, "version": recipe.version,
        "environment": dict(recipe.environment),
        "config_settings": dict(recipe.config_settings),
        "glibc": recipe.glibc,
        "system_requires": {k: list(v) for k, v in recipe.system_requires},
    }


def build_id(job: BuildJob, backend: Backend, toolchain: Toolchain) -> str:
    blob = json.dumps(build_inputs(job, backend, toolchain), sort_keys=True).encode()
    return sha256_bytes(blob)


def _expect(job: BuildJob, toolchain: Toolchain) -> None:
    """Tell the reporter what the last build of this recipe took, and how to count the
    objects this one compiles (new entries in its compiler cache)."""
    chain = toolchain.compile_cache
    reporter().expect(last_build(job.cache, job.recipe.project, job.interpreter.minor,
                                 job.target.name),
                      _new_entries(chain) if chain is not None else None)


def _new_entries(chain: Path) -> Callable[[], int]:
    """A count of the entries ``chain`` gains from now on."""
    before = cache_entries(chain)
    return lambda: cache_entries(chain) - before


def run_build(
    job: BuildJob,
    backend: Backend,
    toolchain: Toolchain,
    *,
    work: Path,
    staging: Path,
    log: Path,
    run_tests: bool = True,
) -> BuildOutcome:
    """Build, repair, canonicalise and test one wheel; leave it in ``staging``."""
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    stages: dict[str, float] = {}
    visible = (job.interpreter.path.parent.parent, *toolchain.visible)
    ws = Workspace.create(work, job.surroundings, visible=visible, writable=toolchain.writable,
                          fixed=toolchain.binds, hidden=toolchain.hidden,
                          rust=job.crates is not None)
    try:
        reporter().stage("build", job.label)
        _expect(job, toolchain)
        t = time.monotonic()
        raw_build = backend.build(job, toolchain, ws, log)
        stages["build"] = round(time.monotonic() - t, 3)
        remember_build(job.cache, job.recipe.project, job.interpreter.minor, job.target.name,
                       Expectation(job.recipe.version, stages["build"], compiles_in(log)))
        if len(raw_build.wheels) != 1:
            raise BuildError(f"{job.label}: the backend made {len(raw_build.wheels)} wheels; "
                             "kiln expects one per Python and target", log=log)
        raw = raw_build.wheels[0]
        raw_ref = Artifact.of(raw)

        t = time.monotonic()
        repaired_dir = ws.root / "repaired"
        if raw_build.repaired:
            repaired_dir.mkdir()
            final = repaired_dir / raw.name
            shutil.copyfile(raw, final)
            repair = RepairRef(tool=f"{backend.name} (repaired by the backend)",
                               policy=parse_name(raw.name).platform_tags[0],
                               raw=FileRef(**raw_ref.__dict__))
        else:
            reporter().stage("repair", raw.name)
            fixed = repair_wheel(raw, job.target, repaired_dir, epoch=job.source_date_epoch,
                                 log=log, policy=toolchain.policy, label=job.label,
                                 library_path=tuple(lib.prefix / "lib"
                                                    for lib in toolchain.libraries
                                                    if lib.spec.link == "shared"))
            final = fixed.wheel
            repair = RepairRef(tool=fixed.tool, policy=fixed.policy, grafted=list(fixed.grafted),
                               raw=FileRef(**raw_ref.__dict__))
        zig_paths = normalise_zig_builtin_paths(final)
        canonicalise(final, job.source_date_epoch)
        stages["repair"] = round(time.monotonic() - t, 3)

        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / final.name
        shutil.move(final, staged)

        t = time.monotonic()
        if run_tests and has_tests(job.recipe.test):
            reporter().stage("test", staged.name)
            outcome = test_wheel(job, staged, work=work, log=log)
        else:
            outcome = TestOutcome(False, None, (), 0.0,
                                  why_not="--no-test" if not run_tests else
                                  "the recipe has no [test] commands")
        stages["test"] = round(time.monotonic() - t, 3)
    finally:
        ws.remove()

    wheel_ref = Artifact.of(staged)
    name = parse_name(staged.name)
    seconds = round(time.monotonic() - clock, 3)
    environment = dict(raw_build.environment)
    fixed_env = {k: v for k, v in environment.items()
                 if k in ("SOURCE_DATE_EPOCH", "LC_ALL", "LANG", "TZ", "PYTHONHASHSEED", "HOME",
                          "TMPDIR", "PATH")}
    record = BuildRecord(
        kiln_version=__version__,
        build_id=build_id(job, backend, toolchain),
        recipe=RecipeRef(path=str(job.recipe.path), sha256=job.recipe.sha256,
                         name=job.recipe.name, version=job.recipe.version,
                         text=job.recipe.text),
        lock=LockRef(path=str(job.lock.path), sha256=job.lock.sha256, text=job.lock.text),
        source=SourceRef(url=job.source.url, filename=job.source.filename,
                         sha256=job.source.sha256, size=job.source.size),
        python=InterpreterRef(version=job.interpreter.version, path=str(job.interpreter.path),
                              sha256=job.interpreter.sha256, tag=job.interpreter.tag,
                              zlib=job.interpreter.zlib),
        target=job.target.name,
        backend=backend.name,
        toolchain=[ToolRef(name=t.name, version=t.version, path=t.path, sha256=t.sha256)
                   for t in toolchain.tools],
        build_requirements=[
            LockedRequirement(name=p.name, version=p.version, hashes=list(p.hashes),
                              marker=p.marker)
            for p in job.lock.pins_for(job.interpreter.minor)
        ],
        system_packages=[ToolRef(name=p.name, version=p.version) for p in job.system_packages],
        libraries=[_library_ref(lib) for lib in toolchain.libraries],
        crates=_crate_refs(job),
        environment=environment,
        config_settings=dict(raw_build.config_settings if raw_build.config_settings is not None
                             else job.recipe.config_settings),
        normalisation=Normalisation(
            source_date_epoch=job.source_date_epoch,
            prefix_maps=dict(raw_build.isolation.prefix_maps if raw_build.isolation
                             else prefix_maps(ws)),
            fixed_paths=(raw_build.isolation.fixed_paths if raw_build.isolation
                         else ws.sandbox.isolated),
            zip_canonical=True,
            umask=f"{job.surroundings.umask:03o}",
            fixed_environment=fixed_env,
            zig_builtin_paths=zig_paths,
        ),
        sandbox=(SandboxRef(tool=raw_build.isolation.tool, network=raw_build.isolation.network)
                 if raw_build.isolation else
                 SandboxRef(tool=bwrap_version() or "none",
                            network=sandbox_text(dict(raw_build.observed),
                                                 ws.sandbox.network_note()))),
        outputs=[WheelRef(filename=staged.name, sha256=wheel_ref.sha256, size=wheel_ref.size,
                          python_tag=name.python_tag, abi_tag=name.abi_tag,
                          platform_tags=list(name.platform_tags))],
        repair=repair,
        test=test_ref(outcome, job.test_lock, job.interpreter.minor),
        log=None,
        host=f"{platform.system()} {platform.release()} {platform.machine()}",
        started=started,
        finished=datetime.now(timezone.utc),
        seconds=seconds,
        stages=stages,
        flake=_flake_revision(),
        hermetic=toolchain.hermetic and not toolchain.not_hermetic,
        not_hermetic=list(toolchain.not_hermetic),
        cpython=_cpython_ref(toolchain),
        observed=dict(raw_build.observed),
        jobs=job.jobs,
    )
    return BuildOutcome(record=record, wheel=staged, log=log)


def _library_ref(lib: BuiltLibrary) -> LibraryRef:
    spec = lib.spec
    return LibraryRef(name=spec.name, version=spec.version, source=lib.source.url,
                      filename=lib.source.filename, sha256=lib.source.sha256,
                      debian=lib.source.debian, build=spec.build, options=list(spec.options),
                      link=spec.link, requires=list(spec.requires), key=lib.key,
                      tree_sha256=lib.digest, cached=lib.cached)
def _crate_refs(job: BuildJob) -> list[CrateRef]:
    if job.crates is None:
        return []
    return [CrateRef(name=f.crate.name, version=f.crate.version, checksum=f.crate.checksum,
                     source=f.crate.source, url=f.url) for f in job.crates.crates]


def _cpython_ref(toolchain: Toolchain) -> CPythonRef | None:
    described = toolchain.cpython
    if described is None:
        return None
    pin = described.pin
    return CPythonRef(minor=described.minor, headers_version=pin.version, source=pin.describe(),
                      url=pin.urls()[0], deb_sha256=pin.sha256,
                      headers_sha256=described.headers_sha256,
                      sysconfig=described.sysconfig_name,
                      sysconfig_sha256=described.sysconfig_sha256)


def test_wheel(job: BuildJob, wheel: Path, *, work: Path, log: Path) -> TestOutcome:
    """Run the recipe's tests on ``wheel``, under emulation when it is for another machine."""
    from kiln.toolchain.targets import host_target

    locked = job.test_lock.path if job.test_lock is not None else None
    if job.target != host_target():
        return emulation.run_emulated_tests(wheel, job.recipe.test, job.interpreter.minor,
                                            job.target, work=work, index=job.index, log=log,
                                            label=job.label, cache=job.cache,
                                            sdist=job.source.path, test_lock=locked)
    return run_wheel_tests(wheel, job.recipe.test, job.interpreter, work=work, index=job.index,
                           log=log, label=job.label, sdist=job.source.path, test_lock=locked)


def _flake_revision() -> str | None:
    """The locked nixpkgs revision, when kiln runs inside its flake's shell."""
    import os

    return os.environ.get("KILN_FLAKE_NIXPKGS") or None


def is_canonical(job: BuildJob) -> bool:
    return job.surroundings == CANONICAL


__all__ = ["BuildOutcome", "KilnError", "build_id", "run_build"]

"""The PEP 517 build the hermetic and the host backend run: only the toolchain differs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kiln import installer
from kiln.backends import BuildJob, RawBuild, Toolchain
from kiln.buildenv import Workspace, build_variables, prefix_map_flags, with_jobs
from kiln.crates.vendor import vendor_crates
from kiln.errors import BuildError
from kiln.fetch import unpack_sdist
from kiln.observe import check_network, observe
from kiln.pep517 import (
    BuildSystem,
    ConfigSettings,
    HookRun,
    build_wheel,
    effective_config_settings,
    read_build_system,
)
from kiln.toolchain.compilers import wrap_compilers
from kiln.toolchain.meson import cross_file, with_setup_arg
from kiln.toolchain.targets import host_target


def faketime_prefix(job: BuildJob) -> list[str]:
    return ["faketime", "-f", job.surroundings.faketime] if job.surroundings.faketime else []


def cpu_prefix(job: BuildJob) -> list[str]:
    cpus = job.surroundings.cpus
    return ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []


def cargo_variables(job: BuildJob, toolchain: Toolchain, ws: Workspace,
                    rustflags: str) -> dict[str, str]:
    """Vendor the job's crates into the workspace; cargo's variables to build offline from them."""
    assert job.crates is not None
    env = vendor_crates(job.crates, ws.cargo, ws.inside(ws.cargo))
    remaps = [f"--remap-path-prefix={seen}={canon}" for seen, canon in toolchain.rust_maps
              if seen != canon]
    if remaps:
        env["RUSTFLAGS"] = " ".join((rustflags, *remaps)).strip()
    return env


def pep517_build(job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path, *,
                 check_backend: Callable[[BuildSystem], None] | None = None,
                 prepare_env: Callable[[Path], None] | None = None) -> RawBuild:
    """Unpack, install the lock into a fresh venv, run build_wheel in the sandbox.

    ``check_backend`` may refuse the sdist's build backend (raise) before anything runs;
    ``prepare_env`` may add to the build's venv once the lock is installed in it.
    """
    project = unpack_sdist(job.source, ws.src)
    build_system = read_build_system(project)
    if check_backend is not None:
        check_backend(build_system)
    python = installer.create_venv(ws.env, job.interpreter.path, log=log)
    lock_file = ws.root / "build-requirements.txt"
    lock_file.write_text(job.lock.path.read_text(encoding="utf-8"), encoding="utf-8")
    installer.install(python, requirement_files=[lock_file], index=job.index, log=log,
                      require_hashes=True, no_deps=True,
                      what=f"{job.label}: installing the locked build requirements")
    if prepare_env is not None:
        prepare_env(ws.env)
    env = build_variables(job.recipe, ws, source_date_epoch=job.source_date_epoch,
                          extra={**dict(toolchain.env), **dict(job.extra_env)},
                          tool_dirs=toolchain.tool_dirs)
    if job.crates is not None:
        env.update(cargo_variables(job, toolchain, ws, env.get("RUSTFLAGS", "")))
    env.update(wrap_compilers(ws.env / "bin", f"{ws.inside(ws.env)}/bin", env,
                              cc=job.interpreter.cc, cxx=job.interpreter.cxx,
                              flags=prefix_map_flags(ws), link_libc=job.target.is_linux))
    run = HookRun(
        python=f"{ws.inside(ws.env)}/bin/python",
        project_inside=ws.inside(project),
        sandbox=ws.sandbox,
        env=with_jobs(env, job.jobs, ws),  # recorded below without the job defaults
        log=log,
        timeout=job.recipe.timeout,
        umask=job.surroundings.umask,
        prefix=cpu_prefix(job),
        inner_prefix=faketime_prefix(job),
        label=job.label,
        hermetic=toolchain.hermetic,
    )
    seen = observe(run)
    check_network(seen, job.label)
    settings: ConfigSettings = dict(effective_config_settings(
        build_system.backend, dict(job.recipe.config_settings)))
    if build_system.backend == "mesonpy" and toolchain.hermetic and job.target != host_target():
        cross = ws.env / "meson-cross.ini"
        cross.write_text(cross_file(job.target, env, run.python), encoding="utf-8")
        settings = with_setup_arg(settings, f"--cross-file={ws.inside(cross)}")
    name = build_wheel(build_system, run, ws.inside(ws.out), settings)
    wheel = ws.out / name
    if not wheel.is_file():
        raise BuildError(f"{job.label}: the backend said it wrote {name}, but it is not there",
                         log=log)
    return RawBuild(wheels=(wheel,), environment=tuple(env.items()),
                    config_settings=tuple(settings.items()), observed=tuple(sorted(seen.items())))

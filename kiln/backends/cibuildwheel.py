"""cibuildwheel: manylinux/musllinux containers pinned by digest on Linux, the host on macOS.

The translation of a recipe into cibuildwheel's options lives in
``kiln.cibuildwheel_config``; this module checks the host can run it (a container engine
that answers, emulation for foreign Linux architectures, a Mac for macOS wheels), runs
cibuildwheel on the unpacked sdist, and hands back the wheel it repaired. The pipeline
then records, compares, signs and audits it like any other backend's wheel.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kiln import proc
from kiln.backends import BuildJob, Isolation, RawBuild, Toolchain
from kiln.buildenv import Workspace
from kiln.cibuildwheel_config import (
    CONTAINER_PROJECT,
    LOCK_NAME,
    CibuildwheelConfig,
    manylinux_image,
    source_dir,
    translate,
)
from kiln.errors import BuildError, UnsupportedError
from kiln.fetch import unpack_sdist
from kiln.files import sha256_file
from kiln.pep517 import effective_config_settings, read_build_system
from kiln.toolchain.sandbox import CANONICAL_ROOT
from kiln.toolchain.targets import host_target
from kiln.toolchain.tool import Tool

# What cibuildwheel and the container engine may see of the caller's environment.
_PASS_THROUGH = ("PATH", "HOME", "USER", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME",
                 "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
                 "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINERS_CONF", "HTTP_PROXY",
                 "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "SSL_CERT_FILE", "SSL_CERT_DIR", "DEVELOPER_DIR", "SDKROOT")
_ENGINES = ("docker", "podman")
_INSTALL_HINT = "pip install 'kiln[cibuildwheel]'"


@dataclass(frozen=True)
class ContainerEngine:
    name: str
    path: str
    version: str


def cibuildwheel_version() -> str:
    try:
        return metadata.version("cibuildwheel")
    except metadata.PackageNotFoundError as exc:
        raise UnsupportedError("the cibuildwheel backend needs cibuildwheel, which is not "
                               "installed", hint=_INSTALL_HINT) from exc


@functools.cache
def find_container_engine() -> ContainerEngine:
    """The first of docker and podman (or ``KILN_CONTAINER_ENGINE``) whose server answers."""
    wanted = os.environ.get("KILN_CONTAINER_ENGINE", "")
    candidates = (wanted,) if wanted else _ENGINES
    tried: list[str] = []
    for name in candidates:
        exe = shutil.which(name)
        if exe is None:
            tried.append(f"{name}: not installed")
            continue
        query = "{{.ServerVersion}}" if name == "docker" else "{{.Version.Version}}"
        out = proc.capture([exe, "info", "--format", query], what=f"{name} info", check=False,
                           quiet=True)
        version = out.stdout.decode(errors="replace").strip()
        if out.returncode == 0 and version:
            return ContainerEngine(name=name, path=exe, version=version)
        why = (out.stderr or out.stdout).decode(errors="replace").strip().splitlines()
        tried.append(f"{name}: {why[-1] if why else f'exit {out.returncode}'}")
    raise UnsupportedError(
        "cibuildwheel builds Linux wheels in containers, and no container engine works here ("
        + "; ".join(tried) + ")",
        hint="start the Docker daemon (or install podman; KILN_CONTAINER_ENGINE=podman picks "
             "it), or build with --backend native (this host's platform) or --backend zig",
    )


def _emulation_ready(arch: str) -> bool:
    """Whether the kernel runs ``arch`` binaries through QEMU (binfmt_misc), as containers need."""
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{arch}"
    try:
        return entry.read_text().startswith("enabled")
    except OSError:
        return False


def _check_host(job: BuildJob) -> list[str]:
    """Raise UnsupportedError when this host cannot build ``job``; return notes on how it will."""
    host = host_target()
    target = job.target
    if target.is_macos:
        if not host.is_macos:
            raise UnsupportedError(
                f"{job.label}: cibuildwheel builds macOS wheels only on a macOS host "
                f"(this is {host.name})",
                hint="run this build on a macOS runner (kiln matrix picks macos-13 for "
                     "macos-x86_64 and macos-14 for macos-arm64)")
        notes = []
        if target != host:
            notes.append(f"cross-compiled on {host.name}; cibuildwheel cannot test "
                         f"{target.name} wheels here")
        return notes
    if not target.is_linux:
        raise UnsupportedError(f"{job.label}: kiln does not build {target.name} with cibuildwheel")
    debian = job.recipe.system_packages("debian")
    if debian:
        # The manylinux images are AlmaLinux/CentOS: Debian package names mean nothing there.
        raise UnsupportedError(
            f"{job.label}: the recipe needs Debian packages ({', '.join(debian)}), and "
            "cibuildwheel builds in manylinux containers, which kiln does not install them into",
            hint="build with --backend native or zig, where kiln checks them on the host")
    if target.arch != host.arch and host.is_linux and not _emulation_ready(target.arch):
        raise UnsupportedError(
            f"{job.label}: building {target.name} on {host.name} needs QEMU registered with "
            f"binfmt_misc for {target.arch}, and it is not",
            hint="install qemu-user-static (Debian/Ubuntu register it for containers), build "
                 "on a native runner, or use --backend zig")
    return [f"emulated {target.arch} container"] if target.arch != host.arch else []


def _isolation(job: BuildJob, config: CibuildwheelConfig) -> Isolation:
    """What the record says about where this build ran: cibuildwheel's, not kiln's sandbox."""
    root = config.project_root
    maps = ((f"{root}/{source_dir(job.surroundings)}", f"{CANONICAL_ROOT}/src"),)
    if config.image is not None:
        engine = find_container_engine()
        return Isolation(
            tool=(f"cibuildwheel container ({engine.name} {engine.version}, "
                  f"{config.image.reference})"),
            # before-build installs the lock from the index: the container is online.
            network="on (cibuildwheel containers keep the network; the lock is installed "
                    "with --require-hashes)",
            prefix_maps=maps, fixed_paths=True)
    return Isolation(tool="none (cibuildwheel on the macOS host)",
                     network="on (no sandbox on macOS)", prefix_maps=maps, fixed_paths=False)


class CibuildwheelBackend:
    name = "cibuildwheel"
    # cibuildwheel starts its own containers: these never reach the build inside them.
    unsupported_variations: tuple[tuple[str, str], ...] = tuple(
        (v, "cibuildwheel's container does not take it from kiln")
        for v in ("umask", "time", "hostname", "num_cpus", "home"))

    def toolchain(self, job: BuildJob) -> Toolchain:
        tools = [Tool(name="cibuildwheel", version=cibuildwheel_version())]
        if not job.target.is_linux:
            return Toolchain(tools=tuple(tools), notes=tuple(_check_host(job)))
        try:
            engine = find_container_engine()
        except UnsupportedError as exc:
            raise UnsupportedError(f"{job.label}: {exc.message}", hint=exc.hint) from exc
        notes = _check_host(job)
        image = manylinux_image(job.target.arch, job.recipe.glibc)
        tools.append(Tool(name=engine.name, version=engine.version, path=engine.path,
                          sha256=sha256_file(Path(engine.path).resolve())))
        # The image is the build's whole toolchain: its digest goes into the build id.
        tools.append(Tool(name=f"image {image.policy}", version=image.label,
                          path=image.reference, sha256=image.digest))
        notes.append(f"{engine.name} {engine.version}, image {image.reference}")
        return Toolchain(tools=tuple(tools), policy=image.platform_tag, notes=tuple(notes))

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        # A varied rebuild unpacks deeper: the build path is what kiln can vary here.
        unpack_to = ws.root / source_dir(job.surroundings)
        unpack_to.mkdir(parents=True, exist_ok=True)
        project = unpack_sdist(job.source, unpack_to)
        (ws.root / LOCK_NAME).write_text(job.lock.path.read_text(encoding="utf-8"),
                                         encoding="utf-8")
        engine = find_container_engine().name if job.target.is_linux else "docker"
        settings = effective_config_settings(read_build_system(project).backend,
                                             dict(job.recipe.config_settings))
        config = translate(
            job.recipe, job.interpreter.minor, job.target,
            source_date_epoch=job.source_date_epoch,
            project_root=CONTAINER_PROJECT if job.target.is_linux else str(ws.root),
            surroundings=job.surroundings, extra_env=job.extra_env, index=job.index,
            container_engine=engine, config_settings=settings,
        )
        env = {k: v for k, v in os.environ.items() if k in _PASS_THROUGH}
        env.update(config.env())
        # cibuildwheel forwards SOURCE_DATE_EPOCH into its containers by itself too.
        env["SOURCE_DATE_EPOCH"] = str(job.source_date_epoch)
        argv = [sys.executable, "-m", "cibuildwheel",
                *config.argv(package_dir=str(project.relative_to(ws.root)),
                             output_dir=str(ws.out))]
        proc.run(argv, what=f"{job.label}: cibuildwheel {config.identifier}", error=BuildError,
                 env=env, cwd=ws.root, log=log, timeout=job.recipe.timeout,
                 umask=job.surroundings.umask,
                 hint="the log holds cibuildwheel's output; --print-config shows what it was "
                      "given")
        wheels = tuple(sorted(ws.out.glob("*.whl")))
        if not wheels:
            raise BuildError(f"{job.label}: cibuildwheel finished but wrote no wheel", log=log)
        given = dict(config.build_environment)
        given.update(config.options)
        return RawBuild(wheels=wheels, repaired=True, environment=tuple(given.items()),
                        isolation=_isolation(job, config),
                        config_settings=tuple(settings.items()))


BACKEND = CibuildwheelBackend()

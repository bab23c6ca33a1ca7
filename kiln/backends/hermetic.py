"""The hermetic backend, kiln's default on Linux: only pinned inputs reach the build.

The compiler, linker and libc are the pinned zig (``kiln.toolchain.zig``), aiming at the
recipe's glibc (2.17, manylinux2014, by default) for x86_64 or aarch64 from any Linux host;
the target CPython is kiln's description (``kiln.toolchain.cpython``): headers pinned by
digest and kiln's own sysconfig, so how the host's interpreter was configured never reaches
a binary. cmake, ninja and meson come from the lock. With bubblewrap, the toolchain and the
CPython description appear at fixed paths under ``/kiln``, and the host's compilers, linkers,
build tools and headers are hidden: a build that reaches for one fails, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kiln.backends import BuildJob, RawBuild, Toolchain
from kiln.backends.pep517build import pep517_build
from kiln.buildenv import Workspace
from kiln.errors import BuildError, UnsupportedError
from kiln.pep517 import BuildSystem, requirement_name
from kiln.toolchain import cpython, hosttools, libraries
from kiln.toolchain.rust import (
    RUST_INSIDE,
    check_own_folder,
    check_target,
    find_rust,
    linker_variables,
    rust_triple,
)
from kiln.toolchain.sandbox import Bind, bwrap_path
from kiln.toolchain.targets import host_target
from kiln.toolchain.tool import Tool
from kiln.toolchain.zig import (
    COMPILE_FLAGS,
    ZigLayout,
    cache_entries,
    compile_identity,
    install_zig,
    write_wrappers,
    zig_cache_root,
    zig_triple,
)

# Where a cross build's libraries find the build machine's compiler wrappers.
BUILD_BIN_INSIDE = "/kiln/toolchain/build-bin"
# Build backends that cannot be pointed at another architecture from here, and why.
_CROSS_REFUSED = {
    "maturin": "maturin compiles Rust, and kiln builds Rust only for the machine it runs on",
}
_CROSS_REFUSED_REQUIRES = {
    "setuptools-rust": "setuptools-rust compiles Rust, and kiln builds Rust only for the machine "
                       "it runs on",
}
# What a build's log says when it tried to run a program compiled for the target.
_RAN_TARGET_BINARY = re.compile(
    r"Exec format error|cannot execute binary file|cannot run test program while cross "
    r"compiling|cannot run C compiled programs", re.IGNORECASE)
NO_BWRAP = ("bubblewrap cannot make namespaces on this host, so the host's compilers, tools and "
            "headers stayed visible to the build (its binaries use only the pinned toolchain's, "
            "by the same paths)")


@dataclass(frozen=True)
class RustParts:
    """What the Rust toolchain adds to a hermetic toolchain (an sdist with a Cargo.toml)."""

    tools: tuple[Tool, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    identity: tuple[tuple[str, str], ...] = ()
    tool_dirs: tuple[str, ...] = ()
    visible: tuple[Path, ...] = ()
    binds: tuple[Bind, ...] = ()
    maps: tuple[tuple[str, str], ...] = ()  # (seen, canonical) for rustc's remaps
    note: str = ""


def rust_parts(job: BuildJob, isolated: bool, seen_bin: str, canonical_bin: str) -> RustParts:
    """rustc and cargo at /kiln/rust (or where they are, remapped there), linking with zig."""
    if job.crates is None:
        return RustParts()
    rust = find_rust()
    triple = rust_triple(job.target)
    check_own_folder(rust)
    check_target(rust, triple)
    seen = RUST_INSIDE if isolated else str(rust.sysroot)
    env = (("RUSTC", f"{seen}/bin/rustc"), ("CARGO", f"{seen}/bin/cargo"),
           *linker_variables(triple, f"{seen_bin}/cc", f"{seen_bin}/c++", f"{seen_bin}/ar"))
    canonical = tuple((name, value.replace(seen, RUST_INSIDE).replace(seen_bin, canonical_bin))
                      for name, value in env)
    return RustParts(
        tools=rust.tools(triple),
        env=env,
        identity=(*rust.identity(triple), *canonical),
        tool_dirs=(f"{seen}/bin",),
        visible=() if isolated else (rust.sysroot,),
        binds=(Bind(rust.sysroot, RUST_INSIDE, writable=False),) if isolated else (),
        maps=((seen, RUST_INSIDE),),
        note=f"{rust.rustc_version} for {triple}, linking with zig's cc",
    )


class HermeticBackend:
    name = "hermetic"
    unsupported_variations: tuple[tuple[str, str], ...] = ()

    def toolchain(self, job: BuildJob) -> Toolchain:
        triple = zig_triple(job.target, job.recipe.glibc)
        host = host_target()
        cross = job.target != host
        interp = job.interpreter
        if interp.implementation != "cpython" or not interp.soabi.startswith(
                f"cpython-{interp.minor.replace('.', '')}-"):
            raise UnsupportedError(
                f"{job.label}: {interp.path} ({interp.soabi or interp.implementation}) is not "
                "a plain CPython build; kiln describes CPython without free-threading or debug "
                "builds", hint="pass a regular CPython with --python-path")
        description = cpython.prepare(interp.minor, job.target, job.cache,
                                      find_links=job.index.find_links)
        install = install_zig(job.cache, job.index)
        tools = job.cache / "tools"
        chain = zig_cache_root(tools) / job.surroundings.compile_chain
        chain.mkdir(parents=True, exist_ok=True)
        isolated = bwrap_path() is not None
        if isolated:
            layout = ZigLayout.fixed()
            bin_host = tools / "zig-wrappers" / f"{triple}-fixed"
            python_seen = cpython.CANONICAL
        else:
            bin_host = tools / "zig-wrappers" / f"{triple}-{job.surroundings.compile_chain}"
            layout = ZigLayout(str(install.root), str(chain), str(bin_host))
            python_seen = str(description.root)
        write_wrappers(bin_host, layout, install.version, triple, job.target, cross,
                       extra_maps=((python_seen, cpython.CANONICAL),) if not isolated else ())
        seen_bin = layout.bin
        env = [
            ("CC", f"{seen_bin}/cc"),
            ("CXX", f"{seen_bin}/c++"),
            ("LDSHARED", f"{seen_bin}/cc -shared"),
            ("LDCXXSHARED", f"{seen_bin}/c++ -shared"),
            ("AR", f"{seen_bin}/ar"),
            ("CMAKE_TOOLCHAIN_FILE", f"{seen_bin}/toolchain.cmake"),
            ("_PYTHON_SYSCONFIGDATA_NAME", description.sysconfig_name),
        ]
        if cross:
            env += [("_PYTHON_HOST_PLATFORM", f"linux-{job.target.arch}"),
                    ("SETUPTOOLS_EXT_SUFFIX", cpython.ext_suffix(interp.minor, job.target.arch))]
        zig_binds = (Bind(install.root, layout.install, writable=False),
                     Bind(chain, layout.cache, writable=True),
                     Bind(bin_host, layout.bin, writable=False))
        hidden = hosttools.hidden_from_hermetic_builds(interp) if isolated else ()
        entries_before = cache_entries(chain) if job.recipe.libraries else None
        libs = _libraries(job, triple, isolated, zig_binds, layout.bin, hidden, install.version)
        env += libs.env
        canonical_bin = ZigLayout.fixed().bin
        rust = rust_parts(job, isolated, seen_bin, canonical_bin)
        identity = (
            *compile_identity(triple),
            ("cpython", description.digest),
            *((name, value.replace(seen_bin, canonical_bin)) for name, value in env),
            *((f"library {lib.spec.name}", lib.key) for lib in libs.built),
            *rust.identity,
        )
        glibc = job.recipe.glibc
        pin = description.pin
        return Toolchain(
            tools=(Tool("ziglang", install.version, path=str(install.root),
                        sha256=install.wheel_sha256),
                   Tool("zig cc", " ".join(("-target", triple, *COMPILE_FLAGS))),
                   Tool("glibc", glibc),
                   Tool(f"cpython {interp.minor} headers",
                        f"{pin.version} ({pin.describe()}, .deb sha256 {pin.sha256})",
                        path=cpython.CANONICAL, sha256=description.headers_sha256),
                   Tool(f"cpython {interp.minor} sysconfig",
                        f"kiln's, {description.sysconfig_name}",
                        sha256=description.sysconfig_sha256),
                   *libs.tools, *rust.tools),
            env=(*env, *rust.env),
            tool_dirs=(seen_bin, *libs.tool_dirs, *rust.tool_dirs),
            visible=(install.root, description.root, bin_host, *rust.visible),
            writable=() if isolated else (chain,),
            binds=(*zig_binds, Bind(description.root, cpython.CANONICAL, writable=False),
                   *libs.binds, *rust.binds) if isolated else (),
            hidden=hidden,
            cross=cross,
            policy=f"manylinux_{glibc.replace('.', '_')}_{job.target.arch}",
            notes=(f"zig {install.version} -target {triple}"
                   + (f", cross-compiled from {host.name}" if cross else "")
                   + f"; CPython {interp.minor} headers from {pin.describe()}",
                   *((rust.note,) if rust.note else ())),
            hermetic=True,
            not_hermetic=() if isolated else (NO_BWRAP,),
            cpython=description,
            identity=identity,
            compile_cache=chain,
            libraries=libs.built,
            cache_entries_before=entries_before,
            rust_maps=rust.maps,
        )

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        description = toolchain.cpython
        assert description is not None
        prefix = cpython.CANONICAL if ws.sandbox.isolated else str(description.root)

        def check(build_system: BuildSystem) -> None:
            if toolchain.cross:
                refuse_cross_backend(build_system, job)

        def prepare(venv: Path) -> None:
            description.install_sysconfig(venv, prefix)

        try:
            return pep517_build(job, toolchain, ws, log, check_backend=check,
                                prepare_env=prepare)
        except BuildError as exc:
            if toolchain.cross and ran_target_binary(log):
                raise UnsupportedError(
                    f"{job.label}: the build tried to run a program compiled for "
                    f"{job.target.name}, which a cross build cannot do",
                    hint=f"build it on a {job.target.arch} machine: --backend cibuildwheel "
                         f"on an {job.target.arch} runner", log=log) from exc
            raise


@dataclass(frozen=True)
class _Libraries:
    built: tuple[libraries.BuiltLibrary, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    binds: tuple[Bind, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_dirs: tuple[str, ...] = ()


def _libraries(job: BuildJob, triple: str, isolated: bool, zig_binds: tuple[Bind, ...],
               bin_inside: str, hidden: tuple[Path, ...], zig_version: str) -> _Libraries:
    """The recipe's [library] tables, built (or taken from the cache) for this toolchain.
    A cross build also gets zig's wrappers for the build machine, at BUILD_BIN_INSIDE."""
    specs = tuple(spec.for_target(job.target.name) for spec in job.recipe.libraries)
    if not specs:
        return _Libraries()
    if not isolated:
        raise UnsupportedError(
            f"{job.label}: building the recipe's libraries "
            f"({', '.join(s.name for s in specs)}) needs bubblewrap, which cannot make "
            "namespaces on this host: kiln builds them only at fixed paths, sealed",
            hint="install bubblewrap (apt-get install bubblewrap), or build with "
                 "--backend host against the system's -dev packages")
    identity, binds, build_bin = compile_identity(triple), zig_binds, ""
    host = host_target()
    if job.target != host:
        host_triple = zig_triple(host, job.recipe.glibc)
        folder = job.cache / "tools" / "zig-wrappers" / f"{host_triple}-fixed"
        write_wrappers(folder, ZigLayout.fixed(), zig_version, host_triple, host, cross=False)
        build_bin = BUILD_BIN_INSIDE
        binds = (*zig_binds, Bind(folder, BUILD_BIN_INSIDE, writable=False))
        identity = (*identity, *((f"build machine {name}", value)
                                 for name, value in compile_identity(host_triple)))
    lt = libraries.LibraryToolchain(
        triple=triple, target=job.target, identity=identity,
        binds=binds, bin_inside=bin_inside, hidden=hidden,
        chain=job.surroundings.compile_chain, cache=job.cache, index=job.index, jobs=job.jobs,
        build_bin_inside=build_bin)
    built = libraries.prepare(specs, lt)
    tools = libraries.install_tools(specs, job.cache, job.index)
    wrappers = libraries.tool_wrappers(job.cache / "tools" / "kiln-tools-bin", tools)
    return _Libraries(
        built=built,
        env=tuple(libraries.wheel_environment(built, job.recipe.environment)),
        binds=libraries.wheel_binds(built, tools, wrappers),
        tools=tuple(libraries.recorded_tools(built, tools)),
        tool_dirs=(libraries.TOOL_BIN_INSIDE, *(f"{lib.inside}/bin" for lib in built)),
    )


def refuse_cross_backend(build_system: BuildSystem, job: BuildJob) -> None:
    """Raise UnsupportedError for a build backend kiln cannot cross-configure."""
    module = build_system.backend.split(":")[0].split(".")[0]
    why = _CROSS_REFUSED.get(module)
    if why is None:
        for requirement in build_system.requires:
            why = _CROSS_REFUSED_REQUIRES.get(requirement_name(requirement))
            if why:
                break
    if why:
        raise UnsupportedError(
            f"{job.label}: cannot cross-compile with {build_system.backend}: {why}",
            hint=f"build it on a {job.target.arch} machine: --backend cibuildwheel on an "
                 f"{job.target.arch} runner")


def ran_target_binary(log: Path) -> bool:
    try:
        with log.open(encoding="utf-8", errors="replace") as fh:
            return any(_RAN_TARGET_BINARY.search(line) for line in fh)
    except OSError:
        return False


BACKEND = HermeticBackend()

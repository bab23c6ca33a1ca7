"""Build backends: how a raw wheel gets made. One small protocol, one registry.

``hermetic`` (the default on Linux) builds with kiln's pinned toolchain and CPython
description for any Linux target, from any Linux host; ``host`` builds with the host's
compilers and libraries for the host; ``cibuildwheel`` hands the sdist to cibuildwheel's
containers and runners. The pipeline only ever sees ``Backend``; what a backend builds
with comes from ``kiln.toolchain``.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kiln.buildenv import Surroundings, Workspace
from kiln.crates.fetch import VendoredCrates
from kiln.errors import UsageError
from kiln.fetch import FetchedSource
from kiln.installer import IndexOptions
from kiln.lockfile import Lock
from kiln.recipe import BACKENDS, Recipe, canonical_backend
from kiln.toolchain.cpython import CPythonDescription
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.libraries import BuiltLibrary
from kiln.toolchain.sandbox import Bind
from kiln.toolchain.sysdeps import SystemPackage
from kiln.toolchain.targets import Target
from kiln.toolchain.tool import Tool


@dataclass(frozen=True)
class Toolchain:
    """What a backend builds with: recorded, digested into the build id, put on PATH."""

    tools: tuple[Tool, ...]
    env: tuple[tuple[str, str], ...] = ()  # CC, CXX … for the build step
    tool_dirs: tuple[str, ...] = ()  # prepended to the build's PATH
    visible: tuple[Path, ...] = ()  # host paths the sandbox must show
    writable: tuple[Path, ...] = ()  # host paths the build may write where they are
    binds: tuple[Bind, ...] = ()  # host folders the sandbox shows at fixed paths
    hidden: tuple[Path, ...] = ()  # host files and folders the build must not see
    cross: bool = False
    policy: str | None = None  # the auditwheel policy to aim for ("manylinux_2_17_aarch64")
    notes: tuple[str, ...] = ()
    # A hermetic toolchain: only pinned inputs reach the build. ``not_hermetic`` says what
    # kept a build with it from being hermetic on this host (no bubblewrap to hide the
    # host's tools) or, for the host backend, why it is not.
    hermetic: bool = False
    not_hermetic: tuple[str, ...] = ()
    cpython: CPythonDescription | None = None  # the target CPython as kiln fixes it
    # What names the toolchain in a build id when ``env`` holds this host's paths.
    identity: tuple[tuple[str, str], ...] | None = None
    compile_cache: Path | None = None  # the compiler cache this build fills (its own chain)
    libraries: tuple[BuiltLibrary, ...] = ()  # the recipe's [library] tables, built
    # Objects in ``compile_cache`` before the libraries were compiled into it (None: unknown).
    cache_entries_before: int | None = None
    # (seen, canonical) toolchain folders rustc must name canonically (--remap-path-prefix).
    rust_maps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BuildJob:
    """One recipe, for one Python and one target."""

    recipe: Recipe
    interpreter: Interpreter
    target: Target
    source: FetchedSource
    lock: Lock
    source_date_epoch: int
    index: IndexOptions
    surroundings: Surroundings
    cache: Path
    extra_env: tuple[tuple[str, str], ...] = field(default=())
    # The recipe's system-requires as installed on this host (recorded; in the build id).
    system_packages: tuple[SystemPackage, ...] = field(default=())
    test_lock: Lock | None = None  # [test] requires, pinned with hashes (NAME.test.lock)
    # How many compiles the build may run at once (kiln build -j): not an input, the same
    # wheel comes out for any count, so it is not in the build id.
    jobs: int = 1
    # The crates the sdist's Cargo.lock files pin, fetched and checked; None: no Rust in it.
    crates: VendoredCrates | None = None

    @property
    def label(self) -> str:
        return f"{self.recipe.label} ({self.interpreter.tag}, {self.target.name})"


@dataclass(frozen=True)
class Isolation:
    """How a backend that isolates its builds itself (cibuildwheel's containers) did it."""

    tool: str  # "docker 28.2.2, quay.io/pypa/manylinux2014_x86_64@sha256:…"
    network: str
    prefix_maps: tuple[tuple[str, str], ...]
    fixed_paths: bool


@dataclass(frozen=True)
class RawBuild:
    wheels: tuple[Path, ...]
    repaired: bool = False  # the backend already repaired them (cibuildwheel)
    environment: tuple[tuple[str, str], ...] = ()  # what the backend step was given
    isolation: Isolation | None = None  # None: kiln's own sandbox, as the workspace says
    # The config settings as given to the backend, when not the recipe's (a value may be a
    # list: meson-python's setup-args with kiln's cross file)
    config_settings: tuple[tuple[str, str | list[str]], ...] | None = None
    # What the build saw from inside its sandbox (kiln.observe); empty when the backend
    # runs the build elsewhere (cibuildwheel's containers).
    observed: tuple[tuple[str, str], ...] = ()


class Backend(Protocol):
    name: str
    # Rebuild variations this backend cannot carry into its build, with why (see
    # kiln.buildenv.varied); a reproducibility report must not claim them.
    unsupported_variations: tuple[tuple[str, str], ...]

    def toolchain(self, job: BuildJob) -> Toolchain:
        """Check this host can build ``job`` and say with what; raise UnsupportedError if not."""
        ...

    def build(self, job: BuildJob, toolchain: Toolchain, ws: Workspace, log: Path) -> RawBuild:
        """Build the raw wheel(s) of ``job`` in ``ws``; raise BuildError with the log on failure."""
        ...


_MODULES = {"hermetic": "kiln.backends.hermetic", "host": "kiln.backends.host",
            "cibuildwheel": "kiln.backends.cibuildwheel"}


@functools.cache
def get_backend(name: str) -> Backend:
    name = canonical_backend(name)
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'", hint=f"backends: {', '.join(BACKENDS)}")
    module = importlib.import_module(_MODULES[name])
    backend: Backend = module.BACKEND
    return backend

"""The pinned surroundings of a build: its folders, its sandbox, its variables.

``CANONICAL`` is how every build runs. ``varied()`` is the second build of a
reproducibility check: the same inputs, with everything around them changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from kiln.recipe import VARIATIONS, Recipe
from kiln.toolchain.sandbox import CANONICAL_ROOT, Bind, Sandbox, bwrap_path
from kiln.toolchain.zig import map_edits


@dataclass(frozen=True)
class Surroundings:
    """Everything about a build's circumstances that must not change its result."""

    root_inside: str = CANONICAL_ROOT
    umask: int = 0o022
    faketime: str | None = None
    timezone: str = "UTC"
    locale: str = "C.UTF-8"
    hostname: str = "kiln"
    reverse_env: bool = False
    cpus: tuple[int, ...] | None = None
    home: str = "home"
    hash_seed: str = "0"
    # The compiler cache a build fills: the rebuild keeps its own, so that its compiles
    # are real compiles and not hits on what the first build compiled.
    compile_chain: str = "build"
    decoy_tools: bool = False  # other tools on PATH, ahead of the host's
    applied: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (variation, why)


CANONICAL = Surroundings()


def varied(skip: tuple[str, ...] = (), *, cpu_count: int | None = None,
           unsupported: tuple[tuple[str, str], ...] = ()) -> Surroundings:
    """The surroundings of a rebuild: each variation applied unless skipped or impossible here.

    ``unsupported`` names variations the backend cannot carry into its build, with why.
    """
    chosen = replace(CANONICAL, compile_chain="rebuild")
    applied: list[str] = []
    skipped: list[tuple[str, str]] = [(v, "the recipe opts out") for v in skip]
    skipped += [(v, why) for v, why in unsupported if v not in skip]
    cpus = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    for variation in VARIATIONS:
        if variation in skip or variation in dict(unsupported):
            continue
        why_not = ""
        if variation == "interpreter":
            # Chosen by the pipeline, which knows the machine's interpreters; it moves this
            # to skipped when there is no second build of the same CPython.
            pass
        elif variation == "tools":
            chosen = replace(chosen, decoy_tools=True)
        elif variation == "build_path":
            chosen = replace(chosen, root_inside="/kiln-rebuild/a/deeper/path")
        elif variation == "umask":
            chosen = replace(chosen, umask=0o002)
        elif variation == "time":
            if shutil.which("faketime"):
                chosen = replace(chosen, faketime="+397d")
            else:
                why_not = "faketime is not installed"
        elif variation == "timezone":
            chosen = replace(chosen, timezone="Etc/GMT-14")
        elif variation == "locale":
            chosen = replace(chosen, locale="POSIX")
        elif variation == "hostname":
            if bwrap_path() is not None:
                chosen = replace(chosen, hostname="rebuilder")
            else:
                why_not = "needs bubblewrap"
        elif variation == "environment_order":
            chosen = replace(chosen, reverse_env=True)
        elif variation == "num_cpus":
            if cpus > 1 and shutil.which("taskset"):
                chosen = replace(chosen, cpus=(0,))
            else:
                why_not = "needs taskset and more than one CPU"
        elif variation == "home":
            chosen = replace(chosen, home="home-rebuild")
        elif variation == "hash_seed":
            chosen = replace(chosen, hash_seed="12345")
        if why_not:
            skipped.append((variation, why_not))
        else:
            applied.append(variation)
    return replace(chosen, applied=tuple(applied), skipped=tuple(skipped))


@dataclass(frozen=True)
class Workspace:
    """A build's own folders on the host, and the sandbox that shows them at fixed paths."""

    root: Path
    surroundings: Surroundings = field(default=CANONICAL)
    visible: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()  # host paths the build may write where they are
    fixed: tuple[Bind, ...] = ()  # host folders shown at fixed paths (the toolchain's)
    hidden: tuple[Path, ...] = ()  # host paths the build must not see
    rust: bool = False  # a ``cargo`` folder for the vendored crates and CARGO_HOME

    @classmethod
    def create(cls, base: Path, surroundings: Surroundings = CANONICAL,
               visible: tuple[Path, ...] = (), writable: tuple[Path, ...] = (),
               fixed: tuple[Bind, ...] = (), hidden: tuple[Path, ...] = (),
               rust: bool = False) -> Workspace:
        base.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="build-", dir=base))
        for sub in ("src", "out", "tmp", surroundings.home, *(("cargo",) if rust else ())):
            (root / sub).mkdir()
        ws = cls(root=root, surroundings=surroundings, visible=visible, writable=writable,
                 fixed=fixed, hidden=hidden, rust=rust)
        ws.stub.write_text(HIDDEN_TOOL)
        ws.stub.chmod(0o755)
        if surroundings.decoy_tools:
            write_decoys(ws.decoys)
        return ws

    @property
    def stub(self) -> Path:
        return self.root / "hidden-tool"

    @property
    def decoys(self) -> Path:
        return self.root / "decoys"

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def env(self) -> Path:
        return self.root / "env"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def home(self) -> Path:
        return self.root / self.surroundings.home

    @property
    def cargo(self) -> Path:
        """The vendored crates and the build's CARGO_HOME (kiln.crates.vendor)."""
        return self.root / "cargo"

    @property
    def sandbox(self) -> Sandbox:
        inside = self.surroundings.root_inside
        binds = (
            Bind(self.src, f"{inside}/src"),
            Bind(self.env, f"{inside}/env", writable=True),
            Bind(self.out, f"{inside}/out"),
            Bind(self.home, f"{inside}/{self.surroundings.home}"),
            *((Bind(self.cargo, f"{inside}/cargo"),) if self.rust else ()),
            *((Bind(self.decoys, f"{inside}/decoys", writable=False),)
              if self.surroundings.decoy_tools else ()),
            *self.fixed,
        )
        return Sandbox(binds=binds, tmp=self.root / "tmp", hostname=self.surroundings.hostname,
                       visible=self.visible, writable=self.writable, hidden=self.hidden,
                       stub=self.stub)

    def inside(self, host: Path) -> str:
        return self.sandbox.inside(host)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def prefix_maps(ws: Workspace) -> list[tuple[str, str]]:
    """(seen path, canonical path) for each folder whose name could reach a binary."""
    return [
        (ws.inside(ws.src), f"{CANONICAL_ROOT}/src"),
        (ws.inside(ws.env), f"{CANONICAL_ROOT}/env"),
        # The vendored crates' sources, named in a Rust binary's panic messages and debug info.
        *(((ws.inside(ws.cargo), f"{CANONICAL_ROOT}/cargo"),) if ws.rust else ()),
    ]


def prefix_map_flags(ws: Workspace) -> list[str]:
    """What every C and C++ compile gets (through kiln's compiler wrappers)."""
    return [f"-ffile-prefix-map={seen}={canon}" for seen, canon in prefix_maps(ws)]


def build_variables(
    recipe: Recipe,
    ws: Workspace,
    *,
    source_date_epoch: int,
    extra: Mapping[str, str] | None = None,
    tool_dirs: tuple[str, ...] = (),
) -> dict[str, str]:
    """The complete environment of a build step: nothing from the caller leaks in."""
    s = ws.surroundings
    maps = prefix_maps(ws)
    env: dict[str, str] = dict(recipe.environment)
    env.update(extra or {})
    decoys = [ws.inside(ws.decoys)] if s.decoy_tools else []
    path_dirs = [f"{ws.inside(ws.env)}/bin", *tool_dirs, *decoys, "/usr/local/bin", "/usr/bin",
                 "/bin"]
    env.update(
        PATH=":".join(dict.fromkeys(path_dirs)),
        HOME=ws.inside(ws.home),
        TMPDIR="/tmp" if ws.sandbox.isolated else str(ws.root / "tmp"),
        SOURCE_DATE_EPOCH=str(source_date_epoch),
        LC_ALL=s.locale,
        LANG=s.locale,
        TZ=s.timezone,
        PYTHONHASHSEED=s.hash_seed,
        PYTHONNOUSERSITE="1",
        PIP_NO_INDEX="1",  # a backend that tries to install something fails fast
    )
    remaps = " ".join(f"--remap-path-prefix={seen_}={canon}" for seen_, canon in maps)
    env["RUSTFLAGS"] = f"{env['RUSTFLAGS']} {remaps}".strip() if "RUSTFLAGS" in env else remaps
    # The hermetic toolchain's wrappers hand these to clang (CCC_OVERRIDE_OPTIONS), so the
    # maps hold for compiles that do not go through CC: CMake naming the compiler itself,
    # a build calling `cc` from PATH. clang splits the edits at spaces.
    env[PREFIX_EDITS] = " ".join(map_edits(maps, rewrite=True))
    if s.reverse_env:
        env = dict(reversed(list(env.items())))
    return env


PREFIX_EDITS = "KILN_PREFIX_EDITS"


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, not the machine's): the job limit
    a build gets unless told otherwise."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def with_jobs(env: Mapping[str, str], jobs: int, ws: Workspace) -> dict[str, str]:
    """``env`` and, where it does not set them itself, the variables that let each build
    system run ``jobs`` compiles at once: a recipe needs no lines of its own to use the
    machine's cores, and its own values (``[build] environment``, ``--env``) win.

    setuptools (64 and later) reads the extra config file that ``DIST_EXTRA_CONFIG`` names
    and builds extensions side by side with ``[build_ext] parallel``; the file goes in the
    workspace's temporary folder. None of these is an input: how many compiles run at once
    does not change a wheel's bytes, so they stay out of the build id and of the recorded
    environment (which is ``env``). meson-python's ninja takes every core by itself.
    """
    config = ws.root / "tmp" / "kiln-parallel.cfg"
    config.write_text(f"[build_ext]\nparallel = {jobs}\n")
    count = str(jobs)
    defaults = {
        "DIST_EXTRA_CONFIG": ws.inside(config),
        "MAKEFLAGS": f"-j{count}",
        "CMAKE_BUILD_PARALLEL_LEVEL": count,
        "CARGO_BUILD_JOBS": count,
        "NPY_NUM_BUILD_JOBS": count,  # numpy.distutils
        "GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS": count,  # grpcio's own parallel compile
    }
    return {**defaults, **env}


# What a hidden host tool says when a hermetic build runs it anyway.
HIDDEN_TOOL = """#!/bin/sh
echo "kiln: $0 is the host's, and a hermetic build runs only pinned tools (kiln's zig, the \
locked cmake, ninja and meson): see the toolchain in the build record" >&2
exit 127
"""
# The --check-repro rebuild's "tools" variation: other programs of these names, ahead of the
# host's on PATH. A build that runs only its pinned toolchain never calls them.
DECOY_NAMES = ("cc", "gcc", "c++", "g++", "cpp", "clang", "clang++", "ld", "as", "ar", "ranlib",
               "strip", "cmake", "ninja", "meson", "pkg-config", "python3-config")
DECOY_TOOL = """#!/bin/sh
echo "kiln rebuild: $0 is a decoy of the 'tools' variation; the build ran a tool from PATH \
that is not part of its pinned toolchain" >&2
exit 126
"""


def write_decoys(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in DECOY_NAMES:
        path = folder / name
        path.write_text(DECOY_TOOL)
        path.chmod(0o755)


def sandbox_available() -> bool:
    return bwrap_path() is not None

"""kiln build -j: every build system gets the job limit, the recipe's own values win, and
the count is not an input (not in the build id, the cache key or the recorded environment)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import pytest

from kiln.backends import BuildJob, Toolchain
from kiln.build import build_id
from kiln.buildenv import CANONICAL, Workspace, build_variables, with_jobs
from kiln.cache import BuildCache
from kiln.fetch import FetchedSource
from kiln.installer import IndexOptions
from kiln.lockfile import Lock
from kiln.recipe import parse_recipe
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.targets import TARGETS
from kiln.toolchain.tool import Tool

SHA = "a" * 64
RECIPE = f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{SHA}"
[build]
environment = {{ GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS = "1" }}
"""
JOB_VARIABLES = {"DIST_EXTRA_CONFIG", "MAKEFLAGS", "CMAKE_BUILD_PARALLEL_LEVEL",
                 "CARGO_BUILD_JOBS", "NPY_NUM_BUILD_JOBS", "GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS"}


@pytest.fixture(autouse=True)
def _tools(with_bwrap):
    pass


def test_every_build_system_gets_the_count_and_the_build_own_values_win(tmp_path):
    recipe = parse_recipe(RECIPE, Path("recipes/demo.toml"))
    ws = Workspace.create(tmp_path, CANONICAL)
    recorded = build_variables(recipe, ws, source_date_epoch=1700000000,
                               extra={"CARGO_BUILD_JOBS": "3"})  # as from --env
    env = with_jobs(recorded, 4, ws)
    assert env["MAKEFLAGS"] == "-j4"
    assert env["CMAKE_BUILD_PARALLEL_LEVEL"] == env["NPY_NUM_BUILD_JOBS"] == "4"
    assert env["GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS"] == "1"  # the recipe's
    assert env["CARGO_BUILD_JOBS"] == "3"  # --env's
    # setuptools reads the file DIST_EXTRA_CONFIG names, as the build sees it.
    config = ws.root / "tmp" / "kiln-parallel.cfg"
    assert env["DIST_EXTRA_CONFIG"] == ws.inside(config)
    assert config.read_text() == "[build_ext]\nparallel = 4\n"
    # The recorded environment is the build's own: no job defaults in it.
    assert not (JOB_VARIABLES - {"GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS", "CARGO_BUILD_JOBS"}) \
        & set(recorded)
    assert {k: v for k, v in env.items() if k in recorded} == recorded


def _job(jobs: int) -> BuildJob:
    interp = Interpreter(path=Path("/usr/bin/python3.11"), version="3.11.7",
                         implementation="cpython", soabi="cpython-311-x86_64-linux-gnu",
                         ext_suffix=".so", platform="linux-x86_64", zlib="1.2.13", sha256=SHA,
                         cc="gcc", cxx="g++")
    lock = Lock(path=Path("recipes/demo.lock"), sha256=SHA, sdist_sha256=SHA, pythons=("3.11",),
                declared=(), pins=(), resolver="uv")
    return BuildJob(recipe=parse_recipe(RECIPE, Path("recipes/demo.toml")), interpreter=interp,
                    target=TARGETS["linux-x86_64"],
                    source=FetchedSource("https://e.org/x.tar.gz", Path("x.tar.gz"), SHA, 1),
                    lock=lock, source_date_epoch=1700000000, index=IndexOptions(),
                    surroundings=CANONICAL, cache=Path("/tmp"), jobs=jobs)


@pytest.mark.parametrize("identity", [None, (("zig", SHA),)], ids=["host", "hermetic"])
def test_the_count_is_not_in_the_build_id_or_the_cache_key(identity, monkeypatch):
    import kiln.build

    monkeypatch.setattr(kiln.build, "bwrap_version", lambda: "bubblewrap 0.8.0")
    backend = dataclasses.make_dataclass("B", [("name", str)])("hermetic")
    toolchain = Toolchain(tools=(Tool("cc", "gcc 12"),), identity=identity)
    one, eight = _job(1), _job(8)
    assert build_id(one, backend, toolchain) == build_id(eight, backend, toolchain)
    tests = [["python -c 'import demo'"]]
    assert BuildCache.key(build_id(one, backend, toolchain), tests=tests) == \
        BuildCache.key(build_id(replace(one, jobs=2), backend, toolchain), tests=tests)

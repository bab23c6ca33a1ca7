"""The build's environment: cleared, fixed, literal, with prefix maps; the rebuild varies it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.buildenv import CANONICAL, Workspace, build_variables, prefix_map_flags, varied
from kiln.recipe import VARIATIONS, parse_recipe

RECIPE = """
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{digest}"
[build]
environment = {{ CFLAGS = "-O1", JOBS = "$(nproc)", WEIRD = "a b;c|d" }}
""".format(digest="0" * 64)


@pytest.fixture(autouse=True)
def _tools(with_bwrap):
    pass


@pytest.fixture
def recipe():
    return parse_recipe(RECIPE, Path("recipes/demo.toml"))


def test_environment_is_cleared_and_fixed(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak-me")
    ws = Workspace.create(tmp_path, CANONICAL)
    env = build_variables(recipe, ws, source_date_epoch=1700000000)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["LC_ALL"] == "C.UTF-8" and env["TZ"] == "UTC" and env["PYTHONHASHSEED"] == "0"
    assert env["JOBS"] == "$(nproc)" and env["WEIRD"] == "a b;c|d"  # literal, never expanded
    # The recipe's CFLAGS pass untouched (prefix maps go through the compiler wrappers).
    assert env["CFLAGS"] == "-O1"
    assert "--remap-path-prefix=" in env["RUSTFLAGS"]
    assert env["PATH"].split(":")[0].endswith("/env/bin")


def test_sandbox_paths_are_fixed_when_bubblewrap_is_used(recipe, tmp_path):
    ws = Workspace.create(tmp_path, CANONICAL)
    assert ws.inside(ws.src) == "/kiln/src"
    assert ws.inside(ws.src / "pkg-1.0") == "/kiln/src/pkg-1.0"
    assert build_variables(recipe, ws, source_date_epoch=1)["HOME"] == "/kiln/home"
    rebuilt = Workspace.create(tmp_path, varied(cpu_count=2))
    assert rebuilt.inside(rebuilt.src) != "/kiln/src"
    # Whatever path the rebuild sees is mapped back to the canonical one.
    assert f"-ffile-prefix-map={rebuilt.inside(rebuilt.src)}=/kiln/src" in prefix_map_flags(
        rebuilt)


def test_varied_surroundings_change_everything_but_the_inputs(recipe, tmp_path):
    v = varied(cpu_count=2)
    assert v.root_inside != CANONICAL.root_inside
    assert v.umask != CANONICAL.umask
    assert v.timezone != "UTC" and v.locale != "C.UTF-8" and v.hash_seed != "0"
    assert set(v.applied) | {name for name, _ in v.skipped} == set(VARIATIONS)
    ws = Workspace.create(tmp_path, v)
    env = build_variables(recipe, ws, source_date_epoch=1700000000)
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"  # an input, so never varied
    assert list(env) == list(reversed(list(build_variables(
        recipe, Workspace.create(tmp_path, v.__class__(**{**v.__dict__, "reverse_env": False})),
        source_date_epoch=1700000000))))


def test_recipe_can_skip_variations():
    v = varied(("build_path", "hash_seed"), cpu_count=2)
    assert "build_path" not in v.applied and "hash_seed" not in v.applied
    assert dict(v.skipped)["build_path"] == "the recipe opts out"
    assert v.root_inside == CANONICAL.root_inside and v.hash_seed == "0"


def test_single_cpu_machines_cannot_vary_the_cpu_count():
    v = varied(cpu_count=1)
    assert "num_cpus" not in v.applied
    assert "more than one CPU" in dict(v.skipped)["num_cpus"]


def test_a_backend_that_cannot_vary_something_is_not_credited_with_it():
    from kiln.backends.cibuildwheel import BACKEND

    v = varied(("home",), cpu_count=2, unsupported=BACKEND.unsupported_variations)
    assert not {"umask", "time", "hostname", "num_cpus", "home"} & set(v.applied)
    assert dict(v.skipped)["home"] == "the recipe opts out"
    assert "container" in dict(v.skipped)["umask"]
    assert v.umask == 0o022 and v.faketime is None
    assert {"build_path", "timezone", "locale", "hash_seed"} <= set(v.applied)


def test_the_rebuild_has_other_tools_on_path_and_its_own_compiler_cache(recipe, tmp_path):
    v = varied(cpu_count=2)
    assert v.decoy_tools and "tools" in v.applied
    assert v.compile_chain != CANONICAL.compile_chain
    assert "interpreter" in v.applied  # the pipeline picks the other CPython, or skips it
    ws = Workspace.create(tmp_path, v)
    path = build_variables(recipe, ws, source_date_epoch=1, tool_dirs=("/kiln/toolchain/bin",))[
        "PATH"].split(":")
    decoys = ws.inside(ws.decoys)
    # after the pinned toolchain, before the host's own programs
    assert path.index("/kiln/toolchain/bin") < path.index(decoys) < path.index("/usr/bin")
    gcc = ws.decoys / "gcc"
    assert gcc.is_file() and "decoy" in gcc.read_text() and gcc.stat().st_mode & 0o111
    first = Workspace.create(tmp_path, CANONICAL)
    assert not first.decoys.exists()
    assert first.stub.read_text().startswith("#!/bin/sh")

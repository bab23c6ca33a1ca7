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


def _clang_edit(edit: str, arg: str) -> str:
    """What clang does with one ``s/pattern/replacement/`` edit of CCC_OVERRIDE_OPTIONS:
    the pattern ends at the first ``/``, the replacement is the rest but the last ``/``."""
    import re

    pattern, _, rest = edit[2:].partition("/")
    return re.sub(pattern, rest[:-1], arg, count=1)


def test_a_builds_own_prefix_map_into_the_build_folder_is_rewritten(recipe, tmp_path):
    # A backend that copies the sources away and maps the copy back to the folder kiln
    # built in (propcache's) would keep that folder; the edits point the map at /kiln/src.
    rebuilt = Workspace.create(tmp_path, varied(cpu_count=2))
    seen = rebuilt.inside(rebuilt.src)
    edits = build_variables(recipe, rebuilt, source_date_epoch=1)["KILN_PREFIX_EDITS"].split(" ")
    rewrites = [e for e in edits if e.startswith("s/")]
    assert rewrites and all("/" not in e[2:].partition("/")[0] for e in rewrites)
    for flag in ("-ffile-prefix-map", "-fdebug-prefix-map", "-fmacro-prefix-map"):
        arg = f"{flag}=/tmp/tmpx1y2={seen}/propcache-0.5"
        done = arg
        for edit in rewrites:
            done = _clang_edit(edit, done)
        assert done == f"{flag}=/tmp/tmpx1y2=/kiln/src/propcache-0.5", (edits, done)
    # Other flags and maps into other folders are left alone; kiln's own maps are added.
    for other in (f"-I{seen}/include", "-ffile-prefix-map=/tmp/a=/elsewhere"):
        assert all(_clang_edit(e, other) == other for e in rewrites)
    assert f"+-ffile-prefix-map={seen}=/kiln/src" in edits
    # The canonical workspace needs no rewrite: what it sees is already /kiln/src.
    canonical = Workspace.create(tmp_path / "c", CANONICAL)
    assert not [e for e in build_variables(recipe, canonical, source_date_epoch=1)
                ["KILN_PREFIX_EDITS"].split(" ") if e.startswith("s/")]


def test_prefix_edits_leave_out_folders_clang_could_not_parse():
    from kiln.toolchain.zig import map_edits

    edits = map_edits([("/b/my src", "/kiln/src"), ("/b/x[1]", "/kiln/env"),
                       ("/b/a.b+c", "/kiln/src")], rewrite=True)
    assert all(" " not in e for e in edits)
    assert not any("my src" in e for e in edits)
    # A folder a pattern cannot carry is not rewritten, but still mapped.
    assert [e for e in edits if e.startswith("s/")] == [edits[0]]  # a.b+c's only
    assert "[[]" not in edits[0]
    assert "+-ffile-prefix-map=/b/x[1]=/kiln/env" in edits
    # Characters a regular expression reads specially stand for themselves.
    assert _clang_edit(edits[0], "-ffile-prefix-map=/t=/b/a.b+c/p") == \
        "-ffile-prefix-map=/t=/kiln/src/p"
    assert _clang_edit(edits[0], "-ffile-prefix-map=/t=/b/aXb+c/p") == \
        "-ffile-prefix-map=/t=/b/aXb+c/p"

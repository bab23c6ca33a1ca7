"""`kiln matrix`: what GitHub Actions accepts as strategy.matrix, split at 256 jobs."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from kiln.errors import KilnError, NothingToDoError, RecipeError, UsageError
from kiln.matrix import (
    RUNNERS,
    build_matrix,
    check_github_matrix,
    parse_runner_overrides,
    rebuild_matrix,
)

SHA = "a" * 64
ALL_TARGETS = ["linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64"]


def write_recipe(folder: Path, name: str, *, version: str = "1.0", pythons=("3.11",),
                 targets=("linux-x86_64",), backend: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    backend_line = f'backend = "{backend}"\n' if backend else ""
    path.write_text(textwrap.dedent(f"""\
        [package]
        name = "{name}"
        version = "{version}"

        [source]
        url = "https://example.org/{name}-{version}.tar.gz"
        sha256 = "{SHA}"

        [build]
        python = {json.dumps(list(pythons))}
        targets = {json.dumps(list(targets))}
        """) + backend_line)
    return path


def github_accepts(matrix: object) -> None:
    """GitHub's rules for strategy.matrix, written out independently of kiln's own check."""
    assert isinstance(matrix, dict) and list(matrix) == ["include"]
    include = matrix["include"]
    assert isinstance(include, list) and 1 <= len(include) <= 256
    for entry in include:
        assert isinstance(entry, dict) and entry
        for key, value in entry.items():
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key), key
            # Flat: a string, number or boolean; never a list or an object.
            assert isinstance(value, (str, int, float, bool)), (key, value)
    # Every job can be told apart (artifact names come from the id).
    assert len({e["id"] for e in include}) == len(include)
    # It survives GitHub's round trip through a job output (JSON text).
    assert json.loads(json.dumps(matrix, separators=(",", ":"))) == matrix


def test_one_entry_per_recipe_python_and_target_with_runner_and_backend(tmp_path):
    recipe = write_recipe(tmp_path, "demo", pythons=("3.10", "3.11"), targets=ALL_TARGETS)
    matrix = build_matrix([recipe]).single()
    github_accepts(matrix)
    jobs = {(e["python"], e["target"]): e for e in matrix["include"]}
    assert len(jobs) == 8
    assert jobs[("3.10", "linux-x86_64")]["runner"] == "ubuntu-latest"
    assert jobs[("3.10", "linux-aarch64")]["runner"] == "ubuntu-24.04-arm"
    assert jobs[("3.11", "macos-x86_64")]["runner"] == "macos-13"
    assert jobs[("3.11", "macos-arm64")]["runner"] == "macos-14"
    assert {e["backend"] for e in matrix["include"] if e["target"].startswith("linux")} == \
        {"hermetic"}
    assert {e["backend"] for e in matrix["include"] if e["target"].startswith("macos")} == \
        {"host"}
    entry = jobs[("3.11", "linux-aarch64")]
    assert entry == {"id": "demo-1.0-cp311-linux-aarch64", "recipe": recipe.as_posix(),
                     "name": "demo", "version": "1.0", "python": "3.11",
                     "target": "linux-aarch64", "runner": "ubuntu-24.04-arm",
                     "backend": "hermetic"}
    # Python versions stay strings: GitHub must not read 3.10 as the number 3.1.
    assert all(isinstance(e["python"], str) for e in matrix["include"])


def test_aarch64_cross_runs_on_x86_64_runners(tmp_path):
    recipe = write_recipe(tmp_path, "demo", targets=ALL_TARGETS)
    for mode in ("cross", "zig"):  # zig: the mode's earlier name
        jobs = {e["target"]: e for e in build_matrix([recipe], aarch64=mode).single()["include"]}
        assert (jobs["linux-aarch64"]["runner"], jobs["linux-aarch64"]["backend"]) == (
            "ubuntu-latest", "hermetic")
        assert jobs["linux-x86_64"]["backend"] == "hermetic"
        assert jobs["macos-arm64"]["backend"] == "host"


def test_a_host_recipe_stays_on_the_arm_runner_when_others_cross(tmp_path):
    recipe = write_recipe(tmp_path, "demo", targets=ALL_TARGETS, backend="host")
    jobs = {e["target"]: e for e in build_matrix([recipe], aarch64="cross").single()["include"]}
    assert (jobs["linux-aarch64"]["runner"], jobs["linux-aarch64"]["backend"]) == (
        "ubuntu-24.04-arm", "host")


def test_a_zig_recipe_is_hermetic_and_builds_macos_with_the_host(tmp_path):
    recipe = write_recipe(tmp_path, "demo", targets=ALL_TARGETS, backend="zig")
    jobs = {e["target"]: e for e in build_matrix([recipe]).single()["include"]}
    assert jobs["linux-aarch64"]["runner"] == "ubuntu-24.04-arm"
    assert jobs["linux-aarch64"]["backend"] == "hermetic"
    assert jobs["linux-x86_64"]["backend"] == "hermetic"
    assert (jobs["macos-arm64"]["runner"], jobs["macos-arm64"]["backend"]) == ("macos-14",
                                                                              "host")


def test_a_cibuildwheel_recipe_keeps_cibuildwheel_everywhere(tmp_path):
    recipe = write_recipe(tmp_path, "demo", targets=ALL_TARGETS, backend="cibuildwheel")
    entries = build_matrix([recipe]).single()["include"]
    assert {e["backend"] for e in entries} == {"cibuildwheel"}
    assert {e["target"]: e["runner"] for e in entries} == dict(RUNNERS)


def test_runner_overrides_and_alternates(tmp_path):
    recipe = write_recipe(tmp_path, "demo", targets=["linux-aarch64", "linux-ppc64le"])
    with pytest.raises(UsageError, match="no GitHub-hosted runner builds linux-ppc64le"):
        build_matrix([recipe])
    overrides = parse_runner_overrides(["linux-ppc64le=power9-box"])
    jobs = {e["target"]: e for e in build_matrix([recipe], runners=overrides).single()["include"]}
    assert jobs["linux-ppc64le"]["runner"] == "power9-box"
    alternate = {e["target"]: e["runner"] for e in
                 build_matrix([recipe], runners=overrides, alternate=True).single()["include"]}
    assert alternate["linux-aarch64"] == "ubuntu-22.04-arm"
    for bad in ("linux-ppc64le", "nowhere=box", "linux-x86_64=has space"):
        with pytest.raises(UsageError, match="TARGET=LABEL"):
            parse_runner_overrides([bad])


def test_order_is_stable_whatever_order_the_recipes_come_in(tmp_path):
    a = write_recipe(tmp_path, "alpha", pythons=("3.12", "3.9", "3.10"),
                     targets=["macos-arm64", "linux-x86_64"])
    b = write_recipe(tmp_path, "beta")
    first = build_matrix([b, a]).single()
    second = build_matrix([a, b]).single()
    assert json.dumps(first) == json.dumps(second)
    ids = [e["id"] for e in first["include"]]
    assert ids[:3] == ["alpha-1.0-cp39-linux-x86_64", "alpha-1.0-cp39-macos-arm64",
                       "alpha-1.0-cp310-linux-x86_64"]
    assert ids[-1] == "beta-1.0-cp311-linux-x86_64"


def test_more_than_256_jobs_are_split_into_matrices_github_accepts(tmp_path):
    pythons = ("3.9", "3.10", "3.11", "3.12", "3.13")
    recipes = [write_recipe(tmp_path, f"pkg{i:02d}", pythons=pythons, targets=ALL_TARGETS)
               for i in range(15)]  # 15 × 5 × 4 = 300 jobs
    matrix = build_matrix(recipes)
    assert len(matrix.entries) == 300
    chunks = matrix.chunks()
    assert [len(c["include"]) for c in chunks] == [256, 44]
    for chunk in chunks:
        github_accepts(chunk)
    # Together the chunks are the whole matrix, each job once, in order.
    assert [e for c in chunks for e in c["include"]] == list(matrix.entries)
    with pytest.raises(UsageError, match="300 jobs, more than 256"):
        matrix.single()
    smaller = build_matrix(recipes, max_jobs=100).chunks()
    assert [len(c["include"]) for c in smaller] == [100, 100, 100]
    for bad in (0, 257):
        with pytest.raises(UsageError, match="--max-jobs"):
            build_matrix(recipes, max_jobs=bad)


def test_filters_and_nothing_selected(tmp_path):
    recipe = write_recipe(tmp_path, "demo", pythons=("3.10", "3.11"), targets=ALL_TARGETS)
    entries = build_matrix([recipe], pythons=["3.11"], targets=["macos-arm64"]).entries
    assert [(e["python"], e["target"]) for e in entries] == [("3.11", "macos-arm64")]
    with pytest.raises(NothingToDoError):
        build_matrix([recipe], pythons=["3.13"])
    with pytest.raises(UsageError, match="--target windows"):
        build_matrix([recipe], targets=["windows"])
    with pytest.raises(UsageError, match="--aarch64"):
        build_matrix([recipe], aarch64="emulated")


def test_two_recipes_for_one_wheel_are_refused(tmp_path):
    a = write_recipe(tmp_path / "a", "demo")
    b = write_recipe(tmp_path / "b", "demo")
    with pytest.raises(UsageError, match="two recipes build the same wheel"):
        build_matrix([a, b])


def test_a_bad_recipe_names_its_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[package]\nname = 'x'\n")
    with pytest.raises(RecipeError, match=r"bad\.toml"):
        build_matrix([bad])


def test_kilns_own_check_refuses_what_github_refuses():
    ok = {"include": [{"id": "a", "python": "3.11", "n": 1, "flag": True}]}
    check_github_matrix(ok)
    bad_matrices = [
        {"include": []},
        {"include": [{"id": "a"}], "python": ["3.11"]},
        {"include": [{"id": "a", "nested": {"x": 1}}]},
        {"include": [{"id": "a", "list": ["x"]}]},
        {"include": [{"id": "a", "bad key": "x"}]},
        {"include": [{"id": "a"}, {"id": "a"}]},
        {"include": [{"id": str(i)} for i in range(257)]},
    ]
    for matrix in bad_matrices:
        with pytest.raises(KilnError):
            check_github_matrix(matrix)


def test_rebuilds_use_other_runners_and_name_the_wheel(tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path, "demo", pythons=("3.11",), targets=ALL_TARGETS)
    wheels = [
        "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "demo-1.0-cp311-cp311-macosx_11_0_arm64.whl",
        "demo-0.9-cp311-cp311-manylinux_2_17_x86_64.whl",  # no recipe for 0.9
        "other-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",  # no recipe at all
    ]
    selection = rebuild_matrix([recipe], wheels)
    assert selection.matrix is not None
    chunk = selection.matrix.chunks()[0]
    github_accepts(chunk)
    jobs = {e["target"]: e for e in chunk["include"]}
    assert jobs["linux-aarch64"]["runner"] == "ubuntu-22.04-arm"
    assert jobs["linux-aarch64"]["wheel"] == wheels[0]
    assert jobs["macos-arm64"]["runner"] == "macos-15"
    assert [w for w, _ in selection.skipped] == sorted(wheels[2:])

    class File:
        def __init__(self, filename: str) -> None:
            self.filename = filename
            self.url = f"https://mirror.example/files/{filename}"

    class Page:
        files = (File(wheels[0]),)

    import kiln.pypi
    monkeypatch.setattr(kiln.pypi, "project_page", lambda name, index_url=None: Page())
    with_urls = rebuild_matrix([recipe], wheels[:2], index_url="https://mirror.example/simple")
    assert with_urls.matrix is not None
    assert [e["wheel_url"] for e in with_urls.matrix.entries] == [
        f"https://mirror.example/files/{wheels[0]}"]
    assert with_urls.skipped == ((wheels[1], "not on https://mirror.example/simple"),)
    assert rebuild_matrix([recipe], []).matrix is None

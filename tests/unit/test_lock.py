"""Locks: parsed strictly, refused when they do not fit the recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import LockError, RecipeError
from kiln.lock import _merge
from kiln.lockfile import check_lock, parse_lock
from kiln.recipe import parse_recipe

LOCK = """# kiln lock v1: build requirements of demo 1.0
# sdist-sha256: {digest}
# pythons: 3.10 3.11
# requires: setuptools>=61 | wheel ; python_version == "3.10"
setuptools==80.9.0 \\
    --hash=sha256:{h1}
wheel==0.45.1 ; python_full_version < '3.11' \\
    --hash=sha256:{h2} \\
    --hash=sha256:{h3}
    # via -r -
""".format(digest="a" * 64, h1="1" * 64, h2="2" * 64, h3="3" * 64)


def recipe(digest: str = "a" * 64, pythons: str = '"3.10", "3.11"'):
    return parse_recipe(f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{digest}"
[build]
python = [{pythons}]
""", Path("recipes/demo.toml"))


def test_parse_lock():
    lock = parse_lock(LOCK, Path("recipes/demo.lock"))
    assert [(p.name, p.version) for p in lock.pins] == [("setuptools", "80.9.0"),
                                                         ("wheel", "0.45.1")]
    assert lock.pins[1].hashes == ("2" * 64, "3" * 64)
    assert lock.pins[1].marker == "python_full_version < '3.11'"
    assert [p.name for p in lock.pins_for("3.10")] == ["setuptools", "wheel"]
    assert [p.name for p in lock.pins_for("3.11")] == ["setuptools"]
    assert lock.declared == ("setuptools>=61", 'wheel ; python_version == "3.10"')


def test_lock_without_hashes_is_refused():
    text = LOCK.replace("    --hash=sha256:" + "1" * 64, "").replace("80.9.0 \\", "80.9.0")
    with pytest.raises(RecipeError) as info:
        parse_lock(text, Path("recipes/demo.lock"))
    assert "no sha256 hash" in info.value.message


def test_unpinned_requirement_is_refused():
    with pytest.raises(RecipeError) as info:
        parse_lock(LOCK + "requests>=2\n", Path("recipes/demo.lock"))
    assert "not a pinned requirement" in info.value.message


def test_not_a_kiln_lock():
    with pytest.raises(RecipeError):
        parse_lock("setuptools==1 --hash=sha256:" + "1" * 64, Path("x.lock"))


def test_stale_lock_for_another_sdist():
    lock = parse_lock(LOCK, Path("recipes/demo.lock"))
    with pytest.raises(LockError) as info:
        check_lock(recipe(digest="b" * 64), lock, ("3.11",))
    assert "kiln lock recipes/demo.toml" in (info.value.hint or "")


def test_lock_missing_a_python():
    lock = parse_lock(LOCK, Path("recipes/demo.lock"))
    check_lock(recipe(), lock, ("3.10", "3.11"))
    with pytest.raises(LockError) as info:
        check_lock(recipe(), lock, ("3.12",))
    assert "not for 3.12" in info.value.message


def test_merge_marks_what_only_some_pythons_need():
    merged = _merge(("setuptools>=61",), {"3.10": ["wheel", "cython"], "3.11": ["cython"]})
    assert merged == ["setuptools>=61", "cython", 'wheel ; python_version == "3.10"']


def test_the_recipes_own_build_requirements_must_be_in_the_lock():
    extra = parse_recipe(f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{"a" * 64}"
[build]
python = ["3.10", "3.11"]
requires = ["cmake>=3.20"]
""", Path("recipes/demo.toml"))
    assert extra.build_requires == ("cmake>=3.20",)
    lock = parse_lock(LOCK, Path("recipes/demo.lock"))
    with pytest.raises(LockError) as info:
        check_lock(extra, lock, ("3.11",))
    assert "cmake>=3.20" in info.value.message
    assert "kiln lock recipes/demo.toml" in (info.value.hint or "")
    locked = parse_lock(LOCK.replace("# requires: setuptools>=61 |",
                                     "# requires: setuptools>=61 | cmake>=3.20 |"),
                        Path("recipes/demo.lock"))
    check_lock(extra, locked, ("3.11",))


def test_a_build_requirement_that_is_not_one_is_refused():
    with pytest.raises(RecipeError) as info:
        parse_recipe(f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{"a" * 64}"
[build]
requires = ["cmake >>> 3"]
""", Path("recipes/demo.toml"))
    assert "[build] requires[0]" in info.value.message

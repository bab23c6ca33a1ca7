"""Every recipe kiln ships passes `kiln recipe check`, is locked, and tests more than an import."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiln.cli import app
from kiln.lockfile import read_lock
from kiln.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))


def test_the_catalogue_has_the_seed_packages_and_ten_more():
    names = {p.stem for p in RECIPES}
    assert {"grpcio", "grpcio-tools", "lxml"} <= names
    assert len(names - {"grpcio", "grpcio-tools", "lxml", "markupsafe", "attrs"}) >= 10


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_passes_kiln_recipe_check(path):
    result = CliRunner().invoke(app, ["recipe", "check", "--json", str(path)])
    assert result.exit_code == 0, result.output
    assert '"status": "ok"' in result.output


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_locked_and_its_tests_exercise_the_package(path):
    recipe = load_recipe(path)
    lock = read_lock(recipe)
    assert lock is not None, f"{path}: run `kiln lock {path}`"
    assert set(recipe.pythons) <= set(lock.pythons)
    assert recipe.project == path.stem  # one file per project, named after it
    code = " ".join(argv[-1] for argv in recipe.test.commands)
    assert "assert" in code, f"{path}: the tests only import the package"


def test_recipe_check_takes_the_recipes_folder():
    result = CliRunner().invoke(app, ["recipe", "check", "--json", str(ROOT / "recipes")])
    assert result.exit_code == 0, result.output
    assert result.output.count('"status": "ok"') == len(RECIPES)

"""A package's own test suite, run against the built wheel: counted, and never the source.

The sdist carries ``tests/`` (pytest or unittest); the recipe copies them out of the sdist
(``[test] files``) into the folder the tests run in, which holds no source package, so
``import cext_demo`` finds the installed wheel. Offline: pytest comes from the fixture wheels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

PYTEST_SUITE = {
    "tests/conftest.py": "import pytest\n",
    "tests/test_speedups.py": """
        import pytest
        import cext_demo


        def test_add():
            assert cext_demo.add(2, 3) == 5


        def test_the_installed_wheel_not_the_source():
            assert "site-packages" in cext_demo.__file__, cext_demo.__file__


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        class TestMore:
            def test_negative(self):
                assert cext_demo.add(-2, 1) == {result}
    """,
}

UNITTEST_SUITE = {
    "tests/__init__.py": "",
    "tests/test_speedups.py": """
        import unittest
        import cext_demo


        class Speedups(unittest.TestCase):
            def test_add(self):
                self.assertEqual(cext_demo.add(2, 3), {result})

            def test_installed(self):
                self.assertIn("site-packages", cext_demo.__file__)

            @unittest.skip("not today")
            def test_skipped(self):
                pass
    """,
}


def _recipe(tmp_path: Path, suite: dict[str, str], result: int, commands: str,
            requires: str = "") -> Path:
    files = {**cext_files(), **{k: v.replace("{result}", str(result)) for k, v in suite.items()}}
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
    path = tmp_path / "recipes" / "cext-demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, extra=f"""
        [test]
        requires = [{requires}]
        files = ["tests"]
        commands = [{commands}]
    """))
    return path


def _build(run_kiln, recipe: Path, out: Path):
    return run_kiln("build", recipe, "-o", out, "--backend", "host", "--json")


@pytest.mark.parametrize("runner", ["pytest", "unittest"])
def test_the_projects_own_suite_runs_against_the_wheel_and_is_counted(run_kiln, tmp_path,
                                                                     runner):
    if runner == "pytest":
        recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    else:
        recipe = _recipe(tmp_path, UNITTEST_SUITE, 5,
                         '"python -m unittest discover -s tests -t ."')
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 0, result.stderr
    [built] = json.loads(result.stdout)
    test = built["record"]["test"]
    expected = {"collected": 4, "passed": 3, "failed": 0, "skipped": 1} if runner == "pytest" \
        else {"collected": 3, "passed": 2, "failed": 0, "skipped": 1}
    assert {k: test["counts"][k] for k in expected} == expected, test
    assert test["passed"] is True
    table = run_kiln("build", recipe, "-o", tmp_path / "wh", "--backend", "host")
    assert f"passed ({expected['passed']}, 1 skipped)" in table.stdout, table.stdout
    # the signed provenance carries the counts too
    record = tmp_path / "wh" / (Path(built["wheel"]).name + ".build.json")
    assert json.loads(record.read_text())["test"]["counts"]["collected"] == expected["collected"]


@pytest.mark.parametrize("runner", ["pytest", "unittest"])
def test_a_failing_suite_names_its_first_failing_test(run_kiln, tmp_path, runner):
    if runner == "pytest":
        recipe = _recipe(tmp_path, PYTEST_SUITE, 7, '"python -m pytest tests"', '"pytest"')
        first = "tests/test_speedups.py::TestMore::test_negative"
    else:
        recipe = _recipe(tmp_path, UNITTEST_SUITE, 6,
                         '"python -m unittest discover -s tests -t ."')
        first = "test_add (tests.test_speedups.Speedups"
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 12, result.stderr
    [built] = json.loads(result.stdout)
    message = built["error"]["message"]
    assert "1 of " in message and first in message, message


def test_test_files_must_be_paths_inside_the_sdist(run_kiln, tmp_path):
    recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    recipe.write_text(recipe.read_text().replace('files = ["tests"]', 'files = ["../etc"]'))
    checked = run_kiln("recipe", "check", recipe, "--json")
    assert checked.returncode == 2
    assert "[test] files[0]: '../etc' is not a path" in json.loads(checked.stdout)[0]["detail"]
    recipe.write_text(recipe.read_text().replace('files = ["../etc"]', 'files = ["nope"]'))
    missing = _build(run_kiln, recipe, tmp_path / "wh")
    assert missing.returncode == 12 and "nope is not in" in missing.stdout

"""Wheels that serve more than the Python that built them are built once.

An abi3 wheel (``cp38-abi3``) installs on every later CPython of its platform; building
it again with each Python in the recipe gives a file of the same name and, since the
headers differ, possibly other bytes. kiln builds it with the oldest Python and runs the
recipe's tests on it with each newer one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow

ABI3_SETUP = """
    from setuptools import Extension, setup
    setup(
        name="abi3-demo",
        version="1.0",
        packages=["abi3_demo"],
        ext_modules=[Extension("abi3_demo._speedups", ["src/speedups.c"], py_limited_api=True,
                               define_macros=[("Py_LIMITED_API", "0x03080000")])],
        options={"bdist_wheel": {"py_limited_api": "cp38"}},
    )
"""


def _abi3_recipe(tmp_path: Path, test: str) -> Path:
    files = cext_files(name="abi3-demo", module="abi3_demo")
    files["setup.py"] = ABI3_SETUP
    sdist = make_sdist(tmp_path / "sdists", "abi3-demo", "1.0", files)
    text = recipe_text(sdist, tests=(test,)).replace('python = ["3.11"]',
                                                     'python = ["3.12", "3.10"]')
    path = tmp_path / "recipes" / "abi3-demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_an_abi3_wheel_is_built_once_and_tested_on_each_python(run_kiln, tmp_path):
    recipe = _abi3_recipe(tmp_path, "python -c 'import abi3_demo; assert abi3_demo.add(2, 3) == 5'")
    wheelhouse = tmp_path / "wh"
    out = run_kiln("build", recipe, "-o", wheelhouse, "--json", check=True)
    results = json.loads(out.stdout)
    assert [(r["python"], r["status"]) for r in results] == [("3.10", "built"),
                                                             ("3.12", "reused")]
    built, reused = results
    assert "-cp38-abi3-manylinux" in built["wheel"]
    assert reused["wheel"] == built["wheel"]
    assert reused["covered_by"] == "3.10"
    assert reused["test"]["ran"] and reused["test"]["passed"]
    assert [p.name for p in wheelhouse.glob("*.whl")] == [Path(built["wheel"]).name]
    record = json.loads(Path(built["wheel"] + ".build.json").read_text())
    assert record["python"]["version"].startswith("3.10.")
    # The tests with 3.12 have a log of their own; the table says whose wheel it is.
    assert (wheelhouse / "logs" / "abi3-demo-1.0-cp312-linux-x86_64.log").is_file()
    table = run_kiln("build", recipe, "-o", wheelhouse, check=True)
    assert "reused (3.10)" in table.stdout
    status = json.loads(run_kiln("status", recipe, "-w", wheelhouse, "--json",
                                 check=True).stdout)
    cells = {c["python"]: c for c in status["cells"]}
    assert cells["3.12"]["result"] == "reused"
    assert cells["3.12"]["wheel"] == Path(built["wheel"]).name
    assert cells["3.12"]["tests"] == "passed"


def test_a_newer_python_that_fails_the_tests_fails_its_row(run_kiln, tmp_path):
    recipe = _abi3_recipe(tmp_path, "python -c 'import sys, abi3_demo; "
                                    "assert sys.version_info < (3, 12), sys.version'")
    result = run_kiln("build", recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 12, result.stderr
    rows = {r["python"]: r for r in json.loads(result.stdout)}
    assert rows["3.10"]["status"] == "built"
    assert rows["3.12"]["status"] == "failed"
    assert "test command" in rows["3.12"]["error"]["message"]
    log = Path(rows["3.12"]["error"]["log"])
    assert log.is_file() and log.parent == tmp_path / "wh" / "logs"
    assert "sys.version_info < (3, 12)" in log.read_text()

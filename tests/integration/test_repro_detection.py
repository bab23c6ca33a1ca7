"""Each source of non-determinism, planted in a fixture sdist, is caught and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow

PYPROJECT = """
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"
"""

GENERATING_SETUP = """
    import pathlib
    {prelude}
    pathlib.Path("{module}/_generated.py").write_text({expression})
    from setuptools import setup
    setup(name="{name}", version="1.0", packages=["{module}"])
"""


def pure_project(name: str, prelude: str, expression: str) -> dict[str, str]:
    module = name.replace("-", "_")
    return {
        "pyproject.toml": PYPROJECT,
        "setup.py": GENERATING_SETUP.format(prelude=prelude, expression=expression,
                                            module=module, name=name),
        f"{module}/__init__.py": "",
    }


CASES = {
    "timestamp": pure_project(
        "stamp-demo", "import datetime",
        'f"BUILD_TIME = \\"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}\\"\\n"'),
    "temp-name": pure_project(
        "tmpname-demo", "import tempfile",
        'f"SCRATCH = {tempfile.mkdtemp()!r}\\n"'),
    "hash-order": pure_project(
        "order-demo", "",
        '"NAMES = " + repr(" ".join({"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", '
        '"golf", "hotel", "india", "juliet", "kilo", "lima"})) + "\\n"'),
    "build-path": cext_files(
        "path-demo", "1.0", "path_demo",
        extra_c='const char *kiln_build_dir = BUILD_DIR;\n',
        setup_extra=""),
}


def _path_project() -> dict[str, str]:
    files = dict(CASES["build-path"])
    files["setup.py"] = files["setup.py"].replace(
        'ext_modules=[Extension("path_demo._speedups", ["src/speedups.c"])]',
        'ext_modules=[Extension("path_demo._speedups", ["src/speedups.c"], '
        'define_macros=[("BUILD_DIR", \'"%s"\' % __import__("os").getcwd())])]')
    assert "BUILD_DIR" in files["setup.py"]
    return files


CASES["build-path"] = _path_project()
EXPECTED_MEMBER = {
    "timestamp": "stamp_demo/_generated.py",
    "temp-name": "tmpname_demo/_generated.py",
    "hash-order": "order_demo/_generated.py",
    "build-path": "path_demo/_speedups.cpython-311-x86_64-linux-gnu.so",
}


@pytest.mark.parametrize("cause", sorted(CASES))
def test_planted_nondeterminism_is_detected(cause, run_kiln, tmp_path):
    files = CASES[cause]
    name = next(iter(k for k in files if k.endswith("__init__.py"))).split("/")[0]
    project = name.replace("_", "-")
    sdist = make_sdist(tmp_path / "sdists", project, "1.0", files)
    recipe = tmp_path / "recipes" / f"{project}.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(sdist))
    result = run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wh")
    assert result.returncode == 13, result.stdout + result.stderr
    assert "two builds gave different wheels" in result.stderr
    assert not list((tmp_path / "wh").glob("*.whl")), "a failed check must not deliver the wheel"
    reports = list((tmp_path / "wh").glob("*.repro.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["reproducible"] is False
    primary = [d for d in report["differences"] if d["cause"] != "consequence"]
    assert [d["member"] for d in primary] == [EXPECTED_MEMBER[cause]], primary
    assert primary[0]["cause"] == cause
    assert primary[0]["suggestion"]
    record_diffs = [d for d in report["differences"] if d["aspect"] == "record"]
    assert record_diffs and record_diffs[0]["cause"] == "consequence"
    if cause == "build-path":
        assert "/kiln" in primary[0]["detail"] and ".rodata" in primary[0]["detail"]
    # Both wheels are kept for inspection beside the report.
    kept = tmp_path / "wh" / "repro-failures"
    assert len(list(kept.rglob("build-*.whl"))) == 2


def test_known_unreproducible_recipe_passes_with_the_report(run_kiln, tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "stamp-demo", "1.0", CASES["timestamp"])
    recipe = tmp_path / "recipes" / "stamp-demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(sdist, extra='\n[repro]\nexpected = false\n'
                                                'reason = "writes its build time"\n'))
    result = run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]["record"]
    assert record["repro"]["reproducible"] is False
    assert record["repro"]["expected"] is False
    assert len(set(record["repro"]["digests"])) == 2


def test_skipping_the_variation_accepts_the_fixed_path(run_kiln, tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "path-demo", "1.0", CASES["build-path"])
    recipe = tmp_path / "recipes" / "path-demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(sdist, extra='\n[repro]\nskip-variations = ["build_path"]\n'))
    result = run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]["record"]
    assert record["repro"]["reproducible"] is True
    assert record["repro"]["skipped"] == {"build_path": "the recipe opts out"}


def test_diffoscope_report_when_asked(run_kiln, tmp_path):
    import shutil

    if shutil.which("diffoscope") is None:
        pytest.fail("diffoscope is not installed: `bash .ci/setup` installs diffoscope-minimal")
    sdist = make_sdist(tmp_path / "sdists", "order-demo", "1.0", CASES["hash-order"])
    recipe = tmp_path / "recipes" / "order-demo.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(sdist))
    result = run_kiln("build", "--check-repro", "--diffoscope", recipe, "-o", tmp_path / "wh")
    assert result.returncode == 13
    (html,) = (tmp_path / "wh").glob("*.diffoscope.html")
    assert "NAMES" in html.read_text()
    report = json.loads(next((tmp_path / "wh").glob("*.repro.json")).read_text())
    assert report["diffoscope"] == html.name


def test_repro_against_a_wheel_built_elsewhere(run_kiln, cext_recipe, tmp_path):
    first = run_kiln("build", cext_recipe, "-o", tmp_path / "elsewhere", "--json", check=True)
    theirs = Path(json.loads(first.stdout)[0]["wheel"])
    same = run_kiln("repro", cext_recipe, "--against", theirs, "-o", tmp_path / "ours",
                    "--no-cache", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["reproducible"] is True
    # A wheel built with other inputs (here: another CFLAGS) is not what the recipe makes.
    other = tmp_path / "other.toml"
    other.write_text(cext_recipe.read_text() + '\n[build.environment]\nCFLAGS = "-O0"\n'
                     if "[build]" not in cext_recipe.read_text() else
                     cext_recipe.read_text().replace("[build]", '[build]\nenvironment = '
                                                     '{ CFLAGS = "-O0" }'))
    (tmp_path / "other.lock").write_text(cext_recipe.with_suffix(".lock").read_text())
    built = run_kiln("build", other, "-o", tmp_path / "o0", "--json", check=True)
    different = Path(json.loads(built.stdout)[0]["wheel"])
    result = run_kiln("repro", cext_recipe, "--against", different, "-o", tmp_path / "ours2")
    assert result.returncode == 13, result.stderr
    assert "differs" in result.stderr
    report = json.loads(next((tmp_path / "ours2").glob("*.against.repro.json")).read_text())
    assert report["reproducible"] is False
    assert any(d["member"].endswith(".so") for d in report["differences"])

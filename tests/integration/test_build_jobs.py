"""kiln build -j N on a project with several extensions: setuptools builds them side by
side, and the wheel, its build id and its cache entry are the same for any N."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_sdist, recipe_text

pytestmark = pytest.mark.slow

SETUP_PY = """
    import os

    from setuptools import Extension, setup
    from setuptools.command.build_ext import build_ext


    class Announced(build_ext):
        def run(self):
            # What the build was given, for the test to read in the log.
            print(f"jobs: parallel={self.parallel!r} MAKEFLAGS={os.environ.get('MAKEFLAGS')}",
                  flush=True)
            super().run()


    setup(
        name="many-ext",
        version="1.0",
        packages=["many_ext"],
        ext_modules=[Extension(f"many_ext._{n}", [f"src/{n}.c"]) for n in ("one", "two", "three")],
        cmdclass={"build_ext": Announced},
    )
"""
MODULE_C = """
    #include <Python.h>
    static PyObject *value(PyObject *self, PyObject *args) {{ return PyLong_FromLong({n}); }}
    static PyMethodDef methods[] = {{{{"value", value, METH_NOARGS, NULL}}, {{NULL}}}};
    static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_{name}", NULL, -1, methods}};
    PyMODINIT_FUNC PyInit__{name}(void) {{ return PyModule_Create(&module); }}
"""


def test_the_wheel_and_its_build_are_the_same_with_one_job_or_two(run_kiln, tmp_path):
    files = {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
        """,
        "setup.py": SETUP_PY,
        "many_ext/__init__.py": "",
        **{f"src/{name}.c": MODULE_C.format(name=name, n=n)
           for n, name in enumerate(("one", "two", "three"), start=1)},
    }
    sdist = make_sdist(tmp_path / "sdists", "many-ext", "1.0", files)
    recipe = tmp_path / "recipes" / "many-ext.toml"
    recipe.parent.mkdir()
    recipe.write_text(recipe_text(sdist, tests=(
        "python -c 'from many_ext import _one, _two, _three; "
        "assert _one.value() + _two.value() + _three.value() == 6'",)))

    builds = {}
    for jobs in (1, 2):
        out = tmp_path / f"wh-j{jobs}"
        result = run_kiln("build", recipe, "-o", out, "-j", str(jobs), "--no-cache", "--json",
                          check=True)
        builds[jobs] = json.loads(result.stdout)[0]
        assert builds[jobs]["status"] == "built"
        log = next((out / "logs").glob("*.log")).read_text()
        assert f"jobs: parallel={jobs} MAKEFLAGS=-j{jobs}" in log
    one, two = builds[1]["record"], builds[2]["record"]
    assert one["outputs"] == two["outputs"]  # name, sha256 and size
    assert one["build_id"] == two["build_id"]
    assert one["environment"] == two["environment"]
    assert "MAKEFLAGS" not in one["environment"]
    assert (one["jobs"], two["jobs"]) == (1, 2)
    # Their cache entry is one: a build with another count is served from it.
    again = run_kiln("build", recipe, "-o", tmp_path / "wh-j3", "-j", "3", "--json", check=True)
    assert json.loads(again.stdout)[0]["status"] == "cached"


def test_a_recipes_pythons_build_side_by_side_within_the_job_limit(run_kiln, cext_recipe,
                                                                    tmp_path):
    from datetime import datetime

    text = cext_recipe.read_text().replace('python = ["3.11"]',
                                           'python = ["3.10", "3.11", "3.12"]')
    cext_recipe.write_text(text)
    side = run_kiln("build", cext_recipe, "-o", tmp_path / "side", "-j", "2", "--json",
                    check=True)
    # 3.10 alone (what it compiles is then cached for the others), then 3.11 and 3.12
    # together, one job each.
    assert "cext-demo 1.0: 2 builds, 2 side by side with 1 of the 2 jobs each" in side.stderr
    results = json.loads(side.stdout)
    assert [r["python"] for r in results] == ["3.10", "3.11", "3.12"]
    assert all(r["status"] == "built" and r["record"]["test"]["passed"] for r in results)
    assert [r["record"]["jobs"] for r in results] == [2, 1, 1]
    spans = {r["python"]: tuple(datetime.fromisoformat(r["record"][k].replace("Z", "+00:00"))
                                for k in ("started", "finished")) for r in results}
    # 3.11 and 3.12 overlapped; 3.10 had finished before either began.
    assert spans["3.11"][0] < spans["3.12"][1] and spans["3.12"][0] < spans["3.11"][1], spans
    assert spans["3.10"][1] <= min(spans["3.11"][0], spans["3.12"][0]), spans
    # The same wheels as one at a time (--fail-fast builds one at a time).
    alone = run_kiln("build", cext_recipe, "-o", tmp_path / "alone", "-j", "2", "--no-cache",
                     "--fail-fast", "--json", check=True)
    assert "side by side" not in alone.stderr
    assert [r["record"]["outputs"] for r in json.loads(alone.stdout)] == \
        [r["record"]["outputs"] for r in results]


def test_recipes_build_side_by_side_within_the_job_limit(run_kiln, cext_recipe, tmp_path):
    from datetime import datetime

    from tests.conftest import cext_files

    sdist = make_sdist(tmp_path / "sdists", "cext-two", "1.0",
                       cext_files(name="cext-two", module="cext_two"))
    second = cext_recipe.with_name("cext-two.toml")
    second.write_text(recipe_text(sdist, tests=(
        "python -c 'import cext_two; assert cext_two.add(2, 3) == 5'",)))
    result = run_kiln("build", cext_recipe, second, "-o", tmp_path / "wh", "-j", "2", "--json",
                      check=True)
    assert "2 recipes, 2 side by side with 1 of the 2 jobs each" in result.stderr
    results = json.loads(result.stdout)
    assert [r["label"].split(" ")[0] for r in results] == ["cext-demo", "cext-two"]
    assert all(r["status"] == "built" and r["record"]["test"]["passed"] for r in results)
    (a_start, a_end), (b_start, b_end) = [
        tuple(datetime.fromisoformat(r["record"][k].replace("Z", "+00:00"))
              for k in ("started", "finished")) for r in results]
    assert a_start < b_end and b_start < a_end  # they overlapped
    # Signing takes one recipe at a time.
    run_kiln("keygen", "-o", tmp_path / "keys" / "k", check=True)
    signed = run_kiln("build", cext_recipe, second, "-o", tmp_path / "wh2", "-j", "2",
                      "--sign-key", tmp_path / "keys" / "k.key", "--json", check=True)
    assert "side by side" not in signed.stderr
    wheels = list((tmp_path / "wh2").glob("*.whl"))
    assert len(wheels) == 2
    assert all(w.with_name(w.name + ".dsse.json").is_file() for w in wheels)

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

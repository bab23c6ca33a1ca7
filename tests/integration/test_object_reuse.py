"""Compile once per input: an object that never reads Python.h is compiled once per build
chain and reused for every CPython; an object that reads it is compiled for each.

zig's object cache keys a compile on its command line and the contents of the files it read.
kiln's sysconfig names every CPython's headers at /kiln/python/include/python, so the
command lines are the same for every X.Y (and so are the flags: 3.12's
``-fno-strict-overflow`` for all, where CPython's own 3.11 builds say ``-fwrapv``): only the
header contents tell them apart. 3.11 and 3.12 are built, across that former split. The builds
run offline with the CPython 3.11 and 3.12 headers `.ci/setup` fetched.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from kiln.toolchain.cpython import pin_for
from kiln.toolchain.zig import zig_cache_root
from tests.conftest import TEST_WHEELS, make_sdist, recipe_text

pytestmark = pytest.mark.slow

PYTHONS = ("3.11", "3.12")
# Three sources of plain C and one that includes Python.h, in one extension.
PLAIN = {
    "adler": "unsigned long kr_adler(const unsigned char *p, unsigned long n) {\n"
             "    unsigned long a = 1, b = 0;\n"
             "    while (n--) { a = (a + *p++) % 65521; b = (b + a) % 65521; }\n"
             "    return (b << 16) | a;\n}\n",
    "fib": "unsigned long kr_fib(unsigned n) {\n"
           "    unsigned long a = 0, b = 1;\n"
           "    while (n--) { unsigned long t = a + b; a = b; b = t; }\n"
           "    return a;\n}\n",
    "gcd": "unsigned long kr_gcd(unsigned long a, unsigned long b) {\n"
           "    while (b) { unsigned long t = a % b; a = b; b = t; }\n"
           "    return a;\n}\n",
}
MODULE_C = """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>

    unsigned long kr_adler(const unsigned char *p, unsigned long n);
    unsigned long kr_fib(unsigned n);
    unsigned long kr_gcd(unsigned long a, unsigned long b);

    static PyObject *adler(PyObject *self, PyObject *args) {
        const char *s; Py_ssize_t n;
        if (!PyArg_ParseTuple(args, "s#", &s, &n)) return NULL;
        return PyLong_FromUnsignedLong(kr_adler((const unsigned char *)s, (unsigned long)n));
    }
    static PyObject *fib(PyObject *self, PyObject *args) {
        unsigned n;
        if (!PyArg_ParseTuple(args, "I", &n)) return NULL;
        return PyLong_FromUnsignedLong(kr_fib(n));
    }
    static PyObject *gcd(PyObject *self, PyObject *args) {
        unsigned long a, b;
        if (!PyArg_ParseTuple(args, "kk", &a, &b)) return NULL;
        return PyLong_FromUnsignedLong(kr_gcd(a, b));
    }
    static PyObject *version(PyObject *self, PyObject *args) {
        return Py_BuildValue("(ii)", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    }
    static PyMethodDef methods[] = {
        {"adler", adler, METH_VARARGS, ""}, {"fib", fib, METH_VARARGS, ""},
        {"gcd", gcd, METH_VARARGS, ""}, {"version", version, METH_NOARGS, ""},
        {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_reuse", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__reuse(void) { return PyModule_Create(&module); }
"""
FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
    """,
    "setup.py": """
        from setuptools import Extension, setup
        setup(name="reuse-demo", version="1.0", packages=["reuse_demo"],
              ext_modules=[Extension("reuse_demo._reuse", ["src/module.c", "src/adler.c",
                                                           "src/fib.c", "src/gcd.c"])])
    """,
    "reuse_demo/__init__.py": "from ._reuse import adler, fib, gcd, version\n",
    "src/module.c": MODULE_C,
    **{f"src/{name}.c": text for name, text in PLAIN.items()},
}
# The test each wheel runs: the plain C and the module's own Python version, through Python.
TEST = ("python -c 'import sys, zlib, reuse_demo as r; data = bytes(range(1, 200)); "
        "assert r.adler(data) == zlib.adler32(data); assert r.fib(90) == "
        "2880067194370816120; assert r.gcd(84, 36) == 12; "
        "assert r.version() == sys.version_info[:2], r.version()'")


@pytest.fixture
def headers() -> None:
    missing = [m for m in PYTHONS if not (TEST_WHEELS / pin_for(m).filename).is_file()]
    if missing:
        pytest.fail(f"{TEST_WHEELS} has no pinned CPython {', '.join(missing)} headers: run "
                    "`bash .ci/setup`")


def _objects(chain: Path, name: str) -> dict[str, bytes]:
    """The objects zig's cache holds for the source ``name``.c, by their cache folder."""
    return {p.parent.name: p.read_bytes() for p in chain.glob(f"o/*/{name}.o")}


def test_objects_without_python_h_are_compiled_once_for_every_python(run_kiln, headers,
                                                                      tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "reuse-demo", "1.0", FILES)
    recipe = tmp_path / "reuse-demo.toml"
    recipe.write_text(recipe_text(sdist, tests=(TEST,)).replace(
        'python = ["3.11"]', 'python = ["3.11", "3.12"]'))
    cache = tmp_path / "cache"
    chain = zig_cache_root(cache / "tools") / "build"
    seen: list[dict[str, dict[str, bytes]]] = []
    records: list[tuple[dict, Path]] = []  # type: ignore[type-arg]
    for python in PYTHONS:
        result = run_kiln("build", recipe, "-o", tmp_path / "wh", "-p", python, "--json",
                          env={"KILN_CACHE_DIR": str(cache)})
        assert result.returncode == 0, result.stderr
        (built,) = json.loads(result.stdout)
        records.append((built["record"], Path(built["wheel"])))
        seen.append({name: _objects(chain, name) for name in ("module", *PLAIN)})
    first, second = seen
    for name in PLAIN:
        # Compiled for 3.11; for 3.12 the same compile, a hit: still the one object.
        assert len(first[name]) == 1, (name, list(first[name]))
        assert second[name] == first[name], f"{name}.c was compiled again for 3.12"
    # module.c read Python.h: compiled again for 3.12, into another object.
    assert len(first["module"]) == 1
    (new,) = set(second["module"]) - set(first["module"])
    (old,) = first["module"]
    assert second["module"][new] != second["module"][old]
    for (record, wheel), python in zip(records, PYTHONS, strict=True):
        assert record["python"]["version"].startswith(python + "."), record["python"]
        assert record["hermetic"] is True, record["not_hermetic"]
        # The test imports the extension and checks it was built for its own Python.
        assert record["test"]["passed"] is True, record["test"]
        # Its debug info names the header folder every Python shares.
        with zipfile.ZipFile(wheel) as zf:
            blob = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".so"))
        assert b"/kiln/python/include/python/" in blob
        assert b"/kiln/python/include/python3." not in blob
    # What the next build of the recipe measures its progress against: every C file's
    # compile, as its log shows them.
    last = json.loads((cache / "progress" / "reuse-demo-3.12-linux-x86_64.json").read_text())
    assert last["version"] == "1.0"
    assert last["compiles"] == len(PLAIN) + 1, last
    assert last["seconds"] > 0

"""Shared test fixtures: tiny sdists made on the spot, recipes for them, and kiln itself.

Offline tests build with the setuptools wheel that `.ci/setup` put in
`.cache/test-wheels` (`--no-index --find-links`), so they need no network.
Tests that need PyPI are marked `network`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_WHEELS = ROOT / ".cache" / "test-wheels"


@dataclass(frozen=True)
class Sdist:
    path: Path
    sha256: str
    name: str
    version: str

    @property
    def url(self) -> str:
        return self.path.as_uri()


def make_sdist(directory: Path, name: str, version: str, files: dict[str, str],
               mtime: int = 1700000000) -> Sdist:
    """An sdist tar.gz holding ``files`` under ``name-version/``, with fixed metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    path = directory / f"{top}.tar.gz"
    all_files = {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                 **files}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel, text in sorted(all_files.items()):
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return Sdist(path, hashlib.sha256(path.read_bytes()).hexdigest(), name, version)


@contextlib.contextmanager
def serve_loopback(answer: Callable[[str, str], tuple[bytes, str] | None]) -> Iterator[str]:
    """An HTTP server on loopback: ``answer(path, base)`` gives each GET's body and content
    type, or None for a 404. Yields its base address (``http://127.0.0.1:PORT``)."""
    state: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = answer(self.path, state["base"])
            if found is None:
                self.send_error(404)
                return
            body, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["base"] = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield state["base"]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_sdists(sdists: Sequence[Sdist]) -> Iterator[str]:
    """A PEP 691 index on loopback listing each sdist under its project name; yields its
    /simple address (no trailing slash)."""
    by_project = {s.name: s for s in sdists}
    by_file = {s.path.name: s for s in sdists}

    def answer(path: str, base: str) -> tuple[bytes, str] | None:
        name = path.strip("/").removeprefix("simple/")
        if name in by_project:
            s = by_project[name]
            return json.dumps({
                "meta": {"api-version": "1.0"}, "name": name, "versions": [s.version],
                "files": [{"filename": s.path.name, "url": f"{base}/files/{s.path.name}",
                           "hashes": {"sha256": s.sha256}, "requires-python": ">=3.8"}],
            }).encode(), "application/vnd.pypi.simple.v1+json"
        if path.startswith("/files/") and path[len("/files/"):] in by_file:
            return by_file[path[len("/files/"):]].path.read_bytes(), "application/gzip"
        return None

    with serve_loopback(answer) as base:
        yield f"{base}/simple"


SETUP_PY_CEXT = """
    from setuptools import Extension, setup
    setup(
        name="{name}",
        version="{version}",
        packages=["{module}"],
        ext_modules=[Extension("{module}._speedups", ["src/speedups.c"])],
    )
"""

SPEEDUPS_C = """
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>

    static PyObject *add(PyObject *self, PyObject *args) {
        long a, b;
        if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
        return PyLong_FromLong(a + b);
    }
    static PyObject *where(PyObject *self, PyObject *args) {
        return PyUnicode_FromString(__FILE__);
    }
    static PyMethodDef methods[] = {
        {"add", add, METH_VARARGS, "Add two integers."},
        {"where", where, METH_NOARGS, "The file this was compiled from."},
        {NULL, NULL, 0, NULL}
    };
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
"""


def cext_files(name: str = "cext-demo", version: str = "1.0", module: str = "cext_demo",
               extra_c: str = "", setup_extra: str = "") -> dict[str, str]:
    """The files of a small C-extension project built with setuptools."""
    return {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
        """,
        "setup.py": SETUP_PY_CEXT.format(name=name, version=version, module=module)
        + textwrap.dedent(setup_extra),
        f"{module}/__init__.py": "from ._speedups import add, where\n",
        "src/speedups.c": textwrap.dedent(SPEEDUPS_C) + textwrap.dedent(extra_c),
    }


def recipe_text(sdist: Sdist, *, python: str = "3.11", extra: str = "",
                tests: tuple[str, ...] = ()) -> str:
    commands = ", ".join(f'"{c}"' for c in tests)
    text = f"""
        [package]
        name = "{sdist.name}"
        version = "{sdist.version}"

        [source]
        url = "{sdist.url}"
        sha256 = "{sdist.sha256}"

        [build]
        python = ["{python}"]
    """
    text = textwrap.dedent(text)
    if tests:
        text += f"\n[test]\ncommands = [{commands}]\n"
    return text + textwrap.dedent(extra)


@pytest.fixture
def kiln_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running kiln offline against the fixture wheels, with its own cache."""
    env = dict(os.environ)
    env.update(
        KILN_CACHE_DIR=str(tmp_path / "kiln-cache"),
        KILN_NO_INDEX="1",
        KILN_FIND_LINKS=str(TEST_WHEELS),
        COLUMNS="200",
    )
    return env


@pytest.fixture(scope="session")
def test_wheels() -> Path:
    if not any(TEST_WHEELS.glob("setuptools-*.whl")):
        pytest.fail(f"{TEST_WHEELS} has no setuptools wheel: run `bash .ci/setup` first")
    return TEST_WHEELS


RunKiln = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_kiln(kiln_env: dict[str, str], tmp_path: Path, test_wheels: Path) -> RunKiln:
    """Run the real `kiln` CLI in a subprocess, in ``tmp_path``."""

    def run(*args: str | Path, check: bool = False, cwd: Path | None = None,
            env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "kiln", *map(str, args)],
            cwd=cwd or tmp_path, env={**kiln_env, **(env or {})}, capture_output=True,
            text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kiln {' '.join(map(str, args))} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def cext_recipe(tmp_path: Path) -> Path:
    """A recipe for a fresh C-extension sdist, with a test that calls the compiled code."""
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", cext_files())
    path = tmp_path / "recipes" / "cext-demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, tests=(
        "python -c 'import cext_demo; assert cext_demo.add(2, 3) == 5'",)))
    return path

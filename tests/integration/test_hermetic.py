"""Hermetic builds for real: the same wheel whichever CPython build of X.Y runs the build,
from whichever folder and cache; the host's compilers hidden; a rebuild that compiles.

Two CPython 3.11 builds are on the machines kiln is tested on: pyenv's (or setup-python's)
and Debian's ``/usr/bin/python3.11`` (`.ci/setup` installs it). The builds run offline: the
pinned zig and CPython 3.11 headers are among the files `.ci/setup` fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kiln.toolchain.zig import zig_cache_root
from tests.conftest import ROOT, TEST_WHEELS, cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow

ADD_TEST = "python -c 'import cext_demo; assert cext_demo.add(40, 2) == 42'"
CXX_FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
    """,
    "setup.py": """
        from setuptools import Extension, setup
        setup(name="cxx-demo", version="1.0", packages=["cxx_demo"],
              ext_modules=[Extension("cxx_demo._native", ["src/native.cpp"], language="c++")])
    """,
    "cxx_demo/__init__.py": "from ._native import joined_sum\n",
    "src/native.cpp": """
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>
        #include <numeric>
        #include <string>
        #include <vector>

        static PyObject *joined_sum(PyObject *self, PyObject *args) {
            long n;
            if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
            std::vector<long> v(n);
            std::iota(v.begin(), v.end(), 1);
            std::string s = std::to_string(std::accumulate(v.begin(), v.end(), 0L));
            return PyUnicode_FromString(s.c_str());
        }
        static PyMethodDef methods[] = {
            {"joined_sum", joined_sum, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
    """,
}
CXX_TEST = "python -c 'import cxx_demo; assert cxx_demo.joined_sum(100) == str(5050)'"
DEBIAN_PYTHON = Path("/usr/bin/python3.11")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _python_info(python: Path) -> tuple[str, str]:
    out = subprocess.run([python, "-c", "import sys, sysconfig; print(sys.version.split()[0]); "
                          "print(sysconfig.get_config_var('INCLUDEPY'))"],
                         capture_output=True, text=True, check=True)
    version, include = out.stdout.split()
    return version, include


@pytest.fixture(scope="module")
def two_pythons() -> tuple[Path, Path]:
    """Two different builds of CPython 3.11: the one kiln finds first, and Debian's."""
    if not any(TEST_WHEELS.glob("libpython3.11-dev_*.deb")):
        pytest.fail(f"{TEST_WHEELS} has no pinned CPython 3.11 headers: run `bash .ci/setup`")
    from kiln.toolchain.interpreters import find_interpreter

    first = find_interpreter("3.11").path
    if not DEBIAN_PYTHON.is_file():
        pytest.skip("Debian's python3.11 is not installed (.ci/setup installs it)")
    if _digest(Path(os.path.realpath(first))) == _digest(Path(os.path.realpath(DEBIAN_PYTHON))):
        pytest.skip("kiln's first CPython 3.11 is Debian's: there is no second build here")
    return first, DEBIAN_PYTHON


@pytest.fixture(scope="module")
def warm_tools(tmp_path_factory: pytest.TempPathFactory, kiln_env_module: dict[str, str]) -> Path:
    """A kiln cache whose zig has built its C and C++ runtimes once (a warm-up project's
    build), copied into each test's own cache folder: the tests' own objects are compiled
    in each, the minutes zig spends on libc++ are spent once."""
    base = tmp_path_factory.mktemp("warm")
    recipe = _recipe(base, "warm-up", {**CXX_FILES, "setup.py": CXX_FILES["setup.py"].replace(
        'name="cxx-demo"', 'name="warm-up"')}, ())
    subprocess.run([sys.executable, "-m", "kiln", "build", recipe, "-o", base / "wh", "--no-test"],
                   env={**kiln_env_module, "KILN_CACHE_DIR": str(base / "cache")}, check=True,
                   capture_output=True, timeout=900)
    return base / "cache" / "tools"


@pytest.fixture(scope="module")
def kiln_env_module(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KILN_NO_INDEX="1", KILN_FIND_LINKS=str(TEST_WHEELS), COLUMNS="200")
    return env


def _cache(warm_tools: Path, where: Path) -> Path:
    shutil.copytree(warm_tools, where / "tools", symlinks=True)
    return where


def _recipe(tmp_path: Path, name: str, files: dict[str, str], tests: tuple[str, ...],
            extra: str = "") -> Path:
    sdist = make_sdist(tmp_path / "sdists", name, "1.0", files)
    path = tmp_path / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, tests=tests, extra=extra))
    return path


def _build(run_kiln, recipe: Path, out: Path, cache: Path, *args: str, cwd: Path | None = None,
           check: bool = True, env_extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    result = run_kiln("build", recipe, "-o", out, "--json", *args, check=check, cwd=cwd,
                      env={"KILN_CACHE_DIR": str(cache), **(env_extra or {})})
    return result, (json.loads(result.stdout) if result.stdout.strip() else [])


# A 128-bit division links __divti3 from zig's compiler_rt, whose debug info names the
# folder of its generated builtin.zig, by a digest zig draws anew in each process (grpcio).
WIDE_DIVISION = "__int128 kiln_wide_div(__int128 a, __int128 b) { return a / b; }\n"


@pytest.mark.parametrize(("name", "files", "test"), [
    ("cext-demo", cext_files(), ADD_TEST),
    ("cext-demo", cext_files(extra_c=WIDE_DIVISION), ADD_TEST),
    ("cxx-demo", CXX_FILES, CXX_TEST),
], ids=["c", "c-compiler-rt", "c++"])
def test_two_cpython_builds_give_the_same_wheel(run_kiln, two_pythons, warm_tools, tmp_path, name,
                                                files, test):
    pyenv, debian = two_pythons
    assert _python_info(pyenv) != _python_info(debian)  # other versions and include folders
    recipe = _recipe(tmp_path, name, files, (test,))
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    _, first = _build(run_kiln, recipe, tmp_path / "wh-a", _cache(warm_tools, tmp_path / "a"),
                      "--python-path", f"3.11={pyenv}")
    # For C, the second from a cold cache: zig builds its C runtime afresh, while the first
    # build's came from another project's build (the warm-up). zig's libc++ from a cold cache
    # costs minutes: for C++ the second build gets its own copy of the warm-up's (the cross
    # tests and every --check-repro twin build libc++ cold).
    second_cache = (tmp_path / "elsewhere" / "cold-cache" if name == "cext-demo" else
                    _cache(warm_tools, tmp_path / "elsewhere" / "b"))
    _, second = _build(run_kiln, recipe, tmp_path / "elsewhere" / "wh-b", second_cache,
                       "--python-path", f"3.11={debian}", cwd=tmp_path / "elsewhere" / "deeper")
    a, b = first[0]["record"], second[0]["record"]
    # Two interpreters ran the builds ...
    assert a["python"]["path"] != b["python"]["path"]
    assert a["python"]["sha256"] != b["python"]["sha256"]
    # ... and gave one wheel, manylinux2014, hermetic, with one build id.
    assert a["outputs"][0]["sha256"] == b["outputs"][0]["sha256"]
    assert "manylinux_2_17_x86_64" in a["outputs"][0]["platform_tags"]
    assert a["hermetic"] is b["hermetic"] is True, (a["not_hermetic"], b["not_hermetic"])
    assert a["build_id"] == b["build_id"]
    assert a["cpython"]["headers_sha256"] == b["cpython"]["headers_sha256"]
    assert a["test"]["passed"] is b["test"]["passed"] is True
    # Neither interpreter's own include folder is named in the binary.
    wheel = Path(first[0]["wheel"])
    with zipfile.ZipFile(wheel) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist() if ".so" in n)
    for python in (pyenv, debian):
        include = _python_info(python)[1].encode()
        assert include not in blob, include
    # kiln's headers, at a fixed path that is the same for every CPython X.Y.
    assert b"/kiln/python/include/python/" in blob
    assert b"/kiln/python/include/python3.11" not in blob


PROBE_SETUP = """
    import json, os, shutil, subprocess
    from setuptools import Extension, setup

    seen = {}
    for tool in ("gcc", "cc", "g++", "ld", "cmake", "ninja", "x86_64-linux-gnu-gcc-12"):
        path = shutil.which(tool, path="/usr/bin:/bin:/usr/local/bin")
        if path:
            run = subprocess.run([path, "--version"], capture_output=True, text=True)
            seen[tool] = [path, run.returncode, (run.stdout + run.stderr).strip()[:200]]
    seen["/usr/include"] = sorted(os.listdir("/usr/include")) if os.path.isdir("/usr/include") \\
        else None
    seen["CC"] = os.environ.get("CC")
    import sysconfig
    seen["INCLUDEPY"] = sysconfig.get_config_var("INCLUDEPY")
    seen["include"] = sysconfig.get_paths()["include"]
    seen["Python.h"] = {k: os.path.isfile(os.path.join(seen[k], "Python.h"))
                        for k in ("INCLUDEPY", "include")}
    seen["CFLAGS"] = sysconfig.get_config_var("CFLAGS")
    os.makedirs("cext_demo", exist_ok=True)
    with open("cext_demo/seen.json", "w") as fh:
        json.dump(seen, fh, indent=1, sort_keys=True)
    setup(name="cext-demo", version="1.0", packages=["cext_demo"],
          package_data={"cext_demo": ["seen.json"]},
          ext_modules=[Extension("cext_demo._speedups", ["src/speedups.c"])])
"""


def _seen(wheel: Path) -> dict:  # type: ignore[type-arg]
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read("cext_demo/seen.json"))  # type: ignore[no-any-return]


def test_the_host_compilers_and_headers_are_hidden_and_the_build_still_passes(run_kiln,
                                                                                tmp_path):
    from kiln.toolchain.hosttools import compilers_and_tools

    hidden = compilers_and_tools()
    if not any(p.name.startswith(("x86_64-linux-gnu-gcc", "gcc")) for p in hidden):
        pytest.skip("this host has no gcc to hide")
    files = cext_files()
    files["setup.py"] = PROBE_SETUP
    recipe = _recipe(tmp_path, "cext-demo", files, (ADD_TEST,))
    _, results = _build(run_kiln, recipe, tmp_path / "wh", tmp_path / "cache")
    record = results[0]["record"]
    assert record["test"]["passed"] is True and record["hermetic"] is True
    seen = _seen(Path(results[0]["wheel"]))
    ran = {tool: found for tool, found in seen.items()
           if isinstance(found, list) and not tool.startswith("/")}
    assert "gcc" in ran, seen
    for tool, (path, code, said) in ran.items():
        # Each host tool is there by name, and refuses to run, saying why.
        assert code == 127, (tool, path, code, said)
        assert "a hermetic build runs only pinned tools" in said, (tool, said)
    assert seen["/usr/include"] == []  # no host header is visible
    assert seen["CC"].startswith("/kiln/env/bin/kiln-cc")
    # The folder compiles name is the same for every X.Y; the versioned one, which
    # sysconfig's paths name (CMake and meson look there), has the same headers.
    assert seen["INCLUDEPY"] == "/kiln/python/include/python"
    assert seen["include"] == "/kiln/python/include/python3.11"
    assert seen["Python.h"] == {"INCLUDEPY": True, "include": True}
    assert "-O3" in seen["CFLAGS"] and "-fstack-protector-strong" not in seen["CFLAGS"]


def test_the_host_backend_sees_the_host_and_says_it_is_not_hermetic(run_kiln, tmp_path):
    files = cext_files()
    files["setup.py"] = PROBE_SETUP
    recipe = _recipe(tmp_path, "cext-demo", files, (ADD_TEST,))
    _, results = _build(run_kiln, recipe, tmp_path / "wh", tmp_path / "cache",
                        "--backend", "host")
    record = results[0]["record"]
    assert record["backend"] == "host"
    assert record["hermetic"] is False
    assert any("host's compilers" in why for why in record["not_hermetic"])
    assert record["cpython"] is None
    seen = _seen(Path(results[0]["wheel"]))
    assert seen["gcc"][1] == 0  # the host's gcc runs
    assert not seen["INCLUDEPY"].startswith("/kiln/python/")


def test_a_rebuild_with_a_warm_first_build_cache_still_compiles(run_kiln, two_pythons,
                                                                  tmp_path):
    # Same build path as the first build: every compile command is the same, so a shared
    # compiler cache would hand the rebuild the first build's objects.
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,),
                     extra='\n[repro]\nskip-variations = ["build_path"]\n')
    cache = tmp_path / "cache"
    _build(run_kiln, recipe, tmp_path / "warm", cache)
    first_chain = zig_cache_root(cache / "tools") / "build"
    objects = sorted(first_chain.glob("o/*/speedups.o"))
    assert objects, "the first build compiled nothing into its cache"
    rebuild_chain = zig_cache_root(cache / "tools") / "rebuild"
    assert not rebuild_chain.exists()
    _, results = _build(run_kiln, recipe, tmp_path / "wh", cache, "--check-repro", "--no-cache")
    repro = results[0]["record"]["repro"]
    assert repro["reproducible"] is True, repro
    assert repro["rebuild_compiles"].startswith("cold"), repro
    assert sorted(rebuild_chain.glob("o/*/speedups.o")), "the rebuild compiled nothing"
    assert "build_path" in repro["skipped"]
    # The rebuild ran with the other CPython 3.11 and other tools on PATH.
    assert {"interpreter", "tools"} <= set(repro["variations"]), repro
    assert str(two_pythons[1]) in repro["rebuild_interpreter"] or \
        str(two_pythons[0]) in repro["rebuild_interpreter"]
    # A second check: the rebuild now compiles from its own chain, never the build's; and
    # a second --python-path for the version names the rebuild's interpreter.
    pyenv, debian = two_pythons
    _, again = _build(run_kiln, recipe, tmp_path / "wh2", cache, "--check-repro", "--no-cache",
                      "--python-path", f"3.11={debian}", "--python-path", f"3.11={pyenv}")
    record = again[0]["record"]
    assert record["repro"]["rebuild_compiles"].startswith("its own compiler cache")
    assert record["python"]["path"] == str(debian)
    assert str(pyenv) in record["repro"]["rebuild_interpreter"]


# Runtime dispatch the way crc32c, simdjson and others do it: functions marked for a newer
# CPU, in a module built for x86-64's baseline. gcc compiles this; zig's clang refused it
# (zig switches crc32, popcnt and evex512 off by name, and clang then keeps them off).
DISPATCH_C = """
    #if defined(__SSE4_2__) || defined(__CRC32__) || defined(__POPCNT__) || defined(__AVX512F__)
    #error "the baseline was raised: a wheel for x86-64 must run on any x86-64"
    #endif
    #include <stdint.h>
    #include <immintrin.h>
    __attribute__((target("sse4.2"))) uint32_t kiln_crc(uint32_t c, unsigned char x) {
        return __builtin_ia32_crc32qi(c, x) + (uint32_t)_mm_popcnt_u32(c);
    }
    __attribute__((target("avx"))) void kiln_save(void *p) { _xsave(p, 0); }
    __attribute__((target("avx512f"))) __m512i kiln_add(__m512i a, __m512i b) {
        return _mm512_add_epi32(a, b);
    }
"""


def test_functions_for_a_newer_cpu_compile_and_the_baseline_stays(run_kiln, warm_tools,
                                                                   tmp_path):
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        pytest.skip("x86-64 dispatch")
    recipe = _recipe(tmp_path, "cext-demo", cext_files(extra_c=DISPATCH_C), (ADD_TEST,))
    result, built = _build(run_kiln, recipe, tmp_path / "wh", _cache(warm_tools, tmp_path / "c"),
                           check=False)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(built[0]["wheel"]) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist() if ".so" in n)
    assert re.search(rb"\xf2[\x40-\x4f]?\x0f\x38\xf0", blob)  # crc32 (in kiln_crc only)
    assert re.search(rb"\xf3[\x40-\x4f]?\x0f\xb8", blob)  # popcnt


# propcache's build backend compiles a copy of the sources in a random folder and maps that
# folder back to the one it was started in: a map kiln's own maps never reach.
OWN_MAP_SETUP = """
    import os, shutil, tempfile
    from setuptools import Extension, setup

    here = os.getcwd()
    copy = tempfile.mkdtemp()
    shutil.copy("src/speedups.c", copy)
    setup(name="cext-demo", version="1.0", packages=["cext_demo"],
          ext_modules=[Extension("cext_demo._speedups", [os.path.join(copy, "speedups.c")],
                                 extra_compile_args=["-g", f"-ffile-prefix-map={copy}={here}"])])
"""


def test_a_build_that_maps_its_own_folders_still_rebuilds_identically(run_kiln, warm_tools,
                                                                        tmp_path):
    files = cext_files()
    files["setup.py"] = OWN_MAP_SETUP
    recipe = _recipe(tmp_path, "cext-demo", files, (ADD_TEST,))
    _, results = _build(run_kiln, recipe, tmp_path / "wh", _cache(warm_tools, tmp_path / "c"),
                        "--check-repro", check=False)
    record = results[0]["record"]
    repro = record["repro"]
    # The twin built in another folder (its own map pointed there) and gave the same bytes.
    assert "build_path" in repro["variations"], repro
    assert repro["reproducible"] is True, repro
    with zipfile.ZipFile(results[0]["wheel"]) as zf:
        blob = b"".join(zf.read(n) for n in zf.namelist() if ".so" in n)
    assert b"/kiln/src/cext-demo-1.0" in blob  # the build's own map, pointed at /kiln/src
    assert record["test"]["passed"] is True


def test_kiln_toolchain_fetch_fills_a_folder_builds_use_offline(run_kiln, tmp_path):
    from kiln.toolchain.cpython import pin_for

    result = run_kiln("toolchain", "show", "--json", check=True)
    shown = json.loads(result.stdout)
    assert shown["cpython"]["3.11"]["sha256"] == pin_for("3.11").sha256
    assert (ROOT / ".cache" / "test-wheels" / pin_for("3.11").filename).is_file()


@pytest.fixture
def served(tmp_path):  # type: ignore[no-untyped-def]
    """A folder served over http on loopback, as a mirror would serve a wheelhouse."""
    import functools
    import http.server
    import threading

    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_repro_against_a_mirror_names_the_inputs_before_the_members(run_kiln, two_pythons,
                                                                     warm_tools, served,
                                                                     tmp_path):
    pyenv, debian = two_pythons
    root, url = served
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, built = _build(run_kiln, recipe, root, _cache(warm_tools, tmp_path / "a"),
                      "--python-path", f"3.11={pyenv}")
    wheel = Path(built[0]["wheel"])
    # An auditor elsewhere, with another CPython 3.11, rebuilds the mirror's wheel.
    result = run_kiln("repro", recipe, "--against", f"{url}/{wheel.name}", "-o",
                      tmp_path / "auditor", "--python-path", f"3.11={debian}", "--json",
                      env={"KILN_CACHE_DIR": str(_cache(warm_tools, tmp_path / "b"))})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reproducible"] is True
    assert report["their_record"] == f"{url}/{wheel.name}.build.json"
    differing = {d["input"]: d for d in report["inputs"]}
    # Only the interpreter (and where the build ran) differs, and it does not shape the bytes.
    assert differing["interpreter"]["shapes_bytes"] is False
    assert [d for d in report["inputs"] if d["shapes_bytes"]] == []


def test_host_builds_with_two_interpreters_differ_and_repro_says_why(run_kiln, two_pythons,
                                                                      tmp_path):
    pyenv, debian = two_pythons
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, built = _build(run_kiln, recipe, tmp_path / "wh-a", tmp_path / "cache-a",
                      "--backend", "host", "--python-path", f"3.11={pyenv}")
    wheel = built[0]["wheel"]
    result = run_kiln("repro", recipe, "--against", wheel, "--backend", "host", "-o",
                      tmp_path / "wh-b", "--python-path", f"3.11={debian}",
                      env={"KILN_CACHE_DIR": str(tmp_path / "cache-b")})
    assert result.returncode == 13, result.stderr
    out = result.stdout
    # The inputs come first: the interpreter shapes a host build.
    assert out.index("inputs that differ") < out.index("embedded") if "embedded" in out \
        else out.index("inputs that differ") < out.index("_speedups")
    report = json.loads((tmp_path / "wh-b" / (Path(wheel).name + ".against.repro.json"))
                        .read_text())
    shaping = {d["input"] for d in report["inputs"] if d["shapes_bytes"]}
    assert "interpreter" in shaping
    causes = {d["cause"] for d in report["differences"]}
    assert "host-path" in causes, report["differences"]


def test_two_builders_agree_through_kiln_rebuild_of_a_served_wheel(run_kiln, two_pythons,
                                                                    warm_tools, tmp_path):
    """The rebuilder role end to end: a CI builder builds, signs with its key and records;
    a rebuilder elsewhere (another CPython 3.11 build, folder, cache and key) rebuilds the
    wheel the index serves with no recipe file, signs and records on the same branch; then
    the wheel has a quorum of two, and an index requiring it serves the wheel."""
    from kiln.serve import IndexServer
    from kiln.signing.keys import generate_keypair

    pyenv, debian = two_pythons
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    ci, rebuilder = (generate_keypair(tmp_path / "keys" / n) for n in ("ci", "rebuilder"))
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, built = _build(run_kiln, recipe, tmp_path / "wh-ci", _cache(warm_tools, tmp_path / "a"),
                      "--python-path", f"3.11={pyenv}", "--sign-key", str(ci.private),
                      "--audit", cwd=repo, env_extra={"KILN_BUILDER_ID": "kiln://ci"})
    wheel = Path(built[0]["wheel"])
    shutil.rmtree(recipe.parent)  # the rebuilder has no recipe: only the index
    site = tmp_path / "site"
    run_kiln("index", wheel.parent, "-o", site, check=True)
    server = IndexServer(site, port=0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/files/cext-demo/{wheel.name}"
        result = run_kiln("rebuild", url, "-o", tmp_path / "wh-rebuilder", "--python-path",
                          f"3.11={debian}", "--sign-key", str(rebuilder.private), "--audit",
                          "--json", cwd=repo,
                          env={"KILN_CACHE_DIR": str(_cache(warm_tools, tmp_path / "b")),
                               "KILN_BUILDER_ID": "kiln://rebuilder"})
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["reproducible"] is True
    assert report["inputs_from"] == url + ".build.json"
    ours = Path(report["ours"])
    assert ours.parent == tmp_path / "wh-rebuilder" and _digest(ours) == _digest(wheel)
    record = json.loads(ours.with_name(ours.name + ".build.json").read_text())
    assert record["python"]["path"] == str(debian)  # really built by the other interpreter

    keys = ["--key", str(ci.public), "--key", str(rebuilder.public)]
    quorum = run_kiln("verify", wheel, "--quorum", "2", *keys, "--json", cwd=repo)
    assert quorum.returncode == 0, quorum.stderr
    signers = json.loads(quorum.stdout)[0]["signers"]
    assert {s["builder"] for s in signers} == {"kiln://ci", "kiln://rebuilder"}
    alone = run_kiln("verify", wheel, "--quorum", "2", "--key", str(ci.public), *keys[2:3],
                     cwd=repo)
    assert alone.returncode == 2  # --quorum 2 with one trusted signer can never be met
    one = run_kiln("verify", wheel, "--quorum", "2", "--key", str(ci.public), "--key",
                   str(generate_keypair(tmp_path / "keys" / "nobody").public), cwd=repo)
    assert one.returncode == 28, one.stderr
    gated = run_kiln("index", wheel.parent, "-o", tmp_path / "gated", "--require-quorum", "2",
                     *keys, "--json", cwd=repo)
    assert json.loads(gated.stdout)["rejected"] == [], gated.stderr


# A small C library with a plain Makefile (its shared library linked by $(LD) itself), and a
# project whose extension links it.
KILNFIX_FILES = {
    "Makefile": ("PREFIX ?= /usr/local\n"
                 "all: libkilnfix.a libkilnfix.so\n"
                 "libkilnfix.a: kilnfix.o\n\t$(AR) rcs $@ kilnfix.o\n"
                 "libkilnfix.so: kilnfix.o\n"
                 # the linker by name, as libtool does: kiln's LD, zig's lld (the host's
                 # ld is hidden)
                 "\t$(LD) -shared -soname libkilnfix.so.1 -o $@ kilnfix.o\n"
                 # a dependency file, as automake, CMake and ninja ask for: zig caches
                 # no such compile, so kiln's wrappers write it and hand zig a plain one
                 "kilnfix.o: kilnfix.c kilnfix.h\n"
                 "\t$(CC) $(CFLAGS) -MD -MP -MF kilnfix.d -c kilnfix.c -o $@\n"
                 "install: all\n\tmkdir -p $(PREFIX)/lib $(PREFIX)/include $(PREFIX)/share\n"
                 "\tcp kilnfix.d $(PREFIX)/share/\n"
                 "\tcp libkilnfix.a $(PREFIX)/lib/\n"
                 "\tcp libkilnfix.so $(PREFIX)/lib/libkilnfix.so.1\n"
                 "\tln -sf libkilnfix.so.1 $(PREFIX)/lib/libkilnfix.so\n"
                 "\tcp kilnfix.h $(PREFIX)/include/\n"),
    "kilnfix.h": "int kilnfix_twice(int x);\n",
    "kilnfix.c": '#include "kilnfix.h"\nint kilnfix_twice(int x) { return 2 * x; }\n',
}
LIBDEMO_FILES = {
    "pyproject.toml": CXX_FILES["pyproject.toml"],
    "setup.py": """
        from setuptools import Extension, setup
        setup(name="{name}", version="1.0", packages=["libdemo"],
              ext_modules=[Extension("libdemo._ext", ["src/ext.c"], libraries=["kilnfix"])])
    """,
    "libdemo/__init__.py": "from ._ext import twice\n",
    "src/ext.c": """
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>
        #include <kilnfix.h>

        static PyObject *twice(PyObject *self, PyObject *args) {
            int n;
            if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
            return PyLong_FromLong(kilnfix_twice(n));
        }
        static PyMethodDef methods[] = {{"twice", twice, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
    """,
}


# The same library behind an OpenSSL-shaped build: a Perl Configure that takes the target
# first, then a Makefile whose "install" would build the manuals and "install_sw" does not.
OPENSSL_LIKE_FILES = {
    "Configure": r"""
        use strict;
        my ($target, @rest) = @ARGV;
        die "Configure: unknown target '$target'\n" unless $target =~ /^linux-(x86_64|aarch64)$/;
        my %opt = map { /^--([\w-]+)=(.*)$/ ? ($1, $2) : ($_, 1) } @rest;
        die "Configure: no --prefix\n" unless $opt{prefix};
        die "Configure: not asked for no-shared\n" unless $opt{"no-shared"};
        open(my $in, "<", "Makefile.in") or die "Makefile.in: $!\n";
        open(my $out, ">", "Makefile") or die "Makefile: $!\n";
        while (<$in>) { s/\@PREFIX\@/$opt{prefix}/g; print $out $_; }
    """,
    "Makefile.in": KILNFIX_FILES["Makefile"].replace("PREFIX ?= /usr/local", "PREFIX = @PREFIX@")
    .replace("install: all", "install:\n\t@echo 'install builds the manuals'; exit 1\n"
             "install_sw: all"),
    "kilnfix.h": KILNFIX_FILES["kilnfix.h"],
    "kilnfix.c": KILNFIX_FILES["kilnfix.c"],
}


def _library_recipe(tmp_path: Path, name: str, sha256: str | None = None,
                    link: str = "static", build: str = "make") -> Path:
    tarball = tmp_path / "libs" / "kilnfix-1.0.tar.gz"
    # Made once: gzip stamps the time it compresses, and the library's pin is its sha256.
    files = OPENSSL_LIKE_FILES if build == "openssl" else KILNFIX_FILES
    lib = make_sdist(tmp_path / "libs", "kilnfix", "1.0", files) \
        if not tarball.exists() else None
    files = {**LIBDEMO_FILES, "setup.py": LIBDEMO_FILES["setup.py"].replace("{name}", name)}
    extra = f"""
        [library.kilnfix]
        version = "1.0"
        url = "{tarball.as_uri()}"
        sha256 = "{sha256 or (lib.sha256 if lib else _digest(tarball))}"
        build = "{build}"
        link = "{link}"
    """
    return _recipe(tmp_path, name, files,
                   ("python -c 'import libdemo; assert libdemo.twice(21) == 42'",), extra=extra)


def test_a_declared_library_is_built_sealed_recorded_cached_and_rebuilt_by_the_twin(
        run_kiln, two_pythons, warm_tools, tmp_path):
    pyenv, debian = two_pythons
    recipe = _library_recipe(tmp_path, "libdemo")
    cache = _cache(warm_tools, tmp_path / "cache")
    result, results = _build(run_kiln, recipe, tmp_path / "wh", cache, "--check-repro",
                             "--python-path", f"3.11={pyenv}", "--python-path", f"3.11={debian}")
    assert result.returncode == 0, result.stderr
    record = results[0]["record"]
    assert record["test"]["passed"] is True and record["hermetic"] is True
    assert "manylinux_2_17_x86_64" in record["outputs"][0]["platform_tags"]
    assert record["repro"]["reproducible"] is True
    assert "interpreter" in record["repro"]["variations"]
    (lib,) = record["libraries"]
    tarball = tmp_path / "libs" / "kilnfix-1.0.tar.gz"
    assert lib["name"] == "kilnfix" and lib["sha256"] == _digest(tarball)
    assert lib["source"] == tarball.as_uri() and lib["build"] == "make"
    assert lib["cached"] is False and len(lib["tree_sha256"]) == 64
    assert record["repair"]["grafted"] == []  # linked statically: nothing to graft
    assert any(t["name"] == "pkgconf" for t in record["toolchain"])
    # The twin built the library itself, in its own cache, to the same bytes.
    chains = {p.parent.name: p for p in (cache / "libraries").glob("*/kilnfix-1.0-*")
              if p.is_dir()}
    assert set(chains) == {"build", "rebuild"}, chains
    from kiln.toolchain.cpython import tree_digest
    assert tree_digest(chains["rebuild"] / "prefix") == lib["tree_sha256"]
    assert "kilnfix built by the rebuild" in record["repro"]["rebuild_compiles"]
    # Its compile asked for a dependency file: zig's cache still holds the object (in each
    # chain), and the dependency file names the object and its source.
    from kiln.toolchain.zig import zig_cache_root
    for chain in ("build", "rebuild"):
        assert list((zig_cache_root(cache / "tools") / chain).glob("o/*/kilnfix.o")), chain
    assert (chains["build"] / "prefix" / "share" / "kilnfix.d").read_text() == \
        "kilnfix.o: kilnfix.c\n"

    # Another recipe needing the same library takes it from the cache.
    other = _library_recipe(tmp_path, "libdemo-two")
    result, again = _build(run_kiln, other, tmp_path / "wh2", cache, "--no-test",
                           "--python-path", f"3.11={pyenv}")
    assert result.returncode == 0, result.stderr
    (reused,) = again[0]["record"]["libraries"]
    assert reused["key"] == lib["key"], (reused, lib)
    assert reused["cached"] is True

    # Linked shared instead, the library is grafted into the wheel, and the tests load it.
    shared = _library_recipe(tmp_path, "libdemo-shared", link="shared")
    result, grafted = _build(run_kiln, shared, tmp_path / "wh3", cache,
                             "--python-path", f"3.11={pyenv}")
    assert result.returncode == 0, result.stderr
    record = grafted[0]["record"]
    assert record["test"]["passed"] is True and record["libraries"][0]["link"] == "shared"
    assert [Path(g).name.split("-")[0] for g in record["repair"]["grafted"]] == ["libkilnfix"]
    assert "manylinux_2_17_x86_64" in record["outputs"][0]["platform_tags"]


def test_an_openssl_build_runs_configure_for_the_target_and_install_sw(run_kiln, two_pythons,
                                                                        warm_tools, tmp_path):
    pyenv, _ = two_pythons
    recipe = _library_recipe(tmp_path, "libdemo", build="openssl")
    result, results = _build(run_kiln, recipe, tmp_path / "wh", _cache(warm_tools, tmp_path),
                             "--python-path", f"3.11={pyenv}")
    assert result.returncode == 0, result.stderr
    record = results[0]["record"]
    assert record["test"]["passed"] is True and record["hermetic"] is True
    assert "manylinux_2_17_x86_64" in record["outputs"][0]["platform_tags"]
    assert record["libraries"][0]["build"] == "openssl"
    assert any(t["name"] == "perl (the host's)" and len(t["sha256"]) == 64
               for t in record["toolchain"])


def test_a_library_whose_source_does_not_match_its_sha256_stops_the_build(run_kiln, tmp_path):
    recipe = _library_recipe(tmp_path, "libdemo", sha256="0" * 64)
    result = run_kiln("build", recipe, "-o", tmp_path / "wh", check=False,
                      env={"KILN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode != 0
    assert "[library.kilnfix] source kilnfix-1.0.tar.gz" in result.stderr, result.stderr
    assert "sha256" in result.stderr
    assert not (tmp_path / "wh").exists() or not any((tmp_path / "wh").glob("*.whl"))

"""Hermetic cross builds for real: aarch64 and manylinux_2_17 wheels from this x86_64 host.

The builds run offline: the pinned ziglang wheel and CPython headers are among the test
files `.ci/setup` fetched. The tests that run the wheel under qemu need Debian's archive
for the aarch64 CPython, so they are marked `network`. All of them share one kiln cache
(the zig install, zig's compiler cache and the sysroot are made once) and build sdists of
their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from kiln.toolchain.zig import zig_cache_root
from tests.conftest import ROOT, TEST_WHEELS, cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow

ADD_TEST = "python -c 'import cext_demo; assert cext_demo.add(40, 2) == 42'"
# pthread_create moved into libc in glibc 2.34: linked natively against a newer glibc it
# needs GLIBC_2.34; linked by zig against glibc 2.17 it needs nothing past 2.17.
USES_THREADS = """
    #include <pthread.h>
    int kiln_spawn(void *(*fn)(void *)) { pthread_t t; return pthread_create(&t, NULL, fn, NULL); }
"""
CXX_SETUP = """
    from setuptools import Extension, setup
    setup(name="cxx-demo", version="1.0", packages=["cxx_demo"],
          ext_modules=[Extension("cxx_demo._native", ["src/native.cpp"], language="c++")])
"""
CXX_SOURCE = """
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
"""


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not any(TEST_WHEELS.glob("ziglang-*.whl")):
        pytest.fail(f"{TEST_WHEELS} has no ziglang wheel: run `bash .ci/setup` first")
    return tmp_path_factory.mktemp("zig-kiln-cache")


def _recipe(tmp_path: Path, name: str, files: dict[str, str], tests: tuple[str, ...],
            extra: str = "") -> Path:
    sdist = make_sdist(tmp_path / "sdists", name, "1.0", files)
    path = tmp_path / "recipes" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, tests=tests, extra=extra))
    return path


def _build(run_kiln, cache: Path, recipe: Path, out: Path, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    result = run_kiln("build", recipe, "-o", out, "--json", *args,
                      env={"KILN_CACHE_DIR": str(cache)}, check=check)
    return result, (json.loads(result.stdout) if result.stdout.strip() else [])


def _elf_machines(wheel: Path) -> dict[str, str]:
    machines = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if ".so" in name:
                with zf.open(name) as fh:
                    data = fh.read()
                import io

                elf = ELFFile(io.BytesIO(data))
                needed = [t.needed for s in elf.iter_sections() if s.name == ".dynamic"
                          for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
                machines[name] = f"{elf['e_machine']} {' '.join(sorted(needed))}"
    return machines


def test_cext_cross_builds_for_aarch64(run_kiln, shared_cache, tmp_path):
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, results = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                        "--target", "linux-aarch64", "--no-test")
    record = results[0]["record"]
    wheel = Path(results[0]["wheel"])
    assert "manylinux_2_17_aarch64" in wheel.name
    assert record["repair"]["policy"] == "manylinux_2_17_aarch64"
    (so, described), = _elf_machines(wheel).items()
    assert so.endswith(".cpython-311-aarch64-linux-gnu.so")
    assert described.startswith("EM_AARCH64")
    tools = {t["name"]: t for t in record["toolchain"]}
    assert tools["ziglang"]["version"] == "0.15.2"
    assert len(tools["ziglang"]["sha256"]) == 64
    assert "-target aarch64-linux-gnu.2.17" in tools["zig cc"]["version"]
    assert tools["glibc"]["version"] == "2.17"
    # aarch64's pyconfig.h, derived from the pinned x86_64 package, is what it compiled with.
    assert record["cpython"]["headers_sha256"] == tools["cpython 3.11 headers"]["sha256"]
    assert record["hermetic"] is True
    assert record["environment"]["_PYTHON_HOST_PLATFORM"] == "linux-aarch64"
    assert record["test"]["why_not"] == "--no-test"


def test_zig_reaches_manylinux_2_17_where_native_gcc_does_not(run_kiln, shared_cache, tmp_path):
    recipe = _recipe(tmp_path, "cext-demo", cext_files(extra_c=USES_THREADS), (ADD_TEST,))
    _, native = _build(run_kiln, shared_cache, recipe, tmp_path / "native", "--backend",
                       "host")
    _, zig = _build(run_kiln, shared_cache, recipe, tmp_path / "zig", "--backend", "hermetic",
                    "--target", "linux-x86_64")
    native_policy = native[0]["record"]["repair"]["policy"]
    zig_tags = zig[0]["record"]["outputs"][0]["platform_tags"]
    assert "manylinux_2_17_x86_64" in zig_tags, zig_tags
    assert zig[0]["record"]["test"]["passed"] is True
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if tuple(map(int, glibc.split()[-1].split("."))) < (2, 34):
        pytest.skip(f"host {glibc} predates glibc 2.34; native reaches 2_17 too")
    # The host's glibc, not 2.17: the native build needs GLIBC_2.34.
    assert native_policy.startswith("manylinux_2_3"), native_policy
    assert "manylinux_2_17_x86_64" not in native[0]["record"]["outputs"][0]["platform_tags"]


def test_check_repro_for_a_cross_build_and_a_cold_zig_cache(run_kiln, shared_cache, tmp_path):
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, results = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                        "--target", "linux-aarch64", "--no-test", "--check-repro")
    repro = results[0]["record"]["repro"]
    assert repro["reproducible"] is True, repro
    assert "build_path" in repro["variations"]
    # zig's own cache, cold (a new kiln cache) or warm, never changes the bytes.
    cold = tmp_path / "cold-cache"
    _, again = _build(run_kiln, cold, recipe, tmp_path / "wh-cold", "--backend", "hermetic",
                      "--target", "linux-aarch64", "--no-test")
    assert any((zig_cache_root(cold / "tools") / "build").iterdir())
    assert again[0]["record"]["outputs"][0]["sha256"] == repro["digests"][0]


def test_a_build_that_runs_a_target_program_says_it_cannot_cross(run_kiln, shared_cache,
                                                                  tmp_path):
    files = cext_files()
    files["setup.py"] = """
        import os, shlex, subprocess
        from setuptools import Extension, setup
        from setuptools.command.build_ext import build_ext

        class generate(build_ext):  # runs a freshly compiled program, as some builds do
            def run(self):
                with open("gen.c", "w") as fh:
                    fh.write("int main(void) { return 0; }\\n")
                subprocess.check_call([*shlex.split(os.environ["CC"]), "gen.c", "-o", "gen"])
                subprocess.check_call(["./gen"])
                super().run()

        setup(name="cext-demo", version="1.0", packages=["cext_demo"],
              ext_modules=[Extension("cext_demo._speedups", ["src/speedups.c"])],
              cmdclass={"build_ext": generate})
    """
    recipe = _recipe(tmp_path, "cext-demo", files, (ADD_TEST,))
    result, _ = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                       "--target", "linux-aarch64", "--no-test", check=False)
    assert result.returncode == 64, result.stderr
    assert "tried to run a program compiled for linux-aarch64" in result.stderr
    assert "cibuildwheel" in result.stderr
    assert not list((tmp_path / "wh").glob("*.whl"))


def test_sysroot_refuses_a_python_debian_never_shipped(run_kiln, tmp_path):
    result = run_kiln("sysroot", "linux-aarch64", "--python", "3.12")
    assert result.returncode == 64
    assert "no Debian suite ships CPython 3.12" in result.stderr
    assert "hint:" in result.stderr


@pytest.mark.network
def test_cext_cross_build_passes_its_tests_under_qemu(run_kiln, shared_cache, tmp_path):
    recipe = _recipe(tmp_path, "cext-demo", cext_files(), (ADD_TEST,))
    _, results = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                        "--target", "linux-aarch64")
    test = results[0]["record"]["test"]
    assert test == {**test, "ran": True, "passed": True, "emulated": True}
    wheel = Path(results[0]["wheel"])
    # kiln test runs it again, and a wrong answer fails: the compiled code really ran.
    ok = run_kiln("test", wheel, "--recipe", recipe, "--json",
                  env={"KILN_CACHE_DIR": str(shared_cache)}, check=True)
    assert json.loads(ok.stdout)["emulated"] is True
    recipe.write_text(recipe.read_text().replace("== 42", "== 43"))
    bad = run_kiln("test", wheel, "--recipe", recipe, env={"KILN_CACHE_DIR": str(shared_cache)})
    assert bad.returncode == 12, bad.stderr
    assert "under qemu" in bad.stderr


@pytest.mark.network
def test_cxx_extension_cross_builds_and_runs_under_qemu(run_kiln, shared_cache, tmp_path):
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "setup.py": CXX_SETUP,
        "cxx_demo/__init__.py": "from ._native import joined_sum\n",
        "src/native.cpp": CXX_SOURCE,
    }
    test = "python -c 'import cxx_demo; assert cxx_demo.joined_sum(100) == str(5050)'"
    recipe = _recipe(tmp_path, "cxx-demo", files, (test,))
    _, results = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                        "--target", "linux-aarch64")
    aarch64 = results[0]
    assert "manylinux_2_17_aarch64" in aarch64["wheel"]
    assert aarch64["record"]["test"]["emulated"] is True
    assert aarch64["record"]["test"]["passed"] is True
    (_, described), = _elf_machines(Path(aarch64["wheel"])).items()
    assert described.startswith("EM_AARCH64")
    assert "libstdc++" not in described  # zig links its libc++ in


@pytest.mark.network
def test_markupsafe_cross_builds_and_passes_under_qemu(run_kiln, shared_cache, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(ROOT / "recipes" / "markupsafe.toml", recipes)
    shutil.copy(ROOT / "recipes" / "markupsafe.lock", recipes)
    # Exercise the compiled module, not only the import.
    text = (recipes / "markupsafe.toml").read_text()
    command = ("python -c 'from markupsafe import _speedups; "
               "assert str(_speedups.escape(\"<a&b>\")) == \"&lt;a&amp;b&gt;\"'")
    start = text.index("commands = [")
    (recipes / "markupsafe.toml").write_text(text[:start] + "commands = [\n    "
                                             + json.dumps(command) + ",\n]\n")
    result = run_kiln("build", recipes / "markupsafe.toml", "--backend", "hermetic", "--target",
                      "linux-aarch64", "--python", "3.11", "-o", tmp_path / "wh", "--json",
                      env={"KILN_CACHE_DIR": str(shared_cache), "KILN_NO_INDEX": "",
                           "KILN_FIND_LINKS": ""}, check=True)
    entry = json.loads(result.stdout)[0]
    wheel = Path(entry["wheel"])
    assert wheel.name == ("markupsafe-2.1.5-cp311-cp311-"
                          "manylinux2014_aarch64.manylinux_2_17_aarch64.whl")
    assert all(d.startswith("EM_AARCH64") for d in _elf_machines(wheel).values())
    assert entry["record"]["test"]["emulated"] is True
    assert entry["record"]["test"]["passed"] is True


@pytest.mark.network
def test_kiln_sysroot_unpacks_a_runnable_aarch64_python(run_kiln, shared_cache):
    result = run_kiln("sysroot", "linux-aarch64", "--python", "3.11", "--json",
                      env={"KILN_CACHE_DIR": str(shared_cache)}, check=True)
    data = json.loads(result.stdout)
    assert data["debian_suite"] == "bookworm"
    assert {p["name"] for p in data["packages"]} >= {"python3.11-minimal", "libc6", "libssl3"}
    assert all(len(p["sha256"]) == 64 for p in data["packages"])
    root = Path(data["root"])
    out = subprocess.run(["qemu-aarch64-static", "-L", root, root / "usr/bin/python3.11", "-c",
                          "import platform; print(platform.machine())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "aarch64"


@pytest.mark.network
def test_the_projects_own_suite_runs_under_qemu_and_is_counted(run_kiln, shared_cache,
                                                              tmp_path):
    """The sdist's pytest suite, copied out of it, runs against the aarch64 wheel under
    qemu: counted, with what was skipped and why, in the record."""
    from tests.integration.test_suites import PYTEST_SUITE

    files = {**cext_files(), **{k: v.replace("{result}", "-1") for k, v in PYTEST_SUITE.items()}}
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
    recipe = tmp_path / "recipes" / "cext-demo.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(sdist, extra="""
        [test]
        requires = ["pytest"]
        files = ["tests"]
        commands = ["python -m pytest tests"]
        smoke = true
    """))
    _, results = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--backend", "hermetic",
                        "--target", "linux-aarch64")
    test = results[0]["record"]["test"]
    assert test["emulated"] is True and test["passed"] is True, test
    counts = test["counts"]
    assert (counts["collected"], counts["passed"], counts["skipped"]) == (4, 3, 1), counts
    assert counts["skip_reasons"] == ["not today"]
    assert test["commands"][-1] == "python -c 'import cext_demo._speedups'"


def _online_aarch64_build(run_kiln, cache: Path, recipe: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                          module: str, *args: str) -> dict:
    """Build ``recipe`` for aarch64 with its build requirements from PyPI; check the wheel is
    hermetic, manylinux_2_17 and holds ``module`` alone, compiled for aarch64; its record."""
    online = {"KILN_NO_INDEX": "", "KILN_FIND_LINKS": f"{TEST_WHEELS}"}
    result = run_kiln("build", recipe, "-o", tmp_path / "wh", "--json", "--target",
                      "linux-aarch64", *args, env={"KILN_CACHE_DIR": str(cache), **online},
                      timeout=1200)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    record = entry["record"]
    assert record["hermetic"] is True
    assert record["repair"]["policy"] == "manylinux_2_17_aarch64"
    name = f"{module}.cpython-311-aarch64-linux-gnu.so"
    machines = _elf_machines(Path(entry["wheel"]))
    assert list(machines) == [name], machines
    assert machines[name].startswith("EM_AARCH64"), machines
    return record


SKBUILD_FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["scikit-build-core>=0.10"]
        build-backend = "scikit_build_core.build"

        [project]
        name = "skb-demo"
        version = "1.0"
    """,
    # Bounded to 4.1, so CMake's policy CMP0190 is NEW: FindPython looks for the
    # interpreter in a cross build only through CMAKE_CROSSCOMPILING_EMULATOR.
    "CMakeLists.txt": """
        cmake_minimum_required(VERSION 3.15...4.1)
        project(${SKBUILD_PROJECT_NAME} LANGUAGES C)
        find_package(Python REQUIRED COMPONENTS Interpreter Development.Module)
        Python_add_library(_native MODULE src/native.c WITH_SOABI)
        install(TARGETS _native DESTINATION skb_demo)
    """,
    "skb_demo/__init__.py": "from ._native import answer\n",
    "src/native.c": """
        #include <Python.h>
        static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
        static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
    """,
}


@pytest.mark.network
def test_a_scikit_build_core_project_cross_builds_with_findpython(run_kiln, shared_cache,
                                                                   tmp_path):
    recipe = _recipe(tmp_path, "skb-demo", SKBUILD_FILES,
                     ("python -c 'import skb_demo; assert skb_demo.answer() == 42'",))
    _online_aarch64_build(run_kiln, shared_cache, recipe, tmp_path, "skb_demo/_native",
                          "--no-test")


MESON_FILES = {
    "pyproject.toml": """
        [build-system]
        requires = ["meson-python>=0.16"]
        build-backend = "mesonpy"

        [project]
        name = "meson-demo"
        version = "1.0"
    """,
    "meson.options": "option('answer', type: 'integer', value: 0)\n",
    "meson.build": """
        project('meson-demo', 'c')
        py = import('python').find_installation(pure: false)
        py.extension_module('_native', 'src/native.c', install: true, subdir: 'meson_demo',
          c_args: ['-DANSWER=' + get_option('answer').to_string(),
                   '-DCPU="' + host_machine.cpu_family() + '"'])
        py.install_sources('meson_demo/__init__.py', subdir: 'meson_demo')
    """,
    "meson_demo/__init__.py": "from ._native import answer, cpu\n",
    "src/native.c": """
        #include <Python.h>
        static PyObject *answer(PyObject *s, PyObject *a) { return PyLong_FromLong(ANSWER); }
        static PyObject *cpu(PyObject *s, PyObject *a) { return PyUnicode_FromString(CPU); }
        static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""},
                                        {"cpu", cpu, METH_NOARGS, ""}, {NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
    """,
}


@pytest.mark.network
def test_a_meson_python_project_cross_builds_through_kilns_cross_file(run_kiln, shared_cache,
                                                                       tmp_path):
    """meson takes the target's compilers from a cross file: kiln writes one and adds it to
    the recipe's own setup-args. meson sees an aarch64 host machine, the extension is named
    and compiled for aarch64, and it runs under qemu."""
    check = 'import meson_demo as m; assert (m.answer(), m.cpu()) == (7, \\"aarch64\\")'
    recipe = _recipe(tmp_path, "meson-demo", MESON_FILES, (f"python -c '{check}'",))
    recipe.write_text(recipe.read_text().replace(
        'python = ["3.11"]', 'python = ["3.11"]\nconfig-settings = { setup-args = "-Danswer=7" }'))
    record = _online_aarch64_build(run_kiln, shared_cache, recipe, tmp_path,
                                   "meson_demo/_native")
    setup_args = record["config_settings"]["setup-args"]
    assert setup_args[0] == "-Danswer=7" and setup_args[1].startswith("--cross-file="), setup_args
    assert record["test"]["passed"] is True, record["test"]


MARCH_SETUP = """
    from setuptools import Extension, setup
    setup(name="march-demo", version="1.0", packages=["march_demo"],
          ext_modules=[Extension("march_demo._native", ["src/native.c"],
                                 extra_compile_args={flags!r})])
"""
MARCH_SOURCE = """
    #include <Python.h>
    #if !({features})
    #error "{flags} did not reach the compiler"
    #endif
    static PyMethodDef methods[] = {{{{NULL, NULL, 0, NULL}}}};
    static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods}};
    PyMODINIT_FUNC PyInit__native(void) {{ return PyModule_Create(&module); }}
"""


@pytest.mark.parametrize(("target", "flags", "features"), [
    ("linux-x86_64", ["-march=x86-64-v3", "-mtune=generic"], "defined(__AVX2__)"),
    # tuning for Haswell must not make Haswell's instructions the baseline
    ("linux-x86_64", ["-march=x86-64", "-mtune=haswell"], "!defined(__AVX2__)"),
    # nor may the build machine's CPU (this one has AVX2; a wheel's baseline has not)
    ("linux-x86_64", ["-march=native"], "!defined(__AVX2__)"),
    ("linux-aarch64", ["-march=armv8.2-a+crc+dotprod", "-mtune=cortex-a72"],
     "defined(__ARM_FEATURE_CRC32) && defined(__ARM_FEATURE_DOTPROD)"),
], ids=["x86-64-v3", "tuned-for-haswell", "native", "armv8.2-a+crc+dotprod"])
def test_gccs_cpu_names_build_with_zig(run_kiln, shared_cache, tmp_path, target, flags,
                                       features):
    """-march=x86-64-v3, -march=armv8.2-a+crc+dotprod and -mtune, as GCC spells them: zig
    knows x86_64_v3, takes an aarch64 architecture as a CPU with features
    (generic+v8_2a+crc+dotprod), and reads -mtune as the CPU to compile for. The wrappers
    translate and drop -mtune: the features asked for are on, and only those."""
    files = {"setup.py": MARCH_SETUP.format(flags=flags), "march_demo/__init__.py": "",
             "src/native.c": MARCH_SOURCE.format(flags=" ".join(flags), features=features),
             "pyproject.toml": cext_files()["pyproject.toml"]}
    recipe = _recipe(tmp_path, "march-demo", files, ())
    result, built = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--target",
                           target, "--no-test", check=False)
    assert result.returncode == 0, result.stderr
    assert built[0]["record"]["hermetic"] is True


# A library whose build compiles a generator for the build machine, runs it, and compiles
# the rest for the target: OpenBLAS's getarch, autoconf's CC_FOR_BUILD.
GENFIX_FILES = {
    "Makefile": ("all: libgenfix.a\n"
                 "gen: gen.c\n\t$(CC_FOR_BUILD) gen.c -o gen\n"
                 "genfix.h: gen\n\t./gen > genfix.h\n"
                 "genfix.o: genfix.c genfix.h\n\t$(CC) $(CFLAGS) -c genfix.c -o $@\n"
                 "libgenfix.a: genfix.o\n\t$(AR) rcs $@ genfix.o\n"
                 "install: all\n\tmkdir -p $(PREFIX)/lib $(PREFIX)/include\n"
                 "\tcp libgenfix.a $(PREFIX)/lib/\n\tcp genfix.h $(PREFIX)/include/\n"),
    "gen.c": ('#include <stdio.h>\nint main(void) { printf("#define GENFIX_ANSWER %d\\n", 42); '
              'printf("int genfix_answer(void);\\n"); return 0; }\n'),
    "genfix.c": '#include "genfix.h"\nint genfix_answer(void) { return GENFIX_ANSWER; }\n',
}
GENDEMO_FILES = {
    "pyproject.toml": cext_files()["pyproject.toml"],
    "setup.py": """
        from setuptools import Extension, setup
        setup(name="gen-demo", version="1.0", packages=["gen_demo"],
              ext_modules=[Extension("gen_demo._ext", ["src/ext.c"], libraries=["genfix"])])
    """,
    "gen_demo/__init__.py": "from ._ext import answer\n",
    "src/ext.c": """
        #include <Python.h>
        #include <genfix.h>
        static PyObject *answer(PyObject *s, PyObject *a) {
            return PyLong_FromLong(genfix_answer());
        }
        static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
    """,
}


def test_a_cross_built_library_runs_what_it_compiles_for_the_build_machine(run_kiln,
                                                                            shared_cache,
                                                                            tmp_path):
    """A [library] built for aarch64 gets the build machine's compiler (CC_FOR_BUILD, HOSTCC:
    zig's wrappers for x86-64) beside the target's: its generator runs, and its library is
    aarch64 and linked into the wheel."""
    lib = make_sdist(tmp_path / "libs", "genfix", "1.0", GENFIX_FILES)
    recipe = _recipe(tmp_path, "gen-demo", GENDEMO_FILES, (), extra=f"""
        [library.genfix]
        version = "1.0"
        url = "{lib.url}"
        sha256 = "{lib.sha256}"
        build = "make"
    """)
    result, built = _build(run_kiln, shared_cache, recipe, tmp_path / "wh", "--target",
                           "linux-aarch64", "--no-test", check=False)
    assert result.returncode == 0, result.stderr
    record = built[0]["record"]
    assert record["hermetic"] is True and record["libraries"][0]["name"] == "genfix"
    (so, described), = _elf_machines(Path(built[0]["wheel"])).items()
    assert described.startswith("EM_AARCH64"), (so, described)

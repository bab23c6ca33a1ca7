"""`kiln recipe new` reads the sdist: its own test suite, and what will fail or surprise
(unvendored Rust crates, meson-python's generated files); the smoke test's modules come
from the built wheel."""

from __future__ import annotations

from kiln.scaffold import build_notes, find_suite
from tests.conftest import make_sdist

MATURIN = """
    [build-system]
    requires = ["maturin>=1,<2"]
    build-backend = "maturin"
"""
MESONPY = """
    [build-system]
    requires = ["meson-python", "pybind11"]
    build-backend = "mesonpy"
"""
SETUPTOOLS = """
    [build-system]
    requires = ["setuptools"]
    build-backend = "setuptools.build_meta"
"""


def test_rust_without_vendored_crates_is_called_out(tmp_path):
    sdist = make_sdist(tmp_path, "rusty", "1.0", {"pyproject.toml": MATURIN,
                                                  "Cargo.toml": "[package]\nname = 'r'\n",
                                                  "Cargo.lock": "version = 3\n"})
    notes = build_notes(sdist.path)
    assert len(notes) == 1 and "kiln fetches the ones its Cargo.lock pins" in notes[0]


def test_rust_without_a_cargo_lock_is_called_out(tmp_path):
    sdist = make_sdist(tmp_path, "rusty", "1.0", {"pyproject.toml": MATURIN,
                                                  "Cargo.toml": "[package]\nname = 'r'\n"})
    notes = build_notes(sdist.path)
    assert len(notes) == 1 and "neither vendored crates nor a Cargo.lock" in notes[0]


def test_vendored_crates_are_fine(tmp_path):
    files = {"pyproject.toml": MATURIN, "Cargo.toml": "[package]\nname = 'r'\n",
             ".cargo/config.toml": '[source.crates-io]\nreplace-with = "vendored-sources"\n'
                                   '[source.vendored-sources]\ndirectory = "vendor"\n',
             "vendor/pyo3/Cargo.toml": "[package]\nname = 'pyo3'\n"}
    assert build_notes(make_sdist(tmp_path, "rusty", "1.0", files).path) == ()


def test_setuptools_rust_counts_as_rust(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "rust/Cargo.toml": "[package]\nname = 'r'\n"}
    assert "crates" in build_notes(make_sdist(tmp_path, "mixed", "1.0", files).path)[0]


def test_meson_python_gets_its_build_path_note(tmp_path):
    notes = build_notes(make_sdist(tmp_path, "mesony", "1.0", {"pyproject.toml": MESONPY}).path)
    assert len(notes) == 1 and 'skip-variations = ["build_path"]' in notes[0]


def test_a_plain_setuptools_sdist_gets_no_notes(tmp_path):
    assert build_notes(make_sdist(tmp_path, "plain", "1.0", {"pyproject.toml": SETUPTOOLS,
                                                            "setup.py": ""}).path) == ()
    broken = tmp_path / "broken-1.0.tar.gz"
    broken.write_bytes(b"not a tarball")
    assert build_notes(broken) == ()


def test_the_suite_is_found_with_its_config_and_declared_requirements(tmp_path):
    pyproject = SETUPTOOLS + """
        [project]
        name = "demo"
        [project.optional-dependencies]
        test = ["hypothesis>=6", "demo[extra]"]
        docs = ["sphinx"]
        [dependency-groups]
        tests = ["pytest-timeout"]
        [tool.pytest.ini_options]
        addopts = "-ra"
    """
    files = {"pyproject.toml": pyproject, "conftest.py": "", "setup.cfg": "[metadata]\n",
             "tests/test_a.py": "", "tests/helpers.py": "", "tests/sub/b_test.py": "",
             "requirements-test.txt": "# pinned\nnumpy>=1.20  # arrays\n-r base.txt\n"}
    found = find_suite(make_sdist(tmp_path, "demo", "1.0", files).path, "demo")
    assert found is not None
    assert (found.folder, found.test_files) == ("tests", 2)
    assert found.files == ("tests", "conftest.py", "pyproject.toml")  # setup.cfg: no pytest
    assert found.requires == ("pytest", "hypothesis>=6", "pytest-timeout", "numpy>=1.20")
    assert found.command == "python -m pytest tests"


def test_plugins_the_config_needs_includes_data_and_setup_py(tmp_path):
    setup_cfg = """
        [tool:pytest]
        addopts =
            # pytest-xdist is off:
            # --numprocesses=auto

            -ra -p pytest_cov --cov=demo
            --numprocesses=0 --strict-markers
        required_plugins = pytest-timeout>=2
    """
    files = {"pyproject.toml": SETUPTOOLS, "setup.cfg": setup_cfg, "tests/test_a.py": "",
             "data/sample.txt": "", "setup.py": "setup(tests_require=['pytz', \"six>=1\"])",
             "requirements/ci.txt": "-r pytest.txt\nrequests\n",
             "requirements/pytest.txt": "pytest-mock\n-r ci.txt\n"}
    found = find_suite(make_sdist(tmp_path, "demo", "1.0", files).path, "demo")
    assert found is not None
    assert found.files == ("tests", "setup.cfg", "data")
    assert found.requires == ("pytest", "pytest-timeout>=2", "pytest-cov", "pytest-xdist",
                              "pytest-mock", "requests", "pytz", "six>=1")


def test_tests_inside_the_package_run_from_the_installed_wheel(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "src/demo/__init__.py": "",
             "src/demo/tests/__init__.py": "", "src/demo/tests/test_core.py": "",
             "numpyish/testing/__init__.py": "", "numpyish/testing/test_x.py": ""}
    found = find_suite(make_sdist(tmp_path, "demo", "1.0", files).path, "demo")
    assert found is not None
    assert (found.folder, found.package, found.files) == ("src/demo/tests", "demo.tests", ())
    assert found.command == "python -m pytest --pyargs demo.tests"


def test_a_suite_one_folder_down_beside_the_bindings(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "py/tests/test_solver.py": "", "py/src/x.cpp": "",
             "kiwi/tests/test_not_python.py": "", "kiwi/__init__.py": ""}
    found = find_suite(make_sdist(tmp_path, "kiwisolver", "1.0", files).path, "kiwisolver")
    assert found is not None
    assert (found.folder, found.files) == ("py/tests", ("py/tests",))
    assert found.command == "python -m pytest py/tests"


def test_no_suite_without_test_modules(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "tests/data.txt": "", "test/helpers.py": "",
             "demo/__init__.py": ""}
    assert find_suite(make_sdist(tmp_path, "demo", "1.0", files).path, "demo") is None


def _wheel(tmp_path, members):
    import zipfile

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name in members:
            zf.writestr(name, "")
    return path


def test_the_smoke_test_imports_compiled_modules_not_namespaces_or_stubs(tmp_path):
    from kiln.wheeltest import compiled_modules, importable_packages, smoke_command

    wheel = _wheel(tmp_path, ["zope/interface/__init__.py",
                              "zope/interface/_zope_interface_coptimizations.cpython-311-"
                              "x86_64-linux-gnu.so", "rapidjson.cpython-311-x86_64-linux-gnu.so",
                              "rapidjson-stubs/__init__.pyi", "demo.libs/libz-1a2b.so.1",
                              "demo-1.0.data/scripts/tool", "demo-1.0.dist-info/METADATA"])
    assert compiled_modules(wheel) == ("rapidjson",
                                       "zope.interface._zope_interface_coptimizations")
    python, flag, script = smoke_command(wheel)  # type: ignore[misc]
    assert (python, flag) == ("python", "-c")
    assert "['rapidjson', 'zope.interface._zope_interface_coptimizations']" in script
    compile(script, "smoke", "exec")  # a script Python reads
    pure = _wheel(tmp_path / "pure", ["zope/event/__init__.py", "pkg/__init__.py", "single.py",
                                      "pkg-stubs/__init__.pyi", "demo-1.0.dist-info/RECORD"])
    assert importable_packages(pure) == ("pkg", "single")

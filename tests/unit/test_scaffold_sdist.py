"""`kiln recipe new` reads the sdist: the import name for its smoke test, and what will fail
or surprise (unvendored Rust crates, meson-python's generated files)."""

from __future__ import annotations

from kiln.scaffold import build_notes, guess_imports
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
    assert len(notes) == 1 and "does not vendor its crates" in notes[0]


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


def test_a_maturin_project_is_imported_by_its_module_name(tmp_path):
    cargo = "[package]\nname = 'rpds-py'\n[lib]\nname = 'rpds'\n"
    files = {"pyproject.toml": MATURIN, "Cargo.toml": cargo, "noxfile.py": "",
             "rpds.pyi": ""}
    assert guess_imports(make_sdist(tmp_path / "a", "rpds-py", "1.0", files).path,
                         "rpds-py") == ("rpds",)
    named = MATURIN + '\n[tool.maturin]\nmodule-name = "pkg._native"\n'
    files = {"pyproject.toml": named, "Cargo.toml": cargo}
    assert guess_imports(make_sdist(tmp_path / "b", "pkg", "1.0", files).path,
                         "pkg") == ("pkg",)


def test_helper_scripts_are_not_taken_for_the_package(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "noxfile.py": "", "conftest.py": "",
             "setup.py": "", "fastthing.py": ""}
    assert guess_imports(make_sdist(tmp_path, "fast-thing", "1.0", files).path,
                         "fast-thing") == ("fastthing",)


def test_egg_info_top_level_wins(tmp_path):
    files = {"pyproject.toml": SETUPTOOLS, "src/crypto_pkg/__init__.py": "",
             "pycryptodome.egg-info/top_level.txt": "Crypto\n_private\n"}
    assert guess_imports(make_sdist(tmp_path, "pycryptodome", "1.0", files).path,
                         "pycryptodome") == ("Crypto",)

"""kiln's description of CPython: one include folder's name for every X.Y."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kiln.toolchain import cpython
from kiln.toolchain.targets import Target

MINORS = ("3.10", "3.11", "3.12", "3.13")


def test_every_cpython_names_the_same_include_folder():
    made = {minor: cpython.config_vars(minor, "x86_64", "") for minor in MINORS}
    for minor, values in made.items():
        assert values["INCLUDEPY"] == values["CONFINCLUDEPY"] == "/kiln/python/include/python"
        assert values["PY_CPPFLAGS"] == "-I/kiln/python/include/python"
        assert values["VERSION"] == minor  # what differs by version still does
    # The compile flags too: one spelling (3.12's -fno-strict-overflow, which implies
    # clang's -fwrapv), so a compile without Python.h is the same compile for every X.Y.
    for name in ("CFLAGS", "OPT", "BASECFLAGS", "PY_CFLAGS", "PY_CORE_CFLAGS", "CCSHARED"):
        assert len({str(values[name]) for values in made.values()}) == 1, name
    assert "-fno-strict-overflow" in str(made["3.11"]["CFLAGS"])


@pytest.mark.parametrize("minor", MINORS)
def test_extensions_link_no_libpython(minor):
    """As on every Linux CPython since 3.8: meson reads a missing LIBPYTHON as "link it",
    looks for libpython3.X.so, and finds no python3 dependency."""
    values = cpython.config_vars(minor, "x86_64", "")
    assert values["LIBPYTHON"] == ""
    assert values["Py_ENABLE_SHARED"] == 0


def _fake_package(unpacked: Path, minor: str) -> None:
    include = unpacked / "usr" / "include"
    (include / f"python{minor}").mkdir(parents=True)
    (include / f"python{minor}" / "Python.h").write_text(f"/* CPython {minor} */\n")
    (include / f"python{minor}" / "pyconfig.h").write_text('#include <x86_64-linux-gnu/...>\n')
    (include / "x86_64-linux-gnu" / f"python{minor}").mkdir(parents=True)
    (include / "x86_64-linux-gnu" / f"python{minor}" / "pyconfig.h").write_text(
        "#define HAVE_GCC_ASM_FOR_X64 1\n")


def test_the_headers_are_also_at_the_shared_folder_and_an_older_layout_is_remade(
        tmp_path, monkeypatch):
    minor = "3.12"
    reference = tmp_path / "reference"
    _fake_package(reference / "deb", minor)
    cpython.assemble_headers(reference / "deb", minor, "x86_64", reference / "made")
    real = cpython.pin_for(minor)
    pin = cpython.HeaderPin(**{**real.__dict__, "trees": (
        ("aarch64", "0" * 64), ("x86_64", cpython.tree_digest(reference / "made")))})
    monkeypatch.setattr(cpython, "pin_for", lambda _: pin)
    monkeypatch.setattr(cpython, "fetch_package", lambda *a, **k: tmp_path / "x.deb")
    monkeypatch.setattr(cpython.debian, "unpack_debs",
                        lambda debs, root, **k: _fake_package(root, minor))
    target = Target("linux-x86_64", "linux", "x86_64")

    made = cpython.prepare(minor, target, tmp_path / "cache")
    shared = made.include / cpython.SHARED_INCLUDE
    assert shared.is_symlink() and (shared / "Python.h").read_text() == "/* CPython 3.12 */\n"
    assert (made.include / f"python{minor}" / "Python.h").is_file()
    assert made.headers_sha256 == pin.tree("x86_64")
    assert "'INCLUDEPY': '/kiln/python/include/python'" in made.sysconfig_text

    # A description an older kiln made (no layout in its manifest) is not taken as this one.
    old = made.root.with_name(made.root.name.removesuffix(f"-l{cpython.LAYOUT}"))
    shutil.copytree(made.root, old, symlinks=True)
    manifest = old / cpython.MANIFEST
    manifest.write_text(manifest.read_text().replace(f'"layout": {cpython.LAYOUT}', '"x": 0'))
    assert cpython._load(old, pin, "x86_64") is None
    assert cpython._load(made.root, pin, "x86_64") is not None

    # The sysconfig follows the code that describes CPython, not what an earlier kiln kept.
    real_vars = cpython.config_vars
    monkeypatch.setattr(cpython, "config_vars",
                        lambda *a: {**real_vars(*a), "KILN_TEST_FLAG": "changed"})
    again = cpython.prepare(minor, target, tmp_path / "cache")
    assert again.root == made.root
    assert "'KILN_TEST_FLAG': 'changed'" in again.sysconfig_text
    assert again.sysconfig_sha256 != made.sysconfig_sha256


@pytest.mark.parametrize("minor", MINORS)
def test_the_sysconfig_text_names_no_versioned_include_folder(minor):
    text = cpython.render_sysconfigdata(cpython.config_vars(minor, "x86_64", ""), "test")
    assert f"include/python{minor}" not in text

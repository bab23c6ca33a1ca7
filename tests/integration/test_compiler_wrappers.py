"""kiln's compiler wrappers, run for real."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kiln.toolchain.compilers import wrap_compilers


def test_a_shared_object_always_names_the_c_library(tmp_path):
    """Debian's gcc links --as-needed; an extension that calls no libc function would then
    record no libc, and auditwheel could not tell which libc the wheel is for."""
    if shutil.which("gcc") is None or shutil.which("readelf") is None:
        pytest.skip("needs gcc and readelf")
    wrap_compilers(tmp_path, str(tmp_path), {}, cc="gcc", cxx="g++", flags=["-O2"])
    (tmp_path / "pure.c").write_text("int add(int a, int b) { return a + b; }\n")
    for args, out in ((["-fPIC", "-shared"], "pure.so"), (["-fPIC", "-c"], "pure.o")):
        subprocess.run([tmp_path / "kiln-cc", *args, "pure.c", "-o", out], cwd=tmp_path,
                       check=True)
    dynamic = subprocess.run(["readelf", "-d", tmp_path / "pure.so"], capture_output=True,
                             text=True, check=True).stdout
    assert "Shared library: [libc.so.6]" in dynamic
    assert (tmp_path / "pure.o").is_file()

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


CXX_SOURCE = """
#include <string>
#include <vector>
extern "C" int joined(int n) {
    std::vector<std::string> v(n, "ab");
    std::string s;
    for (auto &x : v) s += x;
    return (int)s.size();
}
"""


def test_the_c_compiler_hands_cpp_to_the_cpp_compiler(tmp_path):
    """setuptools compiles and links every extension with CC unless it says language="c++"
    (kiwisolver does not): C++ sources and the links of their objects go to CXX, as gcc does
    by extension; zig's cc would miss libc++'s headers and its link libc++."""
    if shutil.which("gcc") is None or shutil.which("g++") is None or shutil.which("readelf") \
            is None:
        pytest.skip("needs gcc, g++ and readelf")
    (tmp_path / "bin").mkdir()
    (tmp_path / "real").mkdir()
    # "C compiler" that cannot compile C++ headers: as zig cc would fail on <vector>.
    fake_cc = tmp_path / "real" / "c-only"
    fake_cc.write_text('#!/bin/sh\nfor a do case "$a" in *.cpp) echo "fatal error: '
                       "'vector' file not found\"; exit 1;; esac; done\nexec gcc \"$@\"\n")
    fake_cc.chmod(0o755)
    wrap_compilers(tmp_path / "bin", str(tmp_path / "bin"), {}, cc=str(fake_cc), cxx="g++",
                   flags=["-O2"])
    cc = tmp_path / "bin" / "kiln-cc"
    (tmp_path / "joined.cpp").write_text(CXX_SOURCE)
    (tmp_path / "plain.c").write_text("int one(void) { return 1; }\n")
    subprocess.run([cc, "-fPIC", "-c", "joined.cpp", "-o", "joined.o"], cwd=tmp_path, check=True)
    subprocess.run([cc, "-fPIC", "-c", "plain.c", "-o", "plain.o"], cwd=tmp_path, check=True)
    assert (tmp_path / "joined.o.kiln-c++").is_file()
    assert not (tmp_path / "plain.o.kiln-c++").exists()
    subprocess.run([cc, "-shared", "joined.o", "plain.o", "-o", "both.so"], cwd=tmp_path,
                   check=True)
    assert not (tmp_path / "both.so.kiln-c++").exists()  # never beside what gets packaged
    dynamic = subprocess.run(["readelf", "-d", tmp_path / "both.so"], capture_output=True,
                             text=True, check=True).stdout
    assert "libstdc++" in dynamic and "libc.so.6" in dynamic
    # a C-only link stays with the C compiler
    subprocess.run([cc, "-shared", "plain.o", "-o", "plain.so"], cwd=tmp_path, check=True)
    plain = subprocess.run(["readelf", "-d", tmp_path / "plain.so"], capture_output=True,
                           text=True, check=True).stdout
    assert "libstdc++" not in plain


def test_a_copy_compiled_in_a_random_temporary_folder_is_mapped(tmp_path):
    """propcache 0.2's backend compiles a copy of its sources in /tmp/.tmp-…-XXXXXXXX: the
    random name would reach the debug info, so each such folder is mapped to /kiln/tmp."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    wrap_compilers(tmp_path, str(tmp_path), {}, cc="gcc", cxx="g++", flags=["-g"])
    temp = tmp_path / "tmp"
    objects = []
    for name in (".tmp-demo-pep517-ab12cd34", ".tmp-demo-pep517-ef56gh78"):
        copy = temp / name / "demo"
        copy.mkdir(parents=True)
        (copy / "x.c").write_text("int f(int a) { return a * 2; }\n")
        out = tmp_path / f"{name}.o"
        subprocess.run([tmp_path / "kiln-cc", "-fPIC", "-c", copy / "x.c", "-o", out],
                       cwd=copy, check=True, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(temp)})
        data = out.read_bytes()
        assert name.encode() not in data and b"/kiln/tmp/demo/x.c" in data
        objects.append(data)
    assert objects[0] == objects[1]  # the same bytes from two random folders


def test_the_cross_emulator_runs_the_builds_python_and_no_target_program(tmp_path):
    """CMake's FindPython asks CMAKE_CROSSCOMPILING_EMULATOR to run the interpreter; a
    try_run asks it to run a program compiled for the target, which a cross build must not."""
    import re
    import sys

    from kiln.backends.hermetic import ran_target_binary
    from kiln.toolchain.targets import TARGETS
    from kiln.toolchain.zig import EMULATOR, ZigLayout, write_wrappers

    layout = ZigLayout(str(tmp_path / "zig"), str(tmp_path / "cache"), str(tmp_path / "bin"))
    folder = write_wrappers(tmp_path / "bin", layout, "0.15.2", "aarch64-linux-gnu.2.17",
                            TARGETS["linux-aarch64"], True)
    emulator = folder / EMULATOR
    python = tmp_path / "venv" / "bin" / f"python3.{sys.version_info.minor}"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    ran = subprocess.run([emulator, python, "-c", "print(6 * 7)"], capture_output=True,
                         text=True)
    assert ran.returncode == 0 and ran.stdout == "42\n", ran.stderr
    program = tmp_path / "cmTC_1a2b3"  # what try_run builds and runs
    shutil.copy("/bin/true", program)
    refused = subprocess.run([emulator, program], capture_output=True, text=True)
    assert refused.returncode == 126
    log = tmp_path / "build.log"
    log.write_text(refused.stderr)
    assert ran_target_binary(log), refused.stderr
    assert re.search(r"cmTC_1a2b3 was compiled for the target", refused.stderr)

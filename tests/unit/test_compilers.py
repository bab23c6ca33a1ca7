"""Compiler wrappers: the prefix maps reach every compile, nothing is shell-expanded."""

from __future__ import annotations

import shlex

from kiln.toolchain.compilers import wrap_compilers


def test_wrappers_call_the_right_compiler_with_the_flags(tmp_path):
    env = {"CXX": "/opt/zig/c++ -target aarch64-linux-gnu.2.17"}
    out = wrap_compilers(tmp_path, "/kiln/env/bin", env, cc="gcc -pthread", cxx="g++ -pthread",
                         flags=["-ffile-prefix-map=/kiln-rebuild/src=/kiln/src"])
    assert out == {"CC": "/kiln/env/bin/kiln-cc", "CXX": "/kiln/env/bin/kiln-c++"}
    cc = (tmp_path / "kiln-cc").read_text().splitlines()[-1]
    cxx = (tmp_path / "kiln-c++").read_text().splitlines()[-1]
    assert shlex.split(cc) == ["exec", "gcc", "-pthread",
                               "-ffile-prefix-map=/kiln-rebuild/src=/kiln/src", "$@"]
    assert shlex.split(cxx)[1:4] == ["/opt/zig/c++", "-target", "aarch64-linux-gnu.2.17"]
    assert (tmp_path / "kiln-cc").stat().st_mode & 0o111


def test_odd_characters_stay_literal(tmp_path):
    wrap_compilers(tmp_path, "/b", {"CC": "cc"}, cc="x", cxx="y", flags=["-DX=$(whoami);`id`"])
    line = (tmp_path / "kiln-cc").read_text().splitlines()[-1]
    assert "'-DX=$(whoami);`id`'" in line



def test_macos_wrappers_add_no_gnu_linker_flags(tmp_path):
    wrap_compilers(tmp_path, "/b", {}, cc="clang", cxx="clang++", flags=["-O2"],
                   link_libc=False)
    text = (tmp_path / "kiln-cc").read_text()
    assert "--no-as-needed" not in text and "-lc" not in text
    assert shlex.split(text.splitlines()[-1]) == ["exec", "clang", "-O2", "$@"]
    linux = tmp_path / "linux"
    linux.mkdir()
    wrap_compilers(linux, "/b", {}, cc="gcc", cxx="g++", flags=[])
    assert "-Wl,--no-as-needed -lc" in (linux / "kiln-cc").read_text()

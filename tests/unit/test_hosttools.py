"""Which of the host's programs a hermetic build must not see, by name."""

from __future__ import annotations

from kiln.toolchain.hosttools import BUILD_TOOLS, COMPILERS, _matching


def test_the_names_kiln_hides_and_the_ones_it_leaves(tmp_path):
    names = ["gcc", "gcc-12", "x86_64-linux-gnu-gcc-12", "clang++-17", "ld.gold", "cmake",
             "python3.11-config", "gccgo-12x", "gzip", "ldd", "ld.so", "cc1.so", "ninja"]
    for name in names:
        (tmp_path / name).write_text("")
    found = {p.name for p in _matching(COMPILERS + BUILD_TOOLS, dirs=(str(tmp_path),))}
    assert found == {"gcc", "gcc-12", "x86_64-linux-gnu-gcc-12", "clang++-17", "ld.gold",
                     "cmake", "python3.11-config", "ninja"}
    assert {p.name for p in _matching(BUILD_TOOLS, dirs=(str(tmp_path),))} == {
        "cmake", "python3.11-config", "ninja"}

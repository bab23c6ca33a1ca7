"""The meson cross file kiln hands meson-python for another architecture."""

from __future__ import annotations

import configparser

import pytest

from kiln.toolchain.meson import cross_file, with_setup_arg
from kiln.toolchain.targets import TARGETS

ENV = {"CC": "/kiln/env/bin/kiln-cc", "CXX": "/kiln/env/bin/kiln-c++",
       "AR": "/kiln/toolchain/bin/ar", "CFLAGS": "-O2"}


def _read(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


def test_the_cross_file_names_the_builds_compilers_and_the_target_machine():
    parsed = _read(cross_file(TARGETS["linux-aarch64"], ENV, "/kiln/env/bin/python"))
    assert dict(parsed["binaries"]) == {"c": "'/kiln/env/bin/kiln-cc'",
                                        "cpp": "'/kiln/env/bin/kiln-c++'",
                                        "ar": "'/kiln/toolchain/bin/ar'",
                                        "python": "'/kiln/env/bin/python'"}
    assert dict(parsed["host_machine"]) == {"system": "'linux'", "cpu_family": "'aarch64'",
                                            "cpu": "'aarch64'", "endian": "'little'"}
    assert parsed["properties"]["needs_exe_wrapper"] == "true"
    assert parsed["properties"]["longdouble_format"] == "'IEEE_QUAD_LE'"


def test_a_library_builds_pkg_config_is_the_targets_and_quotes_are_escaped():
    text = cross_file(TARGETS["linux-x86_64"], {**ENV, "PKG_CONFIG": "/kiln/tools/it's"},
                      "/p")
    assert "pkg-config = '/kiln/tools/it\\'s'" in text
    assert "longdouble_format = 'INTEL_EXTENDED_16_BYTES_LE'" in text


def test_no_cross_file_for_a_target_kiln_does_not_describe():
    with pytest.raises(ValueError, match="linux-ppc64le"):
        cross_file(TARGETS["linux-ppc64le"], ENV, "/p")


@pytest.mark.parametrize(("given", "expected"), [
    ({}, {"setup-args": "--cross-file=/x"}),
    ({"setup-args": "-Dblas=openblas"}, {"setup-args": ["-Dblas=openblas", "--cross-file=/x"]}),
    ({"setup-args": ["-Da=1", "-Db=2"], "build-dir": "build"},
     {"setup-args": ["-Da=1", "-Db=2", "--cross-file=/x"], "build-dir": "build"}),
])
def test_the_cross_file_follows_the_recipes_own_setup_args(given, expected):
    assert with_setup_arg(given, "--cross-file=/x") == expected

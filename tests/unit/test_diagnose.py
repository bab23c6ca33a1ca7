"""A failed build's log, read for the line that matters and what to do about it."""

from __future__ import annotations

import pytest

from kiln.diagnose import explain, first_error

EARLIER = "+ uv pip install --require-hashes -r build-requirements.txt\nerror: an old one\n"


def _log(tmp_path, body: str):
    log = tmp_path / "build.log"
    log.write_text(EARLIER + "+ python _in_process.py build_wheel /tmp/x\n" + body
                   + "Error: command ['maturin', 'pep517'] returned non-zero exit status 1\n")
    return log


@pytest.mark.parametrize(("body", "line", "hint"), [
    ("src/x.c:3:10: fatal error: libxml/xpath.h: No such file or directory\n",
     "fatal error: libxml/xpath.h: No such file or directory", "apt-file search libxml/xpath.h"),
    ("/usr/bin/ld: cannot find -lxslt: No such file or directory\n",
     "cannot find -lxslt", "libxslt"),
    ("Run-time dependency libffi found: NO\nmeson.build:4:0: ERROR: Dependency 'libffi' "
     "not found\n", "ERROR: Dependency 'libffi' not found", "pkg-config knows no libffi"),
    ('../cairo/meson.build:31:12: ERROR: Dependency "cairo" not found (tried pkg-config and '
     'cmake)\n', 'ERROR: Dependency "cairo" not found', "pkg-config knows no cairo"),
    ("Trying pkg-config --exists mysqlclient\nCommand 'pkg-config --exists mysqlclient' "
     "returned non-zero exit status 1.\nCommand 'pkg-config --exists mariadb' returned "
     "non-zero exit status 1.\nException: Can not find valid pkg-config name.\n",
     "pkg-config --exists mysqlclient", "none of mysqlclient, mariadb"),
    ("error: no matching package named `pyo3` found\nlocation searched: crates.io index\n",
     "error: no matching package named `pyo3` found", "a Rust crate that no Cargo.lock"),
    ("checking whether build environment is sane... configure: error: newly created file is "
     "older than distributed files!\n", "newly created file is older than distributed files",
     'skip-variations = ["time"]'),
    ("error: libhdf5.so: cannot open shared object file: No such file or directory\n"
     "error: Unable to load dependency HDF5, make sure HDF5 is installed properly\n",
     "libhdf5.so: cannot open shared object file", "libhdf5 is not installed"),
    ("error: can't find Rust compiler\n", "error: can't find Rust compiler", "needs Rust"),
    ("urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name "
     "resolution>\n", "Temporary failure in name resolution", "network"),
    ("kiln: /usr/bin/cmake is the host's, and a hermetic build runs only pinned tools (…)\n"
     "error: cmake failed\n", "error: cmake failed", "[build] requires"),
    ("subprocess.CalledProcessError: Command '['/kiln-rebuild/a/decoys/cmake', 'deps']' "
     "returned non-zero exit status 126.\n", "'/kiln-rebuild/a/decoys/cmake'",
     "add it to the recipe's [build] requires"),
])
def test_known_causes_are_named_with_what_to_do(tmp_path, body, line, hint):
    cause = explain(_log(tmp_path, body))
    assert cause is not None
    assert line in cause.line
    assert cause.hint is not None and hint in cause.hint


def test_an_unknown_error_keeps_its_line_without_a_hint(tmp_path):
    cause = explain(_log(tmp_path, "compiling\nsrc/y.c:9: error: expected ';'\n"))
    assert cause is not None
    assert cause.line == "src/y.c:9: error: expected ';'" and cause.hint is None


def test_only_the_last_command_counts(tmp_path):
    log = _log(tmp_path, "all went well\n")
    assert explain(log) is None
    assert first_error(log) == ""
    assert first_error(tmp_path / "missing.log") == ""


def test_a_build_error_ends_with_the_cause_not_a_whole_compiler_command(tmp_path):
    from kiln.errors import BuildError
    from kiln.pep517 import _explained

    log = _log(tmp_path, "Modules/common.h:9:10: fatal error: lber.h: No such file or "
                         "directory\n")
    command = "error: Command '['/kiln/env/bin/kiln-cc', " + "'-DX', " * 200 + "]' failed"
    exc = BuildError(f"ldap 3.4 (cp312, linux-x86_64): backend hook build_wheel failed "
                     f"(exit 1): {command}", log=log)
    better = _explained(exc, log)
    assert better.message.startswith("ldap 3.4 (cp312, linux-x86_64): backend hook build_wheel "
                                     "failed (exit 1): error: Command")
    assert better.message.endswith("; the log says: fatal error: lber.h: No such file or "
                                   "directory")
    assert len(better.message) < 400
    assert better.hint is not None and "lber.h" in better.hint
    assert better.log == log

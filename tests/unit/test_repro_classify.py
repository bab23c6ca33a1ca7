"""How a difference's strings are read into a cause."""

from __future__ import annotations

from kiln.repro import _classify

HINTS = ["/kiln/src", "/kiln-rebuild/a/deeper/path/src"]


def test_a_backend_compiling_in_a_random_tmp_folder_is_a_temporary_name():
    # frozenlist's backend builds in /tmp/.tmp-frozenlist-pep517-XXXXXXXX
    cause = _classify(["/tmp/.tmp-frozenlist-pep517-ab12cd34/frozenlist/_frozenlist.c"],
                      ["/tmp/.tmp-frozenlist-pep517-ef56gh78/frozenlist/_frozenlist.c"], HINTS)
    assert cause == "temp-name"


def test_the_build_folder_is_a_build_path():
    assert _classify(["/kiln/src/pkg-1.0"], ["/kiln-rebuild/a/deeper/path/src/pkg-1.0"],
                     HINTS) == "build-path"


def test_reordered_set_is_hash_order():
    assert _classify(["NAMES = 'b a c'"], ["NAMES = 'a c b'"], HINTS) == "hash-order"


def test_dates_are_timestamps():
    assert _classify(['BUILT = "2026-11-25 10:00:01"'], ['BUILT = "2027-12-27 10:00:01"'],
                     HINTS) == "timestamp"


def test_anything_else_is_other():
    assert _classify(["value = 1"], ["value = 2"], HINTS) == "other"


def test_pyc_files_that_differ_are_compiled_bytecode_unless_a_path_explains_them():
    from kiln.repro import _content_diff

    header = b"\x6f\x0d\x0d\x0a" + b"\x00" * 12
    a = header + b"\xe3\x00\x00\x00)\x03\xda\x05alpha\xda\x04beta\xda\x05gamma\xff"
    b = header + b"\xe3\x00\x00\x00)\x03\xda\x04beta\xda\x05gamma\xda\x05alpha\xff"
    found = _content_diff("pkg/__pycache__/mod.cpython-310.opt-1.pyc", a, b, HINTS)
    assert found.cause == "bytecode" and "installers compile" in found.suggestion
    c = header + b"\xe3/kiln/src/pkg-1.0/pkg/mod.py\x00"
    d = header + b"\xe3/kiln-rebuild/a/deeper/path/src/pkg-1.0/pkg/mod.py\x00"
    assert _content_diff("pkg/__pycache__/mod.cpython-310.pyc", c, d, HINTS).cause == \
        "build-path"
    # the same bytes anywhere else keep their ordinary cause
    assert _content_diff("pkg/data.bin", a, b, HINTS).cause == "other"


def test_a_path_only_in_debug_info_gets_advice_about_the_compiler(monkeypatch):
    """A build folder written by the compiler into debug info cannot be "made relative":
    the advice names the compiler's map and -g0 instead."""
    from kiln import repro

    a = {".text": b"code", ".debug_str": b"\0/kiln/src/pkg-1.0\0"}
    b = {".text": b"code", ".debug_str": b"\0/kiln-rebuild/a/deeper/path/src/pkg-1.0\0"}
    monkeypatch.setattr(repro, "_elf_sections", lambda data: a if data == b"A" else b)
    found = repro._elf_diff("pkg/_x.so", b"A", b"B", HINTS)
    assert found.cause == "build-path"
    assert "only debug info differs" in found.suggestion and "-g0" in found.suggestion
    assert "make the path relative" not in found.suggestion
    # the same path in the code itself: the package writes it, and can make it relative
    a[".rodata"], b[".rodata"] = a.pop(".debug_str"), b.pop(".debug_str")
    found = repro._elf_diff("pkg/_x.so", b"A", b"B", HINTS)
    assert found.cause == "build-path" and "make the path relative" in found.suggestion

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

"""A finished build is served only to the kiln whose record it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln import cache, record


def test_the_key_changes_with_the_code_that_defines_a_record(monkeypatch, tmp_path):
    before = cache.BuildCache.key("build-id", tests=["t"])
    assert cache.BuildCache.key("build-id", tests=["t"]) == before
    # The digest follows record.py's bytes: another definition, another digest.
    edited = tmp_path / "record.py"
    edited.write_bytes(Path(record.__file__).read_bytes() + b"\n# a new field\n")
    monkeypatch.setattr(record, "__file__", str(edited))
    new_schema = cache.record_schema.__wrapped__()
    assert new_schema != cache.record_schema()
    monkeypatch.setattr(cache, "record_schema", lambda: new_schema)
    assert cache.BuildCache.key("build-id", tests=["t"]) != before


@pytest.mark.parametrize("tests", [["t"], "no tests"])
def test_the_key_still_follows_its_inputs(tests):
    assert cache.BuildCache.key("a", tests=tests) != cache.BuildCache.key("b", tests=tests)

"""The index state's schema: an older state is brought forward, not refused."""

from __future__ import annotations

import sqlite3

import pytest

from kiln.errors import IndexBuildError
from kiln.index.model import WheelEntry
from kiln.index.state import SCHEMA_VERSION, IndexState

_V1_COLUMNS = [c for c in WheelEntry._fields
               if c not in ("hermetic", "record_file", "builders", "tests")]
_V2_COLUMNS = [*_V1_COLUMNS, "hermetic"]


def test_a_version_1_state_gains_the_hermetic_column_and_rereads_records(tmp_path):
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(f"CREATE TABLE wheels ({', '.join(_V1_COLUMNS)})")
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    row = ["demo-1.0-py3-none-any.whl", "demo", "1.0", 10, 5, "a" * 64, None, "b" * 64,
           "2026-01-01T00:00:00.000000Z", "files/demo/demo-1.0-py3-none-any.whl", 1, "id",
           "12:34", "", 0]
    db.execute(f"INSERT INTO wheels VALUES ({', '.join('?' * len(_V1_COLUMNS))})", row)
    db.commit()
    db.close()
    state = IndexState(path)
    try:
        assert state.get("schema") == SCHEMA_VERSION
        entry = state.wheel("demo-1.0-py3-none-any.whl")
        assert entry.hermetic is None
        assert entry.record_sig == ""  # so the next run reads the build record again
        assert entry.reproducible == 1
        assert not entry.record_file and entry.builders == ""
    finally:
        state.close()


def test_a_version_2_state_gains_the_record_and_builders_columns(tmp_path):
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(f"CREATE TABLE wheels ({', '.join(_V2_COLUMNS)})")
    db.execute("INSERT INTO meta VALUES ('schema', '2')")
    row = ["demo-1.0-py3-none-any.whl", "demo", "1.0", 10, 5, "a" * 64, None, "b" * 64,
           "2026-01-01T00:00:00.000000Z", "files/demo/demo-1.0-py3-none-any.whl", 1, "id",
           "12:34", "", 0, 1]
    db.execute(f"INSERT INTO wheels VALUES ({', '.join('?' * len(_V2_COLUMNS))})", row)
    db.commit()
    db.close()
    state = IndexState(path)
    try:
        assert state.get("schema") == SCHEMA_VERSION
        entry = state.wheel("demo-1.0-py3-none-any.whl")
        assert entry.hermetic == 1 and not entry.record_file and entry.builders == ""
        assert entry.record_sig == ""  # so the next run publishes the build record
    finally:
        state.close()


def test_a_version_3_state_gains_the_tests_column(tmp_path):
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    columns = [c for c in WheelEntry._fields if c != "tests"]
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(f"CREATE TABLE wheels ({', '.join(columns)})")
    db.execute("INSERT INTO meta VALUES ('schema', '3')")
    row = ["demo-1.0-py3-none-any.whl", "demo", "1.0", 10, 5, "a" * 64, None, "b" * 64,
           "2026-01-01T00:00:00.000000Z", "files/demo/demo-1.0-py3-none-any.whl", 1, "id",
           "12:34", "", 0, 1, 1, "[]"]
    db.execute(f"INSERT INTO wheels VALUES ({', '.join('?' * len(columns))})", row)
    db.commit()
    db.close()
    state = IndexState(path)
    try:
        assert state.get("schema") == SCHEMA_VERSION
        entry = state.wheel("demo-1.0-py3-none-any.whl")
        assert entry.tests == "" and entry.builders == "[]"
        assert entry.record_sig == ""  # so the next run reads the record's tests
    finally:
        state.close()


def test_a_state_from_a_newer_kiln_is_refused(tmp_path):
    path = tmp_path / "state.sqlite"
    IndexState(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', '99')")
    db.commit()
    db.close()
    with pytest.raises(IndexBuildError, match="version 99"):
        IndexState(path)

"""Pruning kiln's cache: least recently used first, manifests never outliving their objects,
never under a running build."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from kiln.cache import BuildCache
from kiln.errors import UsageError
from kiln.prune import (
    DAY,
    MANIFEST_MARGIN,
    Bound,
    Busy,
    Entry,
    bound_from_env,
    in_use,
    parse_age,
    parse_size,
    plan,
    prune,
)
from kiln.record import BuildRecord

NOW = 2_000_000_000.0


def test_sizes_and_ages_parse_and_bad_ones_name_their_source():
    assert parse_size("10G", "x") == 10 * 1024 ** 3
    assert parse_size("500MiB", "x") == 500 * 1024 ** 2
    assert parse_size("1.5k", "x") == 1536
    assert parse_size("none", "x") is None
    assert parse_age("30d", "x") == 30 * DAY
    assert parse_age("12h", "x") == 12 * 3600
    assert parse_age("off", "x") is None
    with pytest.raises(UsageError, match="KILN_CACHE_MAX_SIZE: '10 apples' is not a size"):
        bound_from_env({"KILN_CACHE_MAX_SIZE": "10 apples"})
    with pytest.raises(UsageError, match="KILN_CACHE_MAX_AGE: '30' is not an age"):
        bound_from_env({"KILN_CACHE_MAX_AGE": "30"})
    assert bound_from_env({}) == Bound()


def _entries() -> list[Entry]:
    p = Path("/c")
    return [
        Entry("objects", p / "o1", 100, NOW - 10 * DAY),
        Entry("objects", p / "o2", 100, NOW - 1 * DAY),
        Entry("objects", p / "m1", 1, NOW - 10 * DAY, manifest=True),
        Entry("objects", p / "m2", 1, NOW - 3600, manifest=True),
        Entry("builds", p / "b-old", 50, NOW - 40 * DAY),
        Entry("libraries", p / "l", 50, NOW - 2 * DAY),
    ]


def _names(entries: list[Entry]) -> set[str]:
    return {e.path.name for e in entries}


def test_age_removes_only_what_was_not_used_within_it():
    assert _names(plan(_entries(), Bound(max_size=None, max_age=30 * DAY), NOW)) == {"b-old"}
    assert plan(_entries(), Bound(max_size=None, max_age=None), NOW) == []


def test_size_removes_least_recently_used_first_across_areas():
    # 302 bytes; at most 160: b-old (40 days) and o1 (10 days) go, with o1's manifest.
    doomed = plan(_entries(), Bound(max_size=160, max_age=None), NOW)
    assert _names(doomed) == {"b-old", "o1", "m1"}


def test_a_manifest_outlives_no_object_used_within_the_margin_before_it():
    # Down to 60 bytes, o2 (a day ago) goes: so does every manifest used up to two days
    # after it, m2 (an hour ago) included, even though it was used after o2.
    doomed = plan(_entries(), Bound(max_size=60, max_age=None), NOW)
    assert _names(doomed) == {"b-old", "o1", "o2", "l", "m1", "m2"}
    removed_objects = [e for e in doomed if e.area == "objects" and not e.manifest]
    newest_removed = max(e.used for e in removed_objects)
    for kept in (e for e in _entries() if e.manifest and e not in doomed):
        assert kept.used >= newest_removed + MANIFEST_MARGIN


def _file(path: Path, data: bytes, used: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (used, used))
    return path


def _cache(root: Path, now: float) -> Path:
    chain = root / "tools" / "zigcache-abc" / "build"
    _file(chain / "o" / "old" / "a.o", b"x" * 4000, now - 20 * DAY)
    _file(chain / "o" / "new" / "b.o", b"x" * 4000, now - 60)
    _file(chain / "h" / "old.txt", b"m", now - 20 * DAY)
    _file(chain / "h" / "new.txt", b"m", now - 60)
    _file(chain / "h" / "timestamp", b"", now - 40 * DAY)
    _file(root / "builds" / "k-old" / "record.json", b"{}", now - 40 * DAY)
    _file(root / "builds" / "k-new" / "record.json", b"{}", now - 60)
    _file(root / "libraries" / "build" / "zlib-1-old" / "kiln-library.json", b"{}",
          now - 40 * DAY)
    _file(root / "libraries" / "build" / "zlib-1-old.lock", b"", now - 40 * DAY)
    _file(root / "libraries" / "build" / "zlib-1-new" / "kiln-library.json", b"{}", now)
    _file(root / "libraries" / "build" / "zlib-1-new.lock", b"", now)
    _file(root / "work" / "stale" / "f", b"x", now - 3 * DAY)
    _file(root / "work" / "running" / "f", b"x", now)
    _file(root / "sdists" / "abc", b"x", now - 400 * DAY)
    return root


def test_prune_removes_by_age_and_keeps_inputs_and_fresh_work(tmp_path):
    now = time.time()
    root = _cache(tmp_path / "cache", now)
    report = prune(root, Bound(max_size=None, max_age=30 * DAY), wait=False)
    assert not (root / "builds" / "k-old").exists()
    assert not (root / "libraries" / "build" / "zlib-1-old").exists()
    assert not (root / "libraries" / "build" / "zlib-1-old.lock").exists()
    assert not (root / "work" / "stale").exists()
    for kept in ("builds/k-new", "libraries/build/zlib-1-new", "libraries/build/zlib-1-new.lock",
                 "work/running", "sdists/abc", "tools/zigcache-abc/build/o/old",
                 "tools/zigcache-abc/build/h/old.txt", "tools/zigcache-abc/build/h/timestamp"):
        assert (root / kept).exists(), kept
    assert report.removed["builds"].entries == 1
    assert report.removed["leftovers"].entries == 1
    assert report.kept["objects"].entries == 4


def test_prune_by_size_takes_the_old_object_and_its_manifest(tmp_path):
    now = time.time()
    root = _cache(tmp_path / "cache", now)
    prune(root, Bound(max_size=5000, max_age=None), wait=False)
    chain = root / "tools" / "zigcache-abc" / "build"
    assert not (chain / "o" / "old").exists()
    assert not (chain / "h" / "old.txt").exists()
    assert (chain / "o" / "new" / "b.o").exists()
    assert (chain / "h" / "new.txt").exists()


def test_a_running_build_holds_prune_off(tmp_path):
    root = _cache(tmp_path / "cache", time.time())
    with in_use(root):
        with pytest.raises(Busy):
            prune(root, Bound(max_size=0, max_age=None), wait=False)
        assert (root / "builds" / "k-new").exists()
    prune(root, Bound(max_size=0, max_age=None), wait=False)
    assert not (root / "builds" / "k-new").exists()


def test_a_cache_hit_counts_as_a_use(tmp_path):
    cache = BuildCache(tmp_path)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    record = json.loads((Path(__file__).parent.parent / "assets" / "build-record.json")
                        .read_text())
    built = BuildRecord.model_validate(record)
    built = built.model_copy(update={"outputs": [built.wheel.model_copy(update={
        "filename": wheel.name, "sha256": hashlib.sha256(b"wheel").hexdigest()})]})
    cache.put("k", built, wheel, None)
    meta = tmp_path / "builds" / "k" / "record.json"
    os.utime(meta, (time.time() - 50 * DAY,) * 2)
    before = meta.stat().st_mtime
    assert cache.get("k") is not None
    assert meta.stat().st_mtime > before + 40 * DAY


def test_builds_hold_the_cache_and_prune_when_they_added_to_it(tmp_path, monkeypatch):
    from kiln import pipeline

    cache = _cache(tmp_path / "cache", time.time())
    during: list[str] = []

    def build(path, options, after):  # type: ignore[no-untyped-def]
        try:
            prune(options.cache, Bound(max_size=0, max_age=None), wait=False)
            during.append("pruned")
        except Busy:
            during.append("busy")
        return [pipeline.JobResult(recipe=path, label="demo", ok=True)]

    monkeypatch.setattr(pipeline, "_build_recipe", build)
    monkeypatch.setattr(pipeline, "record_outcomes", lambda *a: None)
    monkeypatch.setenv("KILN_CACHE_MAX_AGE", "30d")
    pipeline.build_recipes([tmp_path / "demo.toml"],
                           pipeline.BuildOptions(cache=cache, output=tmp_path / "wh"))
    assert during == ["busy"]
    # After the build (not from the cache), the cache was pruned to the bound.
    assert not (cache / "builds" / "k-old").exists()
    assert (cache / "builds" / "k-new").exists()

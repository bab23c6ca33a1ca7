"""Many writers at once: every record lands exactly once, and nobody fails."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import git

WRITERS = 16


def _record_all_at_once(repo: Path, wheels: list[Path]) -> list[subprocess.CompletedProcess[str]]:
    """One `kiln audit record` process per wheel, all started before any is waited for."""
    env = {**os.environ, "COLUMNS": "200"}
    procs = [subprocess.Popen([sys.executable, "-m", "kiln", "audit", "record", "--json", w],
                              cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for w in wheels]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _check_linear(repo: Path, expected: int) -> None:
    commits = git(repo, "rev-list", "--parents", "audit").splitlines()
    assert len(commits) == expected
    assert sum(1 for c in commits if len(c.split()) == 1) == 1  # one root
    assert all(len(c.split()) <= 2 for c in commits)  # no merges


def test_sixteen_writers_with_different_wheels_lose_nothing(repo, signed_wheel, signing_key):
    wheels = [signed_wheel("demo", f"1.{i}", seed=str(i)) for i in range(WRITERS)]
    results = _record_all_at_once(repo, wheels)
    assert [r.returncode for r in results] == [0] * WRITERS, [r.stderr for r in results]
    statuses = [json.loads(r.stdout)[0]["status"] for r in results]
    assert statuses == ["recorded"] * WRITERS
    _check_linear(repo, WRITERS)
    paths = git(repo, "ls-tree", "-r", "--name-only", "audit").splitlines()
    assert sorted(paths) == sorted(f"demo/1.{i}/{w.name}.json" for i, w in enumerate(wheels))
    # Each commit adds exactly one record, and the whole branch verifies.
    verify = kiln_verify(repo, signing_key[1])
    assert verify["ok"] and verify["records"] == WRITERS and verify["commits"] == WRITERS


def test_sixteen_writers_with_the_same_wheel_make_one_record(repo, signed_wheel, signing_key):
    wheel = signed_wheel("demo", "1.0")
    results = _record_all_at_once(repo, [wheel] * WRITERS)
    assert [r.returncode for r in results] == [0] * WRITERS, [r.stderr for r in results]
    statuses = sorted(json.loads(r.stdout)[0]["status"] for r in results)
    assert statuses == ["exists"] * (WRITERS - 1) + ["recorded"]
    _check_linear(repo, 1)
    assert git(repo, "ls-tree", "-r", "--name-only", "audit").splitlines() == [
        f"demo/1.0/{wheel.name}.json"]
    assert kiln_verify(repo, signing_key[1])["ok"]


def kiln_verify(repo: Path, key: Path) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "kiln", "audit", "verify", "--key", str(key),
                             "--json"], cwd=repo, capture_output=True, text=True, check=False)
    report: dict[str, object] = json.loads(result.stdout)
    assert (result.returncode == 0) == report["ok"], result.stderr
    return report


def _writer(repo: Path, record: object, barrier: Any, results: Any) -> None:
    from kiln.audit import AuditBranch

    try:
        audit = AuditBranch.open(repo)
        barrier.wait(timeout=60)  # every writer reads the same tip, then races for it
        added = audit.add(record)  # type: ignore[arg-type]
        results.put((added.status, added.attempts))
    except BaseException as exc:
        results.put(("error", repr(exc)))
        raise


@pytest.mark.parametrize("same", [False, True], ids=["different wheels", "same wheel"])
def test_sixteen_writers_released_together(repo, signed_wheel, same):
    """The tightest race: 16 processes released by one barrier onto the same tip."""
    from kiln.audit import record_for_wheel

    wheels = [signed_wheel("demo", "1.0" if same else f"1.{i}", seed="" if same else str(i))
              for i in range(WRITERS)]
    records = [record_for_wheel(w) for w in wheels]
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(repo, r, barrier, results)) for r in records]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * WRITERS, outcomes
    statuses = sorted(status for status, _ in outcomes)
    print(f"attempts per writer: {sorted(a for _, a in outcomes)}")
    if same:
        assert statuses == ["exists"] * (WRITERS - 1) + ["recorded"]
        _check_linear(repo, 1)
    else:
        assert statuses == ["recorded"] * WRITERS
        _check_linear(repo, WRITERS)
        assert len(git(repo, "ls-tree", "-r", "--name-only", "audit").splitlines()) == WRITERS

"""The audit branch's compare-and-swap loop against writers that keep winning the race.

Git is replaced by an object store in memory that keeps refs, blobs, trees and commits
the way git does, and whose ref can be moved by "another writer" at the moment kiln
swaps; the real plumbing is tests/integration/audit/test_audit_concurrency.py.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Iterable
from pathlib import Path

import pytest

from kiln.audit import branch
from kiln.audit.branch import MAX_ATTEMPTS, MAX_PAUSE, AuditBranch
from kiln.audit.gitstore import Identity, TreeEntry
from kiln.audit.records import primary_path
from kiln.errors import AuditError

REF = "refs/heads/audit"
OURS = "demo-1.0-py3-none-any.whl"


class MemoryStore:
    """The part of GitStore that AuditBranch writes with, kept in dictionaries."""

    git_dir = Path("/repo/.git")

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, object]] = {}
        self.refs: dict[str, str] = {}
        self.swaps = 0

    def _put(self, kind: str, value: object) -> str:
        oid = hashlib.sha1(repr((kind, value)).encode()).hexdigest()
        self.objects[oid] = (kind, value)
        return oid

    def resolve(self, rev: str) -> str | None:
        return self.refs.get(rev)

    def text(self, *args: str) -> str:
        if args[0] == "for-each-ref":
            return ""  # no remotes
        assert args[0] == "rev-parse" and args[1].endswith("^{tree}"), args
        kind, value = self.objects[args[1].removesuffix("^{tree}")]
        assert kind == "commit"
        return str(value[0])  # type: ignore[index]

    def who(self) -> tuple[str, str]:
        return "kiln", "kiln@localhost"

    def write_blob(self, data: bytes) -> str:
        return self._put("blob", data)

    def read_blob(self, oid: str) -> bytes:
        kind, value = self.objects[oid]
        assert kind == "blob" and isinstance(value, bytes)
        return value

    def ls_tree(self, tree: str | None) -> list[TreeEntry]:
        if tree is None:
            return []
        kind, value = self.objects[tree]
        assert kind == "tree"
        return list(value)  # type: ignore[call-overload]

    def make_tree(self, entries: Iterable[TreeEntry]) -> str:
        entries = sorted(entries, key=lambda e: e.name)
        assert len({e.name for e in entries}) == len(entries), "git refuses duplicate names"
        return self._put("tree", tuple(entries))

    def commit_tree(self, tree: str, parent: str | None, message: str, author: Identity,
                    committer: Identity) -> str:
        return self._put("commit", (tree, parent, message, len(self.objects)))

    def compare_and_swap(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        self.swaps += 1
        if self.refs.get(ref) != old:
            return False
        self.refs[ref] = new
        return True

    # -- reading back, for the assertions --------------------------------------------

    def history(self, ref: str = REF) -> list[tuple[str, str]]:
        """(commit, message) from the tip down to the root."""
        out = []
        oid = self.refs.get(ref)
        while oid is not None:
            _, (_, parent, message, _) = self.objects[oid]  # type: ignore[misc]
            out.append((oid, message))
            oid = parent
        return out

    def files(self, ref: str = REF) -> list[str]:
        tip = self.refs[ref]
        root = self.text("rev-parse", f"{tip}^{{tree}}")

        def walk(tree: str, prefix: str) -> list[str]:
            found = []
            for entry in self.ls_tree(tree):
                if entry.type == "tree":
                    found += walk(entry.oid, f"{prefix}{entry.name}/")
                else:
                    found.append(prefix + entry.name)
            return found

        return sorted(walk(root, ""))


class RacingStore(MemoryStore):
    """Another writer moves the branch after kiln built each of its first ``losses`` commits.

    The rival lands between kiln's read of the tip and its swap: the window the
    compare-and-swap exists for.
    """

    def __init__(self, losses: float, rival_wheels: Iterable[str] = ()) -> None:
        super().__init__()
        self.losses = losses
        self.rival_wheels = iter(rival_wheels)
        self.rival_count = 0
        self._rival_writing = False

    def commit_tree(self, tree: str, parent: str | None, message: str, author: Identity,
                    committer: Identity) -> str:
        commit = super().commit_tree(tree, parent, message, author, committer)
        if self.losses > 0 and not self._rival_writing:
            self.losses -= 1
            self._rival_lands()
        return commit

    def _rival_lands(self) -> None:
        self.rival_count += 1
        filename = next(self.rival_wheels, f"rival-{self.rival_count}.0-py3-none-any.whl")
        self._rival_writing = True
        try:
            added = AuditBranch(self).prepare(  # type: ignore[arg-type]
                self.refs.get(REF), self.write_blob(record(filename)), filename,
                digest(filename))
        finally:
            self._rival_writing = False
        assert added.commit is not None
        self.refs[REF] = added.commit


def digest(filename: str) -> str:
    return hashlib.sha256(filename.encode()).hexdigest()


def record(filename: str) -> bytes:
    return json.dumps({"wheel": {"filename": filename, "sha256": digest(filename)}}).encode()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause kiln takes between attempts (none really taken); a runaway loop fails."""
    taken: list[float] = []

    def sleep(seconds: float) -> None:
        taken.append(seconds)
        if len(taken) > 10 * MAX_ATTEMPTS:
            raise AssertionError("the retry loop does not stop")

    monkeypatch.setattr(branch, "time", types.SimpleNamespace(sleep=sleep))
    return taken


def add(store: MemoryStore, filename: str = OURS, **kwargs: int) -> branch.Added:
    audit = AuditBranch(store)  # type: ignore[arg-type]
    return audit.add_blob(store.write_blob(record(filename)), filename, digest(filename),
                          **kwargs)


def test_a_writer_that_always_loses_gives_up_after_the_limit(pauses: list[float]) -> None:
    store = RacingStore(losses=float("inf"))
    with pytest.raises(AuditError) as exc:
        add(store)
    assert MAX_ATTEMPTS == 60  # the README promises "up to 60 times"
    assert store.swaps == MAX_ATTEMPTS
    assert len(pauses) == MAX_ATTEMPTS
    assert all(0 <= p <= MAX_PAUSE for p in pauses)
    assert exc.value.message == (f"could not record {OURS} on {REF}: it moved under us "
                                 f"{MAX_ATTEMPTS} times")
    assert f"{Path('/repo/.git') / REF}.lock" in (exc.value.hint or "")
    # Nothing of ours landed; everything the rivals wrote is still there.
    assert primary_path(OURS) not in store.files()
    assert len(store.history()) == MAX_ATTEMPTS


def test_the_limit_can_be_lowered(pauses: list[float]) -> None:
    store = RacingStore(losses=float("inf"))
    with pytest.raises(AuditError, match="moved under us 3 times"):
        add(store, attempts=3)
    assert store.swaps == 3


def test_a_writer_that_loses_a_few_times_then_wins_records_once(pauses: list[float]) -> None:
    store = RacingStore(losses=3)
    added = add(store)
    assert (added.status, added.attempts) == ("recorded", 4)
    assert added.path == primary_path(OURS)
    assert store.swaps == 4 and len(pauses) == 3
    history = store.history()
    assert [m for _, m in history] == [
        f"audit: {OURS} sha256:{digest(OURS)}",
        *(f"audit: rival-{i}.0-py3-none-any.whl sha256:{digest(f'rival-{i}.0-py3-none-any.whl')}"
          for i in (3, 2, 1))]
    assert history[0][0] == added.commit  # built on the rivals' tip, not beside it
    assert store.files() == sorted([primary_path(OURS), *(
        primary_path(f"rival-{i}.0-py3-none-any.whl") for i in (1, 2, 3))])


def test_the_last_attempt_may_still_win(pauses: list[float]) -> None:
    store = RacingStore(losses=MAX_ATTEMPTS - 1)
    added = add(store)
    assert (added.status, added.attempts) == ("recorded", MAX_ATTEMPTS)
    assert [m for _, m in store.history()].count(f"audit: {OURS} sha256:{digest(OURS)}") == 1


def test_losing_to_a_writer_of_the_same_wheel_records_nothing_more(
        pauses: list[float]) -> None:
    store = RacingStore(losses=1, rival_wheels=[OURS])
    added = add(store)
    assert (added.status, added.commit, added.attempts) == ("exists", None, 2)
    assert len(store.history()) == 1  # the rival's record, and not a second one
    assert store.files() == [primary_path(OURS)]
    assert store.swaps == 1


def test_an_uncontested_writer_swaps_once(pauses: list[float]) -> None:
    store = MemoryStore()
    added = add(store)
    assert (added.status, added.attempts) == ("recorded", 1)
    assert store.swaps == 1 and pauses == []
    again = add(store)
    assert (again.status, again.commit, again.attempts) == ("exists", None, 1)
    assert store.swaps == 1

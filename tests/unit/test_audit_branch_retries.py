"""Writing and reading the audit branch, and its compare-and-swap against racing writers.

Git is replaced by an object store in memory that keeps refs, blobs, trees and commits
the way git does, and whose ref can be moved by "another writer" at the moment kiln
swaps; the real plumbing is tests/integration/audit/test_audit_concurrency.py.
"""

from __future__ import annotations

import hashlib
import time
import types
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kiln.audit import branch
from kiln.audit.branch import MAX_ATTEMPTS, MAX_PAUSE, AuditBranch
from kiln.audit.gitstore import Change, Commit, Identity, TreeEntry
from kiln.audit.records import (
    AuditRecord,
    FileDigest,
    Reproducibility,
    SourceDigest,
    WheelDigest,
    alternative_path,
    primary_path,
    wheel_folder,
)
from kiln.errors import AuditError
from kiln.progress import SilentReporter, reporting

REF = "refs/heads/audit"
OURS = "demo-1.0-py3-none-any.whl"


class MemoryStore:
    """The part of GitStore that AuditBranch writes with, kept in dictionaries."""

    git_dir = Path("/repo/.git")

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, object]] = {}
        self.refs: dict[str, str] = {}
        self.swaps = 0
        self.identities: list[tuple[Identity, Identity]] = []  # (author, committer) per commit

    def _put(self, kind: str, value: object) -> str:
        oid = hashlib.sha1(repr((kind, value)).encode()).hexdigest()
        self.objects[oid] = (kind, value)
        return oid

    def resolve(self, rev: str) -> str | None:
        return self.refs.get(rev)

    def text(self, *args: str) -> str:
        if args[0] == "for-each-ref":  # one refname a line, as this format prints them
            assert args == ("for-each-ref", "--format=%(refname)", "refs/remotes/"), args
            return "\n".join(sorted(r for r in self.refs if r.startswith("refs/remotes/")))
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
        for e in entries:  # what mktree would refuse
            assert (e.mode, e.type) in {("100644", "blob"), ("040000", "tree")}, e
            assert self.objects[e.oid][0] == e.type, e
        return self._put("tree", tuple(entries))

    def commit_tree(self, tree: str, parent: str | None, message: str, author: Identity,
                    committer: Identity) -> str:
        assert isinstance(author, Identity) and isinstance(committer, Identity)
        self.identities.append((author, committer))
        return self._put("commit", (tree, parent, message, len(self.objects)))

    def compare_and_swap(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        self.swaps += 1
        if self.refs.get(ref) != old:
            return False
        self.refs[ref] = new
        return True

    def read_objects(self, oids: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        return {o: ("blob", self.read_blob(o)) for o in oids if o in self.objects}

    def commits(self, tip: str) -> list[Commit]:
        """Oldest first, as ``rev-list --reverse`` gives them (the history is one line)."""
        out = []
        oid: str | None = tip
        while oid is not None:
            _, (tree, parent, message, _) = self.objects[oid]  # type: ignore[misc]
            who = Identity("kiln", "kiln@localhost", 0)
            out.append(Commit(oid, tree, (parent,) if parent else (), who, who, message))
            oid = parent
        return out[::-1]

    def changes(self, commits: Iterable[str]) -> dict[str, list[Change]]:
        """Files each commit added or changed against its parent (``diff-tree -r``)."""
        out: dict[str, list[Change]] = {}
        for oid in commits:
            _, (tree, parent, _, _) = self.objects[oid]  # type: ignore[misc]
            before = self.blobs(self.objects[parent][1][0]) if parent else {}  # type: ignore[index]
            after = self.blobs(tree)
            out[oid] = [Change("A" if path not in before else "M", path, "000000", "100644",
                               before.get(path, "0" * 40), blob)
                        for path, blob in sorted(after.items()) if before.get(path) != blob]
        return out

    def blobs(self, tree: str, prefix: str = "") -> dict[str, str]:
        """path -> blob id, for every file under ``tree``."""
        found: dict[str, str] = {}
        for entry in self.ls_tree(tree):
            if entry.type == "tree":
                found.update(self.blobs(entry.oid, f"{prefix}{entry.name}/"))
            else:
                found[prefix + entry.name] = entry.oid
        return found

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
        return sorted(self.blobs(self.text("rev-parse", f"{self.refs[ref]}^{{tree}}")))


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


class NotesKept(SilentReporter):
    """A reporter that keeps the notes kiln gives the user."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def digest(filename: str) -> str:
    return hashlib.sha256(filename.encode()).hexdigest()


def audit_record(filename: str, sha256: str | None = None) -> AuditRecord:
    project, version = wheel_folder(filename)
    return AuditRecord(
        wheel=WheelDigest(filename=filename, sha256=sha256 or digest(filename), size=1),
        project=project, version=version, build_id="b" * 64, python="3.11",
        target="linux-x86_64",
        source=SourceDigest(url="https://example.org/x.tar.gz", filename="x.tar.gz",
                            sha256="3" * 64),
        recipe=FileDigest(path="recipes/x.toml", sha256="1" * 64), lock=None, build_log=None,
        reproducibility=Reproducibility(checked=False, reproducible=None),
        builder="https://builders.example/ci", statement={}, signatures=[],
        recorded_at=datetime(2024, 1, 1, tzinfo=timezone.utc), recorded_by="kiln 0.1.0")


def record(filename: str, sha256: str | None = None) -> bytes:
    return audit_record(filename, sha256).to_bytes()


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


def add(store: MemoryStore, filename: str = OURS, sha256: str | None = None,
        **kwargs: int) -> branch.Added:
    audit = AuditBranch(store)  # type: ignore[arg-type]
    sha256 = sha256 or digest(filename)
    return audit.add_blob(store.write_blob(record(filename, sha256)), filename, sha256,
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


# -- where a record goes ----------------------------------------------------------------


def test_another_digest_for_a_filename_is_kept_beside_the_first(pauses: list[float]) -> None:
    store = MemoryStore()
    notes = NotesKept()
    with reporting(notes):
        first = add(store)
        assert notes.notes == []
        other = "cd" * 32
        second = add(store, sha256=other)
    assert (second.status, second.path) == ("conflict", alternative_path(OURS, other))
    assert notes.notes == [f"{OURS} was recorded before with another sha256: kept both "
                           f"({second.path}); the wheel did not reproduce across builders"]
    assert store.history()[0][1] == (f"audit: {OURS} sha256:{other} (differs from the first "
                                     "record: not reproduced across builders)")
    again = add(store, sha256=other)
    assert (again.status, again.path, again.commit) == ("exists", second.path, None)
    assert add(store).path == first.path == primary_path(OURS)
    assert store.files() == sorted([primary_path(OURS), alternative_path(OURS, other)])
    assert len(store.history()) == 2


def test_an_unreadable_first_record_is_not_taken_for_this_digest(pauses: list[float]) -> None:
    store = MemoryStore()
    audit = AuditBranch(store)  # type: ignore[arg-type]
    for junk in (b"not json", b'{"wheel": {}}', b'{"wheel": {"sha256": 7}}', b"[]"):
        tree = audit._insert(None, primary_path(OURS).split("/"), store.write_blob(junk))
        assert audit.place(tree, OURS, digest(OURS)) == branch.Placement(
            alternative_path(OURS, digest(OURS)), conflict=True)


def test_records_are_never_replaced(pauses: list[float]) -> None:
    store = MemoryStore()
    audit = AuditBranch(store)  # type: ignore[arg-type]
    parts = primary_path(OURS).split("/")
    tree = audit._insert(None, parts, store.write_blob(b"first"))
    with pytest.raises(AuditError, match="already on the audit branch; records are never"):
        audit._insert(tree, parts, store.write_blob(b"second"))
    with pytest.raises(AuditError, match=f"^{OURS}.json on the audit branch is a file, not a"):
        audit._insert(tree, [*parts, "below"], store.write_blob(b"x"))
    # Beside it, and in other folders, everything already there stays.
    other = primary_path("demo-2.0-py3-none-any.whl").split("/")
    both = audit._insert(tree, other, store.write_blob(b"other"))
    assert store.blobs(both) == {primary_path(OURS): store.write_blob(b"first"),
                                 "/".join(other): store.write_blob(b"other")}


# -- a fresh clone: the remote's branch ------------------------------------------------


def test_in_a_fresh_clone_records_start_on_the_remotes_branch(pauses: list[float]) -> None:
    store = MemoryStore()
    add(store, "theirs-1.0-py3-none-any.whl")
    theirs = store.refs.pop(REF)
    store.refs["refs/remotes/origin/audit"] = theirs
    audit = AuditBranch(store)  # type: ignore[arg-type]
    assert audit.tip() == theirs and audit.local_tip() is None
    assert audit.read_ref() == "refs/remotes/origin/audit"
    added = add(store)
    assert added.status == "recorded"
    assert [c for c, _ in store.history()] == [added.commit, theirs]
    assert audit.read_ref() == REF
    assert store.refs["refs/remotes/origin/audit"] == theirs  # the remote's copy is not moved
    # Already recorded there: nothing to write, not even a local branch.
    store.refs.pop(REF)
    assert add(store, "theirs-1.0-py3-none-any.whl").status == "exists"
    assert REF not in store.refs


def test_origin_wins_among_remotes_and_only_a_branch_of_this_name_counts() -> None:
    store = MemoryStore()
    for ref, tip in [("refs/remotes/aaa/audit", "1"), ("refs/remotes/origin/audit", "2"),
                     ("refs/remotes/origin/audit-old", "3"), ("refs/remotes/zzz/audit", "4"),
                     ("refs/remotes/origin/x/audit", "5")]:
        store.refs[ref] = tip
    assert AuditBranch(store).upstream() == ("refs/remotes/origin/audit", "2")  # type: ignore[arg-type]
    del store.refs["refs/remotes/origin/audit"]
    assert AuditBranch(store).upstream() == ("refs/remotes/aaa/audit", "1")  # type: ignore[arg-type]
    assert AuditBranch(store, "x/audit").upstream() == (  # type: ignore[arg-type]
        "refs/remotes/origin/x/audit", "5")
    assert AuditBranch(MemoryStore()).upstream() == (None, None)  # type: ignore[arg-type]
    assert AuditBranch(MemoryStore()).read_ref() == REF  # type: ignore[arg-type]


# -- reading ----------------------------------------------------------------------------


def test_entries_are_every_added_record_oldest_first(pauses: list[float]) -> None:
    store = MemoryStore()
    assert AuditBranch(store).entries() == []  # type: ignore[arg-type]
    wheels = ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    commits = [add(store, w).commit for w in wheels]
    conflict = add(store, wheels[0], sha256="cd" * 32)
    found = AuditBranch(store).entries()  # type: ignore[arg-type]
    assert [(e.path, e.commit.oid, e.record.wheel.sha256, e.conflict) for e in found] == [
        (primary_path(wheels[0]), commits[0], digest(wheels[0]), False),
        (primary_path(wheels[1]), commits[1], digest(wheels[1]), False),
        (alternative_path(wheels[0], "cd" * 32), conflict.commit, "cd" * 32, True)]


def test_an_entry_that_is_not_a_record_is_an_error(pauses: list[float]) -> None:
    store = MemoryStore()
    AuditBranch(store).add_blob(store.write_blob(b'{"wheel": 1}'), OURS,  # type: ignore[arg-type]
                                digest(OURS))
    with pytest.raises(AuditError, match=f"audit:{primary_path(OURS)}"):
        AuditBranch(store).entries()  # type: ignore[arg-type]


def test_find_gives_the_first_record_then_the_others(pauses: list[float]) -> None:
    store = MemoryStore()
    audit = AuditBranch(store)  # type: ignore[arg-type]
    assert audit.find(OURS) == []
    add(store, "demo-1.0-py3-none-win32.whl")  # same folder, another wheel
    add(store)
    add(store, sha256="ee" * 32)
    add(store, sha256="cd" * 32)
    found = [(path, r.wheel.sha256) for path, r in audit.find(OURS)]
    assert found == [(primary_path(OURS), digest(OURS)),
                     (alternative_path(OURS, "cd" * 32), "cd" * 32),
                     (alternative_path(OURS, "ee" * 32), "ee" * 32)]
    assert [r.wheel.sha256 for _, r in audit.find(OURS, "ee" * 32)] == ["ee" * 32]
    assert audit.find(OURS, "00" * 32) == []
    assert audit.find("other-1.0-py3-none-any.whl") == []


def test_find_record_prefers_the_digest_asked_for(pauses: list[float],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    add(store)
    add(store, sha256="cd" * 32)
    opened: list[tuple[Path, str]] = []

    def open_branch(repo: Path, name: str = "audit") -> AuditBranch:
        opened.append((repo, name))
        return AuditBranch(store)  # type: ignore[arg-type]

    monkeypatch.setattr(AuditBranch, "open", staticmethod(open_branch))
    monkeypatch.delenv("KILN_AUDIT_BRANCH", raising=False)
    record_of = branch.find_record
    assert record_of(OURS, "cd" * 32, repo=Path("/r")).wheel.sha256 == "cd" * 32  # type: ignore[union-attr]
    assert record_of(OURS, digest(OURS), repo=Path("/r")).wheel.sha256 == digest(OURS)  # type: ignore[union-attr]
    # Another digest: the first record, so that verify can say the bytes differ.
    assert record_of(OURS, "00" * 32, repo=Path("/r")).wheel.sha256 == digest(OURS)  # type: ignore[union-attr]
    assert record_of("other-1.0-py3-none-any.whl", repo=Path("/r")) is None
    assert record_of("not-a-wheel.txt", repo=Path("/r")) is None
    monkeypatch.setenv("KILN_AUDIT_BRANCH", "audit/ci")
    record_of(OURS, repo=Path("/r"))
    record_of(OURS, repo=Path("/r"), branch="mine")
    assert opened == [(Path("/r"), "audit")] * 4 + [(Path("/r"), "audit/ci"), (Path("/r"), "mine")]


def test_find_record_outside_a_repository_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_repository(repo: Path, name: str = "audit") -> AuditBranch:
        raise AuditError(f"{repo} is not in a git repository")

    monkeypatch.setattr(AuditBranch, "open", staticmethod(no_repository))
    assert branch.find_record(OURS, digest(OURS), repo=Path("/nowhere")) is None


def test_commits_name_kiln_when_nobody_is_configured_dated_now(pauses: list[float]) -> None:
    store = MemoryStore()
    before = int(time.time())
    add(store)
    [(author, committer)] = store.identities
    assert author == committer
    assert (author.name, author.email) == ("kiln", "kiln@localhost")
    assert before <= author.when <= time.time()
    audit = AuditBranch(store)  # type: ignore[arg-type]
    someone = Identity("Someone", "someone@example.org", 1700000000)
    audit.prepare(None, store.write_blob(b"x"), OURS, digest(OURS), author=someone)
    assert store.identities[-1][0] == someone and store.identities[-1][1].name == "kiln"


def test_pauses_double_from_ten_milliseconds_to_the_cap() -> None:
    class Highest:
        def uniform(self, low: float, high: float) -> float:
            assert low == 0
            return high

    assert [branch.pause(n, Highest()) for n in range(9)] == [  # type: ignore[arg-type]
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, MAX_PAUSE, MAX_PAUSE]


def test_a_record_missing_from_the_object_store_is_an_error(pauses: list[float]) -> None:
    store = MemoryStore()
    add(store)
    blob = store.blobs(store.text("rev-parse", f"{store.refs[REF]}^{{tree}}"))[primary_path(OURS)]
    del store.objects[blob]
    with pytest.raises(AuditError, match=f"audit:{primary_path(OURS)}"):
        AuditBranch(store).entries()  # type: ignore[arg-type]
    with pytest.raises(AuditError, match=f"audit:{primary_path(OURS)}"):
        AuditBranch(store).find(OURS)  # type: ignore[arg-type]


def test_add_stores_the_record_as_its_canonical_bytes(pauses: list[float]) -> None:
    store = MemoryStore()
    audit = AuditBranch(store)  # type: ignore[arg-type]
    added = audit.add(audit_record(OURS), attempts=1)
    assert (added.status, added.path, added.attempts) == ("recorded", primary_path(OURS), 1)
    blob = store.blobs(store.text("rev-parse", f"{store.refs[REF]}^{{tree}}"))[added.path]
    assert store.read_blob(blob) == audit_record(OURS).to_bytes()
    assert audit.add(audit_record(OURS)).status == "exists"
    store_racing = RacingStore(losses=float("inf"))
    with pytest.raises(AuditError, match="moved under us 2 times"):
        AuditBranch(store_racing).add(audit_record(OURS), attempts=2)  # type: ignore[arg-type]

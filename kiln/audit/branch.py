"""The audit branch: records appended one commit at a time, by compare-and-swap.

Writers never lock anything for long: each builds its commit on the tip it read and
asks git to move the branch from that tip to the new commit. If another writer got
there first, it reads the new tip, checks again whether its record is still needed,
and tries again after a jittered pause.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from kiln.audit.gitstore import Commit, GitStore, Identity, TreeEntry, identity
from kiln.audit.records import (
    AuditRecord,
    alternative_path,
    commit_message,
    parse_record,
    primary_path,
    wheel_folder,
    witness_path,
)
from kiln.errors import AuditError
from kiln.progress import reporter

DEFAULT_BRANCH = "audit"
MAX_ATTEMPTS = 60
MAX_PAUSE = 1.0  # seconds; pauses grow 10 ms, 20 ms, 40 ms … up to this, each randomised


@dataclass(frozen=True)
class Placement:
    """Where a record goes on a given tip: a new path, or None when it is already there."""

    path: str | None
    existing: str | None = None
    conflict: bool = False  # the filename is recorded with another digest
    witness: bool = False  # these bytes are recorded, by other signers


@dataclass(frozen=True)
class Added:
    status: Literal["recorded", "conflict", "witness", "exists"]
    path: str
    commit: str | None  # None: nothing was written (the same wheel was recorded before)
    attempts: int = 1


@dataclass(frozen=True)
class Entry:
    """A record as found in the branch's history, with the commit that added it."""

    path: str
    commit: Commit
    record: AuditRecord
    conflict: bool = False  # its digest is not the one the filename's first record has


def pause(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(MAX_PAUSE, 10 ms · 2^attempt)]."""
    return rng.uniform(0, min(MAX_PAUSE, 0.01 * (2 ** min(attempt, 10))))


class AuditBranch:
    """Append and read records on one branch (``audit`` unless named otherwise)."""

    def __init__(self, store: GitStore, name: str = DEFAULT_BRANCH) -> None:
        check_branch_name(name)
        self.store = store
        self.name = name
        self.ref = f"refs/heads/{name}"
        self._trees: dict[str, list[TreeEntry]] = {}  # trees never change: cache by id

    @classmethod
    def open(cls, repo: Path, name: str = DEFAULT_BRANCH) -> AuditBranch:
        return cls(GitStore.discover(repo), name)

    def tip(self) -> str | None:
        """The tip to read: the local branch, or in a fresh clone the remote's copy of it."""
        return self.local_tip() or self.upstream()[1]

    def local_tip(self) -> str | None:
        return self.store.resolve(self.ref)

    def read_ref(self) -> str:
        """The ref ``tip()`` reads (for messages)."""
        return self.ref if self.local_tip() else (self.upstream()[0] or self.ref)

    def upstream(self) -> tuple[str | None, str | None]:
        """(ref, tip) of ``refs/remotes/REMOTE/NAME`` — origin's when there are several."""
        refs = self.store.text("for-each-ref", "--format=%(refname)", "refs/remotes/").split()
        mine = [r for r in refs
                if r.removeprefix("refs/remotes/").partition("/")[2] == self.name]
        mine.sort(key=lambda r: (not r.startswith("refs/remotes/origin/"), r))
        return (mine[0], self.store.resolve(mine[0])) if mine else (None, None)

    # -- writing ---------------------------------------------------------------------------

    def add(self, record: AuditRecord, *, attempts: int = MAX_ATTEMPTS) -> Added:
        """Append ``record`` unless the branch already has this wheel with this digest."""
        blob = self.store.write_blob(record.to_bytes())
        return self.add_blob(blob, record.wheel.filename, record.wheel.sha256,
                             signers=record.signers, attempts=attempts)

    def add_blob(self, blob: str, filename: str, sha256: str, *,
                 signers: frozenset[str] = frozenset(), attempts: int = MAX_ATTEMPTS) -> Added:
        """The compare-and-swap loop: build on the tip, swap it in, or re-read and retry."""
        rng = random.SystemRandom()  # its own seed in every process, even forked ones
        for attempt in range(1, attempts + 1):
            tip = self.local_tip()
            # In a fresh clone the branch starts where the remote's is, not as a new orphan.
            base = tip or self.upstream()[1]
            added = self.prepare(base, blob, filename, sha256, signers=signers)
            if added.commit is None:
                return replace(added, attempts=attempt)
            if self.store.compare_and_swap(self.ref, added.commit, tip,
                                           f"kiln audit: {filename}"):
                if added.status == "conflict":
                    reporter().note(f"{filename} was recorded before with another sha256: "
                                    f"kept both ({added.path}); the wheel did not reproduce "
                                    "across builders")
                return replace(added, attempts=attempt)
            time.sleep(pause(attempt, rng))
        raise AuditError(
            f"could not record {filename} on {self.ref}: it moved under us {attempts} times",
            hint=f"many writers at once, or a stale lock: if no kiln or git is running, "
                 f"remove {self.store.git_dir / self.ref}.lock and run the command again")

    def prepare(self, tip: str | None, blob: str, filename: str, sha256: str,
                author: Identity | None = None, *,
                signers: frozenset[str] = frozenset()) -> Added:
        """A commit on ``tip`` that adds the record ``blob`` (not yet on any branch).

        ``commit`` is None when ``tip`` already records this wheel with this digest, signed
        by ``signers`` (or by some of them and nobody else).
        """
        tree = self._root_tree(tip)
        where = self.place(tree, filename, sha256, signers)
        if where.path is None:
            assert where.existing is not None
            return Added("exists", where.existing, None)
        new_tree = self._insert(tree, where.path.split("/"), blob)
        now = identity(self.store)
        commit = self.store.commit_tree(new_tree, tip,
                                        commit_message(filename, sha256, where.conflict,
                                                       where.witness),
                                        author or now, now)
        if where.conflict:
            return Added("conflict", where.path, commit)
        return Added("witness" if where.witness else "recorded", where.path, commit)

    def place(self, tree: str | None, filename: str, sha256: str,
              signers: frozenset[str] = frozenset()) -> Placement:
        """Where a record of ``filename`` with ``sha256`` goes in ``tree`` (None: it is there).

        The first record of a filename takes the plain path, one of other bytes the
        digest's path; one of bytes already recorded goes in only when ``signers`` names a
        signer no record of those bytes has (a second builder agreeing: a witness).
        """
        primary = primary_path(filename)
        folder = self._entries_at(tree, primary.split("/")[:-1])
        names = {e.name: e for e in folder}
        leaf = primary.rsplit("/", 1)[1]
        first = names.get(leaf)
        if first is None:
            return Placement(primary)
        mine = [e for e in folder if e.name == leaf or (
            e.name.startswith(leaf.removesuffix(".json") + ".") and e.name.endswith(".json"))]
        blobs = self.store.read_objects([e.oid for e in mine])
        same, first_sha = [], None
        for e in mine:
            digest, signed_by = _placement_facts(blobs.get(e.oid, ("missing", b""))[1])
            if e.name == leaf:
                first_sha = digest
            if digest == sha256:
                same.append((e.name, signed_by))
        folder_path = primary.rsplit("/", 1)[0]
        if same:
            known = frozenset().union(*(signed for _, signed in same))
            existing = f"{folder_path}/{sorted(same, key=lambda s: s[0] != leaf)[0][0]}"
            if signers <= known:
                return Placement(None, existing=existing)
            witness = witness_path(filename, sha256, signers)
            if witness.rsplit("/", 1)[1] in names:
                return Placement(None, existing=witness)
            return Placement(witness, conflict=first_sha != sha256, witness=True)
        alternative = alternative_path(filename, sha256)
        return Placement(alternative, conflict=True)

    # -- trees -----------------------------------------------------------------------------

    def _root_tree(self, commit: str | None) -> str | None:
        if commit is None:
            return None
        return self.store.text("rev-parse", f"{commit}^{{tree}}")

    def _ls(self, tree: str | None) -> list[TreeEntry]:
        if tree is None:
            return []
        if tree not in self._trees:
            self._trees[tree] = self.store.ls_tree(tree)
        return self._trees[tree]

    def _entries_at(self, tree: str | None, parts: list[str]) -> list[TreeEntry]:
        for part in parts:
            sub = next((e for e in self._ls(tree) if e.name == part), None)
            if sub is None or sub.type != "tree":
                return []
            tree = sub.oid
        return self._ls(tree)

    def _insert(self, tree: str | None, parts: list[str], blob: str) -> str:
        """A new tree: ``tree`` with ``blob`` added at ``parts`` (which must be free)."""
        entries = [e for e in self._ls(tree) if e.name != parts[0]]
        existing = next((e for e in self._ls(tree) if e.name == parts[0]), None)
        if len(parts) == 1:
            if existing is not None:
                raise AuditError(f"{parts[0]} is already on the audit branch; records are "
                                 "never replaced")
            entries.append(TreeEntry("100644", "blob", blob, parts[0]))
        else:
            if existing is not None and existing.type != "tree":
                raise AuditError(f"{parts[0]} on the audit branch is a file, not a folder")
            sub = self._insert(existing.oid if existing else None, parts[1:], blob)
            entries.append(TreeEntry("040000", "tree", sub, parts[0]))
        return self.store.make_tree(entries)

    # -- reading ---------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every record the branch's history added, oldest first (AuditError if unreadable)."""
        tip = self.tip()
        if tip is None:
            return []
        commits = self.store.commits(tip)
        changes = self.store.changes([c.oid for c in commits])
        added = [(c, ch) for c in commits for ch in changes.get(c.oid, []) if ch.status == "A"]
        blobs = self.store.read_objects([ch.new_oid for _, ch in added])
        out: list[Entry] = []
        first: dict[str, str] = {}
        for commit, change in added:
            data = blobs.get(change.new_oid, ("missing", b""))[1]
            record = parse_record(data, f"{self.name}:{change.path}")
            filename, sha = record.wheel.filename, record.wheel.sha256
            out.append(Entry(change.path, commit, record,
                             conflict=first.setdefault(filename, sha) != sha))
        return out

    def find(self, filename: str, sha256: str | None = None) -> list[tuple[str, AuditRecord]]:
        """The records at the tip for ``filename`` (only the one with ``sha256`` if given)."""
        tip = self.tip()
        if tip is None:
            return []
        primary = primary_path(filename)
        folder = self._entries_at(self._root_tree(tip), primary.split("/")[:-1])
        leaf = primary.rsplit("/", 1)[1]
        wanted = [e for e in folder if e.name == leaf or (
            e.name.startswith(leaf.removesuffix(".json") + ".") and e.name.endswith(".json"))]
        blobs = self.store.read_objects([e.oid for e in wanted])
        found = []
        for e in sorted(wanted, key=lambda e: (e.name != leaf, e.name)):
            path = f"{primary.rsplit('/', 1)[0]}/{e.name}"
            record = parse_record(blobs.get(e.oid, ("missing", b""))[1], f"{self.name}:{path}")
            if sha256 is None or record.wheel.sha256 == sha256:
                found.append((path, record))
        return found


def _placement_facts(data: bytes) -> tuple[str | None, frozenset[str]]:
    """The wheel digest and the signers a stored record names (read leniently: placement
    only needs these)."""
    try:
        doc = json.loads(data)
        value = doc["wheel"]["sha256"]
        signed = frozenset(str(s["signed_by"]) for s in doc.get("signatures") or [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, frozenset()
    return (value if isinstance(value, str) else None), signed


def check_branch_name(name: str) -> None:
    """Refuse names git would refuse, without asking git (so bad input fails before any work)."""
    bad = (not name or name.startswith(("-", "/", ".")) or name.endswith((".lock", "/", "."))
           or ".." in name or "//" in name or "@{" in name
           or any(ch in name for ch in " ~^:?*[\\\x7f") or any(ord(ch) < 32 for ch in name))
    if bad:
        raise AuditError(f"{name!r} is not a valid branch name",
                         hint="use a plain name such as audit or audit/ci")


def find_record(filename: str, sha256: str | None = None, *, repo: Path | None = None,
                branch: str | None = None) -> AuditRecord | None:
    """The audit branch's record of a wheel, for ``kiln verify`` when none lies beside it.

    The record with this ``sha256`` if there is one, else the first record of ``filename``
    (so that the verifier can say the wheel's digest is not the one signed); None when
    ``repo`` (default: the current folder) is not a repository or has no record of it.
    ``branch`` defaults to ``KILN_AUDIT_BRANCH`` or ``audit``. AuditError when the
    record there cannot be read.
    """
    try:
        wheel_folder(filename)
        audit = AuditBranch.open(repo or Path.cwd(),
                                 branch or os.environ.get("KILN_AUDIT_BRANCH") or DEFAULT_BRANCH)
    except AuditError:
        return None  # not a wheel filename, or not in a repository: nothing recorded here
    found = [record for _, record in audit.find(filename)]
    exact = [r for r in found if r.wheel.sha256 == sha256]
    return (exact or found)[0] if found else None

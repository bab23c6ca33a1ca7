"""``kiln audit push``: put our records on the remote's audit branch, whoever pushed first.

Fetch the remote branch, replay only our own record commits on top of it (records never
conflict: each adds one file; one the remote already has with the same digest is dropped,
one it has with another digest is kept beside it and flagged), then push — a plain
fast-forward, never forced. If someone pushed in between, the remote refuses; fetch and
replay again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from kiln.audit.branch import AuditBranch, pause
from kiln.audit.records import parse_record, parse_record_path
from kiln.errors import AuditError

MAX_PUSH_ATTEMPTS = 12


@dataclass
class Pushed:
    remote: str
    branch: str
    tip: str | None = None  # the remote's tip afterwards
    pushed: int = 0  # record commits the remote did not have
    dropped: list[str] = field(default_factory=list)  # the remote had them already
    conflicts: list[str] = field(default_factory=list)  # kept beside a record of another digest
    attempts: int = 0


def push_branch(audit: AuditBranch, remote: str = "origin",
                attempts: int = MAX_PUSH_ATTEMPTS) -> Pushed:
    """Fetch, replay our commits on the remote tip, push; retry when the remote moved."""
    store = audit.store
    if store.git("remote", "get-url", "--", remote, check=False).returncode != 0:
        raise AuditError(f"no remote named {remote!r} in this repository",
                         hint=f"git remote add {remote} URL, or pass --remote NAME")
    tracking = f"refs/remotes/{remote}/{audit.name}"
    rng = random.SystemRandom()  # its own seed in every process, even forked ones
    last_error = ""
    for attempt in range(1, attempts + 1):
        result = Pushed(remote=remote, branch=audit.name, attempts=attempt)
        local = audit.local_tip()
        remote_tip = _fetch(audit, remote, tracking)
        if local is None or (remote_tip is not None and store.is_ancestor(local, remote_tip)):
            # Nothing of ours is missing there: bring the local branch up to date.
            result.tip = remote_tip
            if remote_tip is None or local == remote_tip or store.compare_and_swap(
                    audit.ref, remote_tip, local, f"kiln audit push: fast-forward to {remote}"):
                return result
            continue
        if remote_tip is None or store.is_ancestor(remote_tip, local):
            new_tip = local
            result.pushed = len(store.range_commits(remote_tip, local))
        else:
            new_tip = _replay(audit, local, remote_tip, result)
        if new_tip != remote_tip:
            pushed = store.git("push", "--quiet", "--porcelain", remote,
                               f"{new_tip}:{audit.ref}", check=False, what="git push")
            if pushed.returncode != 0:
                last_error = _last_line(pushed.stderr) or _last_line(pushed.stdout)
                if _remote_tip(audit, remote) == remote_tip:
                    raise AuditError(f"git push {remote} {audit.name} failed: {last_error}",
                                     hint="check that you may push to the remote")
                time.sleep(pause(attempt, rng))  # someone pushed first: fetch and replay again
                continue
        store.git("update-ref", "-m", "kiln audit push", tracking, new_tip)
        result.tip = new_tip
        if store.compare_and_swap(audit.ref, new_tip, local, f"kiln audit push to {remote}"):
            return result
        # A record was added locally while we pushed: the next round pushes it too.
    raise AuditError(f"could not push {audit.name} to {remote}: it moved under us {attempts} "
                     f"times" + (f" (last: {last_error})" if last_error else ""),
                     hint="run `kiln audit push` again")


def _fetch(audit: AuditBranch, remote: str, tracking: str) -> str | None:
    """The remote's tip (fetched); AuditError if the remote rewrote what we fetched before."""
    store = audit.store
    if _remote_tip(audit, remote) is None:
        fetched = None
    else:
        scratch = f"refs/kiln/fetch/{remote}/{audit.name}"
        # --refmap= keeps git from moving the remote-tracking ref itself: only after the
        # rewrite check below may it move.
        store.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--refmap=", remote,
                  f"+{audit.ref}:{scratch}", what=f"git fetch {remote} {audit.name}")
        fetched = store.resolve(scratch)
        store.git("update-ref", "-d", scratch)
    before = store.resolve(tracking)
    if before is not None and (fetched is None or not store.is_ancestor(before, fetched)):
        gone = "was deleted" if fetched is None else "was rewritten (force-pushed)"
        raise AuditError(
            f"the audit branch on {remote} {gone}: {before[:12]}, which we fetched before, is "
            "no longer in its history",
            hint=f"see what changed with `kiln audit verify --since {before[:12]}`; if the "
                 f"rewrite was meant, `git update-ref -d {tracking}` and push again")
    if fetched is not None and fetched != before:
        store.git("update-ref", "-m", f"kiln audit: fetch {remote}", tracking, fetched)
    return fetched


def _remote_tip(audit: AuditBranch, remote: str) -> str | None:
    out = audit.store.text("ls-remote", "--", remote, audit.ref)
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        if ref == audit.ref:
            return oid
    return None


def _replay(audit: AuditBranch, local: str, remote_tip: str, result: Pushed) -> str:
    """Our commits (those the remote lacks), re-made one by one on top of ``remote_tip``."""
    store = audit.store
    ours = store.range_commits(remote_tip, local)
    changes = store.changes([c.oid for c in ours])
    current = remote_tip
    for commit in ours:
        found = changes.get(commit.oid, [])
        if len(commit.parents) > 1 or len(found) != 1 or found[0].status != "A":
            raise AuditError(f"local commit {commit.oid[:12]} on {audit.name} is not a record "
                             "commit (one added file); refusing to push it",
                             hint="`kiln audit verify` shows what is wrong with the branch")
        change = found[0]
        filename, _ = parse_record_path(change.path)
        record = parse_record(store.read_blob(change.new_oid), f"{commit.oid[:12]} "
                                                               f"{change.path}")
        added = audit.prepare(current, change.new_oid, filename, record.wheel.sha256,
                              author=commit.author, signers=record.signers)
        if added.commit is None:
            result.dropped.append(change.path)
            continue
        if added.status == "conflict":
            result.conflicts.append(added.path)
        result.pushed += 1
        current = added.commit
    return current


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""

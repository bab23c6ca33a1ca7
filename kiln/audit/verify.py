"""``kiln audit verify``: walk the whole branch and say what does not check out, and why.

A branch passes when it is one straight line of commits, each adding exactly one record
(nothing is ever modified or deleted), every record parses and sits at the path its
wheel names, every signature verifies under the policy and signs the statement the record
carries, every wheel of a given wheelhouse is recorded with its digest, and the branch
still descends from the commit a verifier pinned last time (``--since``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiln.audit.branch import AuditBranch
from kiln.audit.gitstore import Change, Commit
from kiln.audit.records import (
    AuditRecord,
    RecordedSignature,
    envelope_of,
    is_witness_path,
    parse_record,
    parse_record_path,
    signer_of,
    statement_facts,
    statement_of,
    subjects_name,
    witness_path,
)
from kiln.errors import AuditError, KilnError, SignerMismatchError
from kiln.files import sha256_file

Severity = Literal["failure", "conflict", "note"]
# Checks one signature under the verifier's policy and returns the statement it signs;
# None when the policy has nothing to check this kind of signature with.
SignatureCheck = Callable[[RecordedSignature], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    where: str
    reason: str


@dataclass
class BranchReport:
    branch: str
    ref: str = ""  # what was read: the local branch, or a remote's copy in a fresh clone
    tip: str | None = None
    commits: int = 0
    records: int = 0
    signatures_checked: int | None = None  # None: no policy was given
    wheels_checked: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity in ("failure", "conflict") for f in self.findings)

    def fail(self, where: str, reason: str, severity: Severity = "failure") -> None:
        self.findings.append(Finding(severity, where, reason))

    def as_json(self) -> dict[str, Any]:
        return {"branch": self.branch, "ref": self.ref, "tip": self.tip, "ok": self.ok,
                "commits": self.commits,
                "records": self.records, "signatures_checked": self.signatures_checked,
                "wheels_checked": self.wheels_checked,
                "findings": [f.__dict__ for f in self.findings]}


@dataclass(frozen=True)
class _Read:
    commit: Commit
    path: str
    record: AuditRecord
    alternative: bool


def verify_branch(audit: AuditBranch, *, check: SignatureCheck | None = None,
                  wheelhouse: Path | None = None, since: str | None = None) -> BranchReport:
    """Every check above; the report lists each failure with its reason."""
    report = BranchReport(branch=audit.name, signatures_checked=0 if check else None)
    tip = report.tip = audit.tip()
    report.ref = audit.read_ref()
    if tip is None:
        report.fail(audit.ref, "there is no audit branch in this repository")
        return report
    commits = audit.store.commits(tip)
    report.commits = len(commits)
    changes = audit.store.changes([c.oid for c in commits])
    added = _check_history(commits, changes, report)
    blobs = audit.store.read_objects([ch.new_oid for _, ch in added])
    reads = []
    for commit, change in added:
        where = f"{commit.oid[:12]} {change.path}"
        try:
            filename, alt_sha = parse_record_path(change.path)
            record = parse_record(blobs.get(change.new_oid, ("missing", b""))[1], change.path)
        except AuditError as exc:
            report.fail(where, exc.message)
            continue
        reads.append(_Read(commit, change.path, record, alt_sha is not None))
        _check_record(record, filename, alt_sha, commit, where, report)
        if check is not None:
            report.signatures_checked = (report.signatures_checked or 0) + \
                _check_signatures(record, check, where, report)
    report.records = len(reads)
    _check_conflicts(reads, report)
    if wheelhouse is not None:
        _check_wheelhouse(wheelhouse, reads, report)
    if since is not None:
        _check_since(audit, since, tip, report)
    return report


def signature_check(*, key: Path | Sequence[Path] | None = None, identity: str | None = None,
                    issuer: str | None = None, offline: bool = False,
                    staging: bool = False) -> SignatureCheck | None:
    """How to check signatures under the verifier's policy (None: no policy was given).

    DSSE envelopes are checked with ``key`` (or any one of several keys); Sigstore bundles
    with ``identity`` and ``issuer``. A record signature the policy has nothing for is left
    unchecked, and a record with no checked signature fails.
    """
    keys = [key] if isinstance(key, Path) else list(key or [])
    if not keys and identity is None:
        return None
    from kiln.signing.keys import load_public_key

    for one in keys:
        load_public_key(one)  # a bad key is a usage error now, not one failure per record

    def check(signature: RecordedSignature) -> dict[str, Any] | None:
        import json

        from kiln.provenance import parse_statement

        if signature.type == "dsse":
            if not keys:
                return None
            from kiln.errors import SignerMismatchError
            from kiln.signing.keys import verify_envelope_payload

            payload = b""
            for number, one in enumerate(keys, 1):
                try:
                    payload = verify_envelope_payload(signature.content, one,
                                                      origin=signature.file)
                    break
                except SignerMismatchError:
                    if number == len(keys):  # signed by none of them: say so for the last
                        raise
            parse_statement(payload, signature.file)  # kiln's SLSA field rules
            statement: dict[str, Any] = json.loads(payload)
            return statement
        if identity is None or issuer is None:
            return None
        from kiln.verify import VerifyPolicy, verify_bundle

        policy = VerifyPolicy(key=None, identity=identity, issuer=issuer, offline=offline,
                              staging=staging)
        verify_bundle(signature.content, policy, origin=signature.file)
        # The bundle checked out, so its payload is what was signed: compare that, byte for
        # byte decoded, rather than kiln.verify's normalised reading of it.
        return statement_of(envelope_of(signature), signature.file)

    return check


def _check_history(commits: list[Commit], changes: dict[str, list[Change]],
                   report: BranchReport) -> list[tuple[Commit, Change]]:
    """One root, no merges, and each commit adding exactly one record file."""
    roots = [c.oid[:12] for c in commits if not c.parents]
    if len(roots) != 1:
        report.fail("history", f"{len(roots)} root commits ({', '.join(roots)}); the audit "
                               "branch starts from one orphan commit")
    added = []
    for commit in commits:
        where = commit.oid[:12]
        if len(commit.parents) > 1:
            report.fail(where, "a merge commit; kiln writes the audit branch as a straight "
                               "line (use `kiln audit push`, which rebases)")
            continue
        found = changes.get(commit.oid, [])
        if len(found) != 1:
            report.fail(where, f"changes {len(found)} files; a record commit adds exactly one")
        for change in found:
            if change.status == "A" and change.new_mode == "100644":
                added.append((commit, change))
            elif change.status == "A":
                report.fail(f"{where} {change.path}", f"added with mode {change.new_mode}, "
                                                     "not as a plain file")
            else:
                what = {"M": "modified", "D": "deleted", "T": "changed type"}.get(
                    change.status, f"changed ({change.status})")
                report.fail(f"{where} {change.path}",
                            f"{what} after it was recorded; records are never changed")
    return added


def _check_record(record: AuditRecord, filename: str, alt_sha: str | None, commit: Commit,
                  where: str, report: BranchReport) -> None:
    wheel = record.wheel
    if wheel.filename != filename:
        report.fail(where, f"the record is about {wheel.filename}, not {filename}")
    if alt_sha is not None and wheel.sha256 != alt_sha:
        report.fail(where, f"the path names sha256 {alt_sha[:12]}…, the record "
                           f"{wheel.sha256[:12]}…")
    path = where.split(" ", 1)[-1]  # "<commit> <path>"
    if is_witness_path(path) and path != witness_path(filename, wheel.sha256, record.signers):
        report.fail(where, "the path does not name the record's signers")
    if f"{wheel.filename} sha256:{wheel.sha256}" not in commit.subject or \
            commit.message.strip().count("\n"):
        report.fail(where, f"the commit message does not name {wheel.filename} and its sha256 "
                           "on one line")
    if not subjects_name(record.statement, wheel.filename, wheel.sha256):
        report.fail(where, "the provenance statement does not name this wheel and digest")
    try:
        facts = statement_facts(record.statement, where)
    except AuditError as exc:
        report.fail(where, exc.message)
        facts = {}
    for name, said in facts.items():
        stands = getattr(record, name)
        if stands != said:
            report.fail(where, f"{name} in the record differs from the statement: "
                               f"{_short(stands)} vs {_short(said)}")
    # Even with no key at hand: what the record shows must be what was signed.
    signed_files = [(False, sig) for sig in record.signatures]
    for is_test, sig in [*signed_files, *((True, sig) for sig in record.test_results)]:
        try:
            signed = statement_of(envelope_of(sig), sig.file)
            claimed = signer_of(sig.type, sig.content, sig.file)
        except AuditError as exc:
            report.fail(where, exc.message)
            continue
        if is_test:
            if not subjects_name(signed, wheel.filename, wheel.sha256):
                report.fail(where, f"{sig.file}: the test result does not name this wheel "
                                   "and digest")
        elif signed != record.statement:
            report.fail(where, f"the statement differs from the one {sig.file} signs")
        if claimed != sig.signed_by:
            report.fail(where, f"signed_by says {sig.signed_by!r}, the signature {claimed!r}")


def _check_signatures(record: AuditRecord, check: SignatureCheck, where: str,
                      report: BranchReport) -> int:
    if not record.signatures:
        report.fail(where, "unsigned: the record has no signature to check")
        return 0
    checked = 0
    for sig in record.signatures:
        try:
            statement = check(sig)
        except KilnError as exc:
            report.fail(where, f"{sig.file}: {exc.message}")
            checked += 1
            continue
        if statement is None:
            continue
        checked += 1
        if not subjects_name(statement, record.wheel.filename, record.wheel.sha256):
            report.fail(where, f"{sig.file}: the signed statement does not name "
                               f"{record.wheel.filename} with its sha256")
        if statement != record.statement:
            report.fail(where, f"{sig.file}: the signed statement differs from the record's")
    if checked == 0:
        kinds = ", ".join(f"{s.type} ({s.signed_by})" for s in record.signatures)
        report.fail(where, f"no signature the policy can check: the record has {kinds}")
    for sig in record.test_results:  # a test result the policy can check must verify
        try:
            tested = check(sig)
        except SignerMismatchError:
            continue  # another signer's: its provenance signature is reported above
        except KilnError as exc:
            report.fail(where, f"{sig.file}: {exc.message}")
            continue
        if tested is not None and not subjects_name(tested, record.wheel.filename,
                                                    record.wheel.sha256):
            report.fail(where, f"{sig.file}: the signed test result does not name "
                               f"{record.wheel.filename} with its sha256")
    return checked


def _check_conflicts(reads: list[_Read], report: BranchReport) -> None:
    by_name: dict[str, list[_Read]] = {}
    for read in reads:
        by_name.setdefault(read.record.wheel.filename, []).append(read)
    for filename, group in by_name.items():
        digests = [r.record.wheel.sha256 for r in group]
        signed = [(r.record.wheel.sha256, r.record.signers) for r in group]
        if len(set(signed)) != len(signed):
            report.fail(filename, "recorded twice with the same sha256 and the same signers")
        if not any(not r.alternative for r in group):
            report.fail(filename, "a second record exists without the first")
        if len(set(digests)) > 1:
            builders = "; ".join(f"{r.record.wheel.sha256[:12]}… by {r.record.builder} "
                                 f"({r.commit.oid[:12]})" for r in group)
            known = all(not r.record.reproducibility.expected for r in group)
            report.fail(filename, f"{len(set(digests))} different digests: the wheel did not "
                                  f"reproduce across builders: {builders}"
                                  + (" (the recipe declares it known-unreproducible)"
                                     if known else ""),
                        "note" if known else "conflict")


def _check_wheelhouse(wheelhouse: Path, reads: list[_Read], report: BranchReport) -> None:
    if not wheelhouse.is_dir():
        report.fail(str(wheelhouse), "no such folder")
        return
    recorded: dict[str, set[str]] = {}
    for read in reads:
        recorded.setdefault(read.record.wheel.filename, set()).add(read.record.wheel.sha256)
    wheels = sorted(wheelhouse.glob("*.whl"))
    report.wheels_checked = len(wheels)
    for wheel in wheels:
        digest = sha256_file(wheel)
        known = recorded.get(wheel.name, set())
        if digest in known:
            continue
        if known:
            report.fail(str(wheel), f"sha256 {digest[:12]}… is not recorded (the branch has "
                                    f"{', '.join(d[:12] + '…' for d in sorted(known))})")
        else:
            report.fail(str(wheel), "no record on the audit branch")


def _check_since(audit: AuditBranch, since: str, tip: str, report: BranchReport) -> None:
    pinned = audit.store.resolve(since)
    if pinned is None:
        report.fail(f"--since {since}", "not a commit in this repository: the branch may have "
                                        "been rewritten and the old commits dropped (fetch "
                                        "them, or pin a commit you have)")
    elif not audit.store.is_ancestor(pinned, tip):
        report.fail(f"--since {since}", f"{pinned[:12]} is no longer in the branch's history: "
                                        "the audit branch was rewritten (force-pushed) since")


def _short(value: Any) -> str:
    text = value.model_dump_json() if hasattr(value, "model_dump_json") else repr(value)
    return text if len(text) <= 80 else text[:77] + "…"

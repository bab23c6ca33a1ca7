"""Quorum: trust a wheel when N independent builders signed statements for its very bytes.

A signer is a trust anchor the verifier names: a public key (``--key``), or a Sigstore
identity with its issuer (``--identity``/``--issuer``). Every signature kiln can find for
the wheel's filename is checked against every anchor: the ones beside the wheel and the
ones on the audit branch, where each builder's record of the same bytes is kept
(``kiln.audit.records``: a second signer of bytes already recorded adds a witness
record). A signature no anchor verifies is not counted, and not an error: anyone may
sign anything. A signature that claims a trusted key but does not verify is an error
(it was tampered with). A trusted signer who signed *other* bytes under the same filename
is a disagreement, and fails the wheel whatever the count: two builders that the
verifier trusts did not get the same wheel from the same recipe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import (
    AttestationMissingError,
    BuildersDisagreeError,
    QuorumError,
    SignerMismatchError,
    UsageError,
)
from kiln.files import sha256_file
from kiln.verify import (
    FoundAttestation,
    VerifiedSignature,
    VerifiedWheel,
    VerifyPolicy,
    find_attestations,
    summarise,
    verify_sigstore_attestation,
)


@dataclass(frozen=True)
class Anchor:
    """One signer the verifier trusts."""

    key: Path | None = None
    identity: str | None = None
    issuer: str | None = None

    @property
    def name(self) -> str:
        if self.key is not None:
            from kiln.signing.keys import keyid, load_public_key

            return f"key {keyid(load_public_key(self.key))[:16]}"
        return f"{self.identity} ({self.issuer})"


def anchors_from(keys: Sequence[Path], identities: Sequence[str],
                 issuers: Sequence[str]) -> tuple[Anchor, ...]:
    """The anchors of ``--key`` (repeatable) and ``--identity``/``--issuer`` pairs, in order."""
    if len(identities) != len(issuers):
        raise UsageError(f"{len(identities)} --identity and {len(issuers)} --issuer: each "
                         "identity needs its issuer",
                         hint="give them in pairs: --identity ID1 --issuer ISS1 --identity ID2 "
                              "--issuer ISS2")
    anchors = [Anchor(key=k) for k in keys]
    anchors += [Anchor(identity=i, issuer=s) for i, s in zip(identities, issuers, strict=True)]
    if not anchors:
        raise UsageError("say whom to trust: --key PUB (repeat it for each builder), or "
                         "--identity and --issuer", hint="kiln never accepts a signature "
                                                         "from just anyone")
    for anchor in anchors:
        anchor.name  # noqa: B018 - a bad key file is a usage error now, not one per wheel
    return tuple(anchors)


@dataclass(frozen=True)
class Vouch:
    """A trusted signer's statement about a wheel of this filename."""

    signer: str
    sha256: str
    builder: str | None
    origin: str

    def to_json(self) -> dict[str, Any]:
        return {"signer": self.signer, "sha256": self.sha256, "builder": self.builder,
                "attestation": self.origin}


@dataclass(frozen=True)
class QuorumResult:
    wheel: Path
    sha256: str
    needed: int
    agree: tuple[Vouch, ...]  # one per distinct signer of these bytes
    disagree: tuple[Vouch, ...]  # trusted signers of other bytes under this filename
    statement: dict[str, Any] = field(default_factory=dict)
    signatures: tuple[VerifiedSignature, ...] = ()

    @property
    def ok(self) -> bool:
        return len(self.agree) >= self.needed and not self.disagree

    @property
    def builders(self) -> list[str]:
        return [v.signer for v in self.agree]

    def problem(self) -> QuorumError | BuildersDisagreeError | None:
        """Why the wheel fails its quorum (None: it passes)."""
        name = self.wheel.name
        if self.disagree:
            first = self.disagree[0]
            others = "; ".join(f"{v.signer} signed {v.sha256[:16]}… (builder {v.builder}, "
                               f"{v.origin})" for v in self.disagree)
            return BuildersDisagreeError(
                f"{name}: builders disagree: its sha256 is {self.sha256[:16]}…, but {others}",
                hint=f"{first.signer} built other bytes from the same inputs: do not publish "
                     "it; `kiln rebuild` it or `kiln repro --against` to see why")
        if len(self.agree) < self.needed:
            have = ", ".join(self.builders) or "nobody"
            return QuorumError(
                f"{name}: {len(self.agree)} of {self.needed} required signers vouch for its "
                f"sha256 {self.sha256[:16]}… (signed by {have})",
                hint="another builder must rebuild it (`kiln rebuild`), sign with its own key "
                     "and record it on the audit branch; pass each builder's --key")
        return None

    def to_json(self) -> dict[str, Any]:
        error = self.problem()
        return {"wheel": self.wheel.name, "path": str(self.wheel), "sha256": self.sha256,
                "verified": self.ok, "quorum": self.needed,
                "signers": [v.to_json() for v in self.agree],
                "disagree": [v.to_json() for v in self.disagree],
                **({"error": {"kind": type(error).__name__, "message": error.message,
                              "hint": error.hint, "exit_code": error.exit_code}}
                   if error else {})}


def check_branches(audit_repo: Path | None, branches: Sequence[str]) -> None:
    """Refuse, before any wheel is read, an --audit-branch the repository does not have."""
    from kiln.audit.branch import AuditBranch
    from kiln.errors import AuditError

    repo = audit_repo or Path.cwd()
    for branch in branches:
        try:
            tip = AuditBranch.open(repo, branch).tip()
        except AuditError:
            raise UsageError(f"--audit-branch {branch}: {repo} is not a git repository",
                             hint="run in the mirror's repository, or pass --audit-repo REPO"
                             ) from None
        if tip is None:
            raise UsageError(f"--audit-branch {branch}: no such branch in {repo}",
                             hint=f"fetch it first: git fetch REBUILDER_REPO_URL audit:{branch}")


def recorded_attestations(wheel: Path, audit_repo: Path | None = None,
                          branch: str | None = None) -> list[FoundAttestation]:
    """Every signature the audit branch keeps for ``wheel``'s filename, whatever its digest."""
    import os

    from kiln.audit.branch import DEFAULT_BRANCH, AuditBranch
    from kiln.errors import AuditError

    try:
        audit = AuditBranch.open(audit_repo or Path.cwd(),
                                 branch or os.environ.get("KILN_AUDIT_BRANCH") or DEFAULT_BRANCH)
        found = audit.find(wheel.name)
    except AuditError:
        return []  # not a repository, or no branch: nothing recorded here
    return [FoundAttestation.from_bytes(json.dumps(sig.content).encode(),
                                        f"{audit.name}:{path} ({sig.file})")
            for path, record in found for sig in record.signatures]


def _statements(att: FoundAttestation, anchor: Anchor, policy: VerifyPolicy
                ) -> list[tuple[dict[str, Any], VerifiedSignature]]:
    """The statements ``anchor`` signed in ``att`` (empty: another signer's, or another kind)."""
    from kiln.verify import verify_envelope

    try:
        if anchor.key is not None:
            if att.kind != "dsse":
                return []
            statement = verify_envelope(att.data, anchor.key, origin=att.origin)
            return [(statement, VerifiedSignature("dsse", att.origin, anchor.name))]
        if att.kind == "dsse":
            return []
        return verify_sigstore_attestation(att, policy)
    except SignerMismatchError:
        return []


def check_quorum(wheel: Path, anchors: Sequence[Anchor], needed: int, *,
                 offline: bool = False, staging: bool = False, audit_repo: Path | None = None,
                 branches: Sequence[str] = (),
                 extra: Sequence[FoundAttestation] = ()) -> QuorumResult:
    """Who of ``anchors`` vouches for ``wheel``'s bytes, and who signed other bytes.

    SignatureError or MalformedAttestationError when a signature by a trusted signer was
    changed after signing; AttestationMissingError when there is nothing to check at all.
    """
    if needed < 1:
        raise UsageError(f"--quorum {needed}: a quorum is at least 1")
    if needed > len(anchors):
        raise UsageError(f"--quorum {needed} with {len(anchors)} trusted signer(s): it can "
                         "never be met", hint="pass one --key (or identity) per builder")
    if not wheel.is_file():
        raise UsageError(f"{wheel}: no such file", hint="pass the path of a wheel")
    # Each audit branch given (a rebuilder's, fetched beside ours), else the default one.
    read: list[str | None] = [*branches] or [None]
    recorded = [att for branch in read for att in recorded_attestations(wheel, audit_repo, branch)]
    found = [*extra, *find_attestations(wheel), *recorded]
    if not found:
        raise AttestationMissingError(
            f"{wheel.name}: no attestation beside it and no record of it on the audit branch",
            hint="each builder signs (`kiln build --sign-key`) and records (`--audit`, or "
                 "`kiln audit record`) its wheels; pass --audit-repo for another repository")
    digest = sha256_file(wheel)
    agree: dict[str, Vouch] = {}
    disagree: dict[tuple[str, str], Vouch] = {}
    statement: dict[str, Any] = {}
    signatures: list[VerifiedSignature] = []
    for att in found:
        for anchor in anchors:
            policy = VerifyPolicy(key=anchor.key, identity=anchor.identity,
                                  issuer=anchor.issuer, offline=offline, staging=staging)
            for signed, signature in _statements(att, anchor, policy):
                builder = ((signed.get("predicate") or {}).get("runDetails") or {}).get(
                    "builder", {}).get("id")
                for subject in signed.get("subject") or []:
                    if subject.get("name") != wheel.name:
                        continue
                    sha = (subject.get("digest") or {}).get("sha256", "")
                    vouch = Vouch(signature.signer, sha, builder, att.origin)
                    if sha == digest:
                        if signature.signer not in agree:
                            agree[signature.signer] = vouch
                            signatures.append(signature)
                        statement = statement or signed
                    else:
                        disagree.setdefault((signature.signer, sha), vouch)
    return QuorumResult(wheel, digest, needed, tuple(agree.values()), tuple(disagree.values()),
                        statement, tuple(signatures))


def verified(result: QuorumResult) -> VerifiedWheel:
    """What the agreed statement says, for the same table ``kiln verify`` prints."""
    error = result.problem()
    if error is not None:
        raise error
    return summarise(result.wheel, result.sha256, result.statement, result.signatures)

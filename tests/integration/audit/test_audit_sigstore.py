"""`kiln audit verify` with a Sigstore policy, offline, against a real recorded bundle.

Signing needs Sigstore's servers, so the record is made by hand around a real bundle
(tests/assets/sigstore: a wheel signed on Sigstore's staging instance by an email
identity). Its statement is a PyPI publish attestation, not kiln provenance, so the
record's kiln fields are flagged; what is tested here is the signature check.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audit_helpers import kiln

from kiln.audit import AuditBranch
from kiln.audit.records import (
    AuditRecord,
    FileDigest,
    RecordedSignature,
    Reproducibility,
    SourceDigest,
    WheelDigest,
    envelope_of,
    signer_of,
    statement_of,
)
from kiln.files import Artifact

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "sigstore"
WHEEL = ASSETS / "rfc8785-0.1.2-py3-none-any.whl"
IDENTITY = "william@yossarian.net"
ISSUER = "https://github.com/login/oauth"


def _record_real_bundle(repo: Path) -> None:
    content = json.loads((ASSETS / (WHEEL.name + ".sigstore")).read_bytes())
    sig = RecordedSignature(type="sigstore", file=WHEEL.name + ".sigstore.json",
                            signed_by=signer_of("sigstore", content, "bundle"), content=content)
    art = Artifact.of(WHEEL)
    record = AuditRecord(
        wheel=WheelDigest(filename=art.name, sha256=art.sha256, size=art.size),
        project="rfc8785", version="0.1.2", build_id="x", python="3.11", target="any",
        source=SourceDigest(url="https://example.org", filename="", sha256="0" * 64),
        recipe=FileDigest(path="recipes/rfc8785.toml", sha256="0" * 64), lock=None,
        build_log=None, reproducibility=Reproducibility(checked=False, reproducible=None),
        builder="by hand", statement=statement_of(envelope_of(sig), sig.file),
        signatures=[sig], recorded_at=datetime.now(timezone.utc), recorded_by="test")
    assert AuditBranch.open(repo).add(record).status == "recorded"


def _signature_findings(repo: Path, *policy: str) -> tuple[dict[str, Any], list[str]]:
    result = kiln("audit", "verify", *policy, "--staging", "--offline", "--json", cwd=repo)
    report = json.loads(result.stdout)
    return report, [f["reason"] for f in report["findings"] if ".sigstore.json" in f["reason"]
                    or "no signature the policy" in f["reason"]]


def test_the_certificate_identity_is_what_the_record_says_signed(repo):
    _record_real_bundle(repo)
    log = json.loads(kiln("audit", "log", "--json", cwd=repo).stdout)
    assert log[0]["signed_by"] == IDENTITY


def test_a_sigstore_signature_checks_under_the_right_identity_only(repo, signing_key):
    _record_real_bundle(repo)
    report, problems = _signature_findings(repo, "--identity", IDENTITY, "--issuer", ISSUER)
    assert report["signatures_checked"] == 1
    assert problems == []
    # Not kiln provenance: flagged as such, never silently accepted.
    assert any("not kiln's" in f["reason"] for f in report["findings"])
    _, wrong = _signature_findings(repo, "--identity", "mallory@example.org", "--issuer", ISSUER)
    assert len(wrong) == 1 and "mallory@example.org" in wrong[0]
    _, issuer = _signature_findings(repo, "--identity", IDENTITY, "--issuer",
                                    "https://accounts.google.com")
    assert len(issuer) == 1
    # A key policy has nothing to check a Sigstore bundle with: that is a failure too.
    _, keyed = _signature_findings(repo, "--key", str(signing_key[1]))
    assert len(keyed) == 1 and "no signature the policy can check" in keyed[0]

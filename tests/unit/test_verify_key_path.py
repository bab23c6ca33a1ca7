"""`kiln verify` with a key, on a made-up wheel: what passes, each doubt's own error, and
what the report says the statement claims (the same path the CLI takes, without a build).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import (
    AttestationMissingError,
    MalformedAttestationError,
    SignatureError,
    SignerMismatchError,
    SubjectNameError,
    UsageError,
    WheelDigestError,
)
from kiln.files import sha256_file
from kiln.provenance import build_statement
from kiln.record import (
    BuildRecord,
    FileRef,
    InterpreterRef,
    LockRef,
    Normalisation,
    RecipeRef,
    RepairRef,
    ReproRef,
    SandboxRef,
    SourceRef,
    WheelRef,
)
from kiln.record import TestRef as _TestRef
from kiln.signing.keys import KeyPair, generate_keypair, sign_with_key
from kiln.signing.wheels import DSSE_SUFFIX
from kiln.verify import FoundAttestation, VerifyPolicy, find_attestations, verify_wheel

WHEEL = "demo_pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)
BUILDER = "https://builders.example/ci"


def build_record(wheel: Path, *, reproducible: bool | None = True,
                 tests_ran: bool = True) -> BuildRecord:
    sha = sha256_file(wheel)
    return BuildRecord(
        kiln_version="0.1.0", build_id="b" * 64,
        recipe=RecipeRef(path="recipes/demo.toml", sha256="1" * 64, name="demo-pkg",
                         version="2.0"),
        lock=LockRef(path="recipes/demo.lock", sha256="2" * 64),
        source=SourceRef(url="https://example.org/demo-2.0.tar.gz", filename="demo-2.0.tar.gz",
                         sha256="3" * 64, size=10),
        python=InterpreterRef(version="3.11.2", path="/usr/bin/python3.11", sha256="4" * 64,
                              tag="cp311"),
        target="linux-x86_64", backend="native", toolchain=[], build_requirements=[],
        environment={}, normalisation=Normalisation(
            source_date_epoch=1700000000, prefix_maps={}, fixed_paths=True,
            zip_canonical=True, umask="022", fixed_environment={}),
        sandbox=SandboxRef(tool="bwrap", network="none"),
        outputs=[WheelRef(filename=wheel.name, sha256=sha, size=wheel.stat().st_size,
                          python_tag="cp311", abi_tag="cp311",
                          platform_tags=["manylinux_2_17_x86_64"])],
        repair=RepairRef(tool="auditwheel", policy="manylinux_2_17_x86_64",
                         raw=FileRef(name="raw.whl", sha256="6" * 64, size=4)),
        test=_TestRef(ran=tests_ran, passed=True if tests_ran else None),
        repro=(ReproRef(checked=True, reproducible=reproducible, digests=[sha, "7" * 64],
                        variations=["umask"]) if reproducible is not None else None),
        log=FileRef(name="logs/demo.log", sha256="5" * 64, size=3),
        host="test-host", started=WHEN, finished=WHEN, seconds=1.0, stages={},
    )


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyPair:
    monkeypatch.delenv("KILN_KEY_PASSWORD", raising=False)
    return generate_keypair(tmp_path / "keys" / "kiln")


def signed_wheel(folder: Path, keys: KeyPair, **record: Any) -> tuple[Path, dict[str, Any]]:
    """A wheel and its W.dsse.json beside it; returns the wheel and the signed statement."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / WHEEL
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    statement = build_statement(build_record(wheel, **record), recipe_values={"a": 1},
                                env={"KILN_BUILDER_ID": BUILDER})
    envelope = sign_with_key(statement, keys.private)
    wheel.with_name(wheel.name + DSSE_SUFFIX).write_text(json.dumps(envelope))
    return wheel, statement


def test_a_signed_wheel_verifies_and_says_what_its_statement_claims(keys: KeyPair,
                                                                    tmp_path: Path) -> None:
    wheel, statement = signed_wheel(tmp_path, keys)
    result = verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert result.sha256 == sha256_file(wheel)
    assert result.statement == statement
    (signature,) = result.signatures
    assert (signature.kind, signature.signer, signature.issuer) == (
        "dsse", f"key {keys.keyid}", None)
    assert signature.origin == str(wheel.with_name(wheel.name + DSSE_SUFFIX))
    report = result.to_json()
    assert {k: v for k, v in report.items() if k != "statement"} == {
        "wheel": WHEEL, "path": str(wheel), "sha256": sha256_file(wheel), "verified": True,
        "signatures": [{"kind": "dsse", "attestation": signature.origin,
                        "signer": f"key {keys.keyid}", "issuer": None}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "buildType": "https://kiln.dev/build/v1", "builder": BUILDER,
        "started": "2024-01-01T00:00:00Z", "finished": "2024-01-01T00:00:00Z",
        "sdist": "https://example.org/demo-2.0.tar.gz", "sdistSha256": "3" * 64,
        "recipe": "recipes/demo.toml", "recipeSha256": "1" * 64,
        "python": "3.11.2", "target": "linux-x86_64",
        "reproducible": True, "reproDigests": [sha256_file(wheel), "7" * 64],
        "testsPassed": True, "signedTests": None, "libraries": []}
    assert report["statement"] == statement


def test_unreproduced_and_untested_are_said_plainly(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys, reproducible=False, tests_ran=False)
    result = verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert (result.reproducible, result.tests_passed) == (False, None)
    wheel, _ = signed_wheel(tmp_path / "unchecked", keys, reproducible=None)
    assert verify_wheel(wheel, VerifyPolicy(key=keys.public)).reproducible is None


def test_the_attestation_can_be_given(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path / "a", keys)
    envelope = wheel.with_name(wheel.name + DSSE_SUFFIX)
    moved = tmp_path / "elsewhere.json"
    envelope.rename(moved)
    assert find_attestations(wheel) == []
    for given in (moved, FoundAttestation.from_path(moved), [FoundAttestation.from_path(moved)]):
        assert verify_wheel(wheel, VerifyPolicy(key=keys.public), attestation=given).sha256


def test_changed_bytes_fail_with_the_digest_error(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(WheelDigestError, match="changed after signing") as exc:
        verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert exc.value.exit_code == 22


def test_a_renamed_wheel_fails_with_the_name_error(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    renamed = wheel.with_name("demo_pkg-2.0-py3-none-any.whl")
    wheel.rename(renamed)
    renamed.with_name(renamed.name + DSSE_SUFFIX).write_bytes(
        wheel.with_name(wheel.name + DSSE_SUFFIX).read_bytes())
    with pytest.raises(SubjectNameError, match=f"signs these bytes as {WHEEL}") as exc:
        verify_wheel(renamed, VerifyPolicy(key=keys.public))
    assert exc.value.exit_code == 23


def test_another_wheels_statement_fails_with_the_name_error(keys: KeyPair,
                                                            tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path / "a", keys)
    other = tmp_path / "b" / "other-1.0-py3-none-any.whl"
    other.parent.mkdir()
    other.write_bytes(b"other bytes")
    with pytest.raises(SubjectNameError, match=f"is about {WHEEL}, not this wheel"):
        verify_wheel(other, VerifyPolicy(key=keys.public),
                     attestation=wheel.with_name(wheel.name + DSSE_SUFFIX))


def test_another_key_fails_with_the_signer_error(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    stranger = generate_keypair(tmp_path / "stranger")
    with pytest.raises(SignerMismatchError) as exc:
        verify_wheel(wheel, VerifyPolicy(key=stranger.public))
    assert exc.value.exit_code == 25


def test_an_edited_statement_fails_with_the_signature_error(keys: KeyPair,
                                                            tmp_path: Path) -> None:
    wheel, statement = signed_wheel(tmp_path, keys)
    envelope_path = wheel.with_name(wheel.name + DSSE_SUFFIX)
    envelope = json.loads(envelope_path.read_text())
    statement["predicate"]["buildDefinition"]["externalParameters"]["target"] = "linux-riscv"
    envelope["payload"] = sign_with_key(statement, keys.private)["payload"]
    envelope_path.write_text(json.dumps(envelope))
    with pytest.raises(SignatureError) as exc:
        verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert exc.value.exit_code == 24


def test_a_key_policy_needs_a_key_signed_envelope(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    wheel.with_name(wheel.name + DSSE_SUFFIX).unlink()
    bundle = wheel.with_name(wheel.name + ".sigstore.json")
    bundle.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')
    with pytest.raises(AttestationMissingError, match=f"looked for {WHEEL}{DSSE_SUFFIX}"):
        verify_wheel(wheel, VerifyPolicy(key=keys.public))


def test_every_envelope_checked_must_pass(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    good = FoundAttestation.from_path(wheel.with_name(wheel.name + DSSE_SUFFIX))
    stranger = generate_keypair(tmp_path / "stranger")
    statement = build_statement(build_record(wheel), recipe_values={},
                                env={"KILN_BUILDER_ID": BUILDER})
    bad = FoundAttestation.from_bytes(json.dumps(sign_with_key(statement, stranger.private))
                                      .encode(), "by a stranger")
    for order in ([good, bad], [bad, good]):
        with pytest.raises(SignerMismatchError, match="by a stranger"):
            verify_wheel(wheel, VerifyPolicy(key=keys.public), attestation=order)


def test_a_missing_wheel_and_a_missing_attestation(keys: KeyPair, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no such file"):
        verify_wheel(tmp_path / WHEEL, VerifyPolicy(key=keys.public))
    wheel, _ = signed_wheel(tmp_path, keys)
    wheel.with_name(wheel.name + DSSE_SUFFIX).unlink()
    import kiln.audit

    monkeypatch.setattr(kiln.audit, "attestations_for", lambda wheel: [])
    with pytest.raises(AttestationMissingError, match="no attestation") as exc:
        verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert exc.value.exit_code == 26


def test_the_audit_branch_is_asked_only_when_nothing_lies_beside(
        keys: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    envelope = wheel.with_name(wheel.name + DSSE_SUFFIX)
    recorded = FoundAttestation.from_path(envelope)
    asked: list[Path] = []

    def from_the_branch(wheel: Path) -> list[FoundAttestation]:
        asked.append(wheel)
        return [recorded]

    import kiln.audit

    monkeypatch.setattr(kiln.audit, "attestations_for", from_the_branch)
    verify_wheel(wheel, VerifyPolicy(key=keys.public))
    assert asked == []
    envelope.unlink()
    assert verify_wheel(wheel, VerifyPolicy(key=keys.public)).signatures[0].origin == str(envelope)
    assert asked == [wheel]


def test_a_statement_that_is_not_json_is_malformed(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path, keys)
    envelope = wheel.with_name(wheel.name + DSSE_SUFFIX)
    for junk in (b"{not json", b"[1, 2]", b'{"hello": "world"}'):
        envelope.write_bytes(junk)
        with pytest.raises(MalformedAttestationError) as exc:
            verify_wheel(wheel, VerifyPolicy(key=keys.public))
        assert exc.value.exit_code == 27



def test_every_statement_checked_must_name_the_wheel(keys: KeyPair, tmp_path: Path) -> None:
    wheel, _ = signed_wheel(tmp_path / "a", keys)
    other, _ = signed_wheel(tmp_path / "b", keys)
    other.write_bytes(b"another build")
    ours = FoundAttestation.from_path(wheel.with_name(wheel.name + DSSE_SUFFIX))
    statement = build_statement(build_record(other), recipe_values={},
                                env={"KILN_BUILDER_ID": BUILDER})
    theirs = FoundAttestation.from_bytes(
        json.dumps(sign_with_key(statement, keys.private)).encode(), "about other bytes")
    for order in ([ours, theirs], [theirs, ours]):
        with pytest.raises(WheelDigestError, match="about other bytes"):
            verify_wheel(wheel, VerifyPolicy(key=keys.public), attestation=order)


def test_the_summary_is_of_kilns_statement_whatever_the_order(keys: KeyPair,
                                                              tmp_path: Path) -> None:
    wheel, statement = signed_wheel(tmp_path, keys)
    kiln = FoundAttestation.from_path(wheel.with_name(wheel.name + DSSE_SUFFIX))
    publish = {"_type": "https://in-toto.io/Statement/v1",
               "subject": statement["subject"],
               "predicateType": "https://docs.pypi.org/attestations/publish/v1",
               "predicate": None}
    other = FoundAttestation.from_bytes(
        json.dumps(sign_with_key(publish, keys.private)).encode(), "publish")
    for order in ([kiln, other], [other, kiln]):
        result = verify_wheel(wheel, VerifyPolicy(key=keys.public), attestation=order)
        assert result.build_type == "https://kiln.dev/build/v1"
        assert result.statement == statement
        assert [s.origin for s in result.signatures] == [a.origin for a in order]


def test_tests_that_did_not_run_neither_passed_nor_failed(tmp_path: Path) -> None:
    from kiln.verify import summarise

    statement = {"predicateType": "https://slsa.dev/provenance/v1", "predicate": {
        "buildDefinition": {"buildType": "https://kiln.dev/build/v1"},
        "runDetails": {"byproducts": [{"name": "tests",
                                       "annotations": {"ran": False, "passed": False}}]}}}
    assert summarise(tmp_path / WHEEL, "0" * 64, statement, ()).tests_passed is None
    statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["ran"] = True
    assert summarise(tmp_path / WHEEL, "0" * 64, statement, ()).tests_passed is False

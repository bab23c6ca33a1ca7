"""Local-key signing: key files, DSSE envelopes other tools accept, each way a check fails."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kiln.errors import (
    MalformedAttestationError,
    SignatureError,
    SignerMismatchError,
    SigningError,
    UsageError,
)
from kiln.provenance import PAYLOAD_TYPE
from kiln.signing.keys import (
    PASSWORD_ENV,
    generate_keypair,
    keyid,
    load_private_key,
    load_public_key,
    pae,
    sign_with_key,
)
from kiln.verify import verify_envelope

STATEMENT: dict[str, Any] = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "demo-1.0-py3-none-any.whl", "digest": {"sha256": "ab" * 32}}],
    "predicateType": "https://example.com/test/v1",
    "predicate": {"note": "hello"},
}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    return generate_keypair(tmp_path / "keys" / "kiln")


def test_keygen_writes_a_p256_pair_private_key_0600(keys: Any) -> None:
    assert keys.private.name == "kiln.key" and keys.public.name == "kiln.pub"
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    assert keys.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private = load_private_key(keys.private)
    assert private.curve.name == "secp256r1"
    der = load_public_key(keys.public).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys.keyid == hashlib.sha256(der).hexdigest() == keyid(private.public_key())


@pytest.mark.parametrize("existing", ["kiln.key", "kiln.pub"])
def test_keygen_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("mine")
    with pytest.raises(UsageError, match="never overwrites"):
        generate_keypair(tmp_path / "kiln")
    assert (tmp_path / existing).read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_pae_matches_the_dsse_spec_example() -> None:
    # From https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world")


def test_envelope_shape_and_round_trip(keys: Any) -> None:
    env = sign_with_key(STATEMENT, keys.private)
    assert set(env) == {"payloadType", "payload", "signatures"}
    assert env["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == keys.keyid
    assert json.loads(base64.b64decode(env["payload"])) == STATEMENT
    assert verify_envelope(env, keys.public) == STATEMENT


def test_securesystemslib_verifies_kilns_envelope(keys: Any) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    env = sign_with_key(STATEMENT, keys.private)
    ours = SSlibKey.from_crypto(load_public_key(keys.public), keyid=keys.keyid)
    assert ours.scheme == "ecdsa-sha2-nistp256"
    verified = Envelope.from_dict(copy.deepcopy(env)).verify([ours], 1)
    assert list(verified) == [keys.keyid]
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    from securesystemslib.exceptions import VerificationError as SslibVerificationError

    with pytest.raises(SslibVerificationError):
        Envelope.from_dict(copy.deepcopy(env)).verify(
            [SSlibKey.from_crypto(other, keyid=keys.keyid)], 1)


def test_kiln_verifies_securesystemslibs_envelope(keys: Any) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner(load_private_key(keys.private))
    envelope = Envelope(payload=json.dumps(STATEMENT).encode(), payload_type=PAYLOAD_TYPE,
                        signatures={})
    envelope.sign(signer)
    assert verify_envelope(envelope.to_dict(), keys.public) == STATEMENT


def test_statement_edited_after_signing(keys: Any) -> None:
    env = sign_with_key(STATEMENT, keys.private)
    edited = copy.deepcopy(STATEMENT)
    edited["subject"][0]["digest"]["sha256"] = "cd" * 32
    env["payload"] = base64.b64encode(json.dumps(edited).encode()).decode()
    with pytest.raises(SignatureError, match="changed after signing") as exc:
        verify_envelope(env, keys.public)
    assert exc.value.exit_code == 24


def test_payload_type_is_signed_too(keys: Any) -> None:
    env = sign_with_key(STATEMENT, keys.private)
    env["payloadType"] = "application/json"
    with pytest.raises(MalformedAttestationError, match="payloadType"):
        verify_envelope(env, keys.public)


def test_wrong_key(keys: Any, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other")
    env = sign_with_key(STATEMENT, keys.private)
    with pytest.raises(SignerMismatchError, match="signed by another key") as exc:
        verify_envelope(env, other.public)
    assert exc.value.exit_code == 25
    # A keyid is only a hint: claiming the right one does not make a wrong signature pass.
    env["signatures"][0]["keyid"] = other.keyid
    with pytest.raises(SignatureError):
        verify_envelope(env, other.public)


def test_one_good_signature_among_several_is_enough(keys: Any, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other")
    env = sign_with_key(STATEMENT, keys.private)
    env["signatures"].insert(0, sign_with_key(STATEMENT, other.private)["signatures"][0])
    assert verify_envelope(env, keys.public) == STATEMENT


@pytest.mark.parametrize("damage", ["extra-field", "bad-base64", "no-signatures", "not-json",
                                    "not-in-toto"])
def test_malformed_envelopes(keys: Any, damage: str) -> None:
    env: Any = sign_with_key(STATEMENT, keys.private)
    if damage == "extra-field":
        env["note"] = "x"
    elif damage == "bad-base64":
        env["payload"] = "%%%"
    elif damage == "no-signatures":
        env["signatures"] = []
    elif damage == "not-json":
        env = b"{not json"
    elif damage == "not-in-toto":
        env = sign_with_key({"hello": "world"}, keys.private)
    with pytest.raises(MalformedAttestationError) as exc:
        verify_envelope(env, keys.public)
    assert exc.value.exit_code == 27


def test_encrypted_key_needs_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    pair = generate_keypair(tmp_path / "enc")
    assert b"ENCRYPTED" in pair.private.read_bytes()
    assert load_private_key(pair.private).curve.name == "secp256r1"
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(SigningError, match="encrypted"):
        load_private_key(pair.private)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(SigningError, match="wrong password"):
        load_private_key(pair.private)


def test_only_p256_keys(tmp_path: Path) -> None:
    for name, key in (("p384", ec.generate_private_key(ec.SECP384R1())),
                      ("ed25519", ed25519.Ed25519PrivateKey.generate())):
        path = tmp_path / f"{name}.key"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        with pytest.raises(SigningError, match="P-256"):
            load_private_key(path)
    with pytest.raises(SigningError, match="cannot read"):
        load_private_key(tmp_path / "missing.key")


def test_verifying_with_the_private_key_is_refused(keys: Any) -> None:
    with pytest.raises(UsageError, match="private key"):
        load_public_key(keys.private)


def test_only_p256_public_keys(tmp_path: Path) -> None:
    for name, key in (("p384", ec.generate_private_key(ec.SECP384R1())),
                      ("ed25519", ed25519.Ed25519PrivateKey.generate())):
        path = tmp_path / f"{name}.pub"
        path.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        with pytest.raises(UsageError, match="not an ECDSA P-256 public key"):
            load_public_key(path)
    (tmp_path / "junk.pub").write_text("-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(UsageError, match="cannot read the public key"):
        load_public_key(tmp_path / "missing.pub")


def test_public_key_file_is_world_readable_only(keys: Any) -> None:
    assert stat.S_IMODE(keys.public.stat().st_mode) == 0o644


def test_signing_with_a_loaded_key_and_verifying_envelope_bytes(keys: Any) -> None:
    env = sign_with_key(STATEMENT, load_private_key(keys.private))
    assert verify_envelope(json.dumps(env).encode(), keys.public) == STATEMENT
    assert env == sign_with_key(STATEMENT, keys.private) | {"signatures": env["signatures"]}


def test_an_encrypted_key_without_its_password_says_so(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    pair = generate_keypair(tmp_path / "enc")
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(SigningError, match="the key is encrypted") as exc:
        load_private_key(pair.private)
    assert f"set {PASSWORD_ENV}" in (exc.value.hint or "")
    plain = generate_keypair(tmp_path / "plain")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    with pytest.raises(SigningError, match="the key is not encrypted") as exc:
        load_private_key(plain.private)
    assert f"unset {PASSWORD_ENV}" in (exc.value.hint or "")


def test_an_envelope_is_written_whole_as_json(keys: Any, tmp_path: Path) -> None:
    from kiln.signing.keys import write_envelope

    env = sign_with_key(STATEMENT, keys.private)
    target = tmp_path / "demo-1.0-py3-none-any.whl.dsse.json"
    write_envelope(env, target)
    text = target.read_text()
    assert json.loads(text) == env and text.endswith("}\n") and "\n  \"payload" in text
    assert verify_envelope(target.read_bytes(), keys.public) == STATEMENT

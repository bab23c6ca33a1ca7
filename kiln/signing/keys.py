"""Signing with a local ECDSA P-256 key: DSSE envelopes that other in-toto tooling can check.

The envelope is DSSE v1 (https://github.com/secure-systems-lab/dsse): the signature is
ECDSA-SHA256 (DER) over ``PAE(payloadType, payload)``; ``keyid`` is the sha256 of the
public key's DER SubjectPublicKeyInfo, in hex, so anyone holding the ``.pub`` file can
compute it. securesystemslib's ``dsse.Envelope.verify`` accepts these envelopes with an
``SSlibKey`` made from the same public key and keyid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import (
    MalformedAttestationError,
    SignatureError,
    SignerMismatchError,
    SigningError,
    UsageError,
)
from kiln.files import write_atomic, write_new
from kiln.provenance import PAYLOAD_TYPE, statement_bytes

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
PASSWORD_ENV = "KILN_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    keyid: str


class DsseSignature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keyid: str = ""
    sig: str


class DsseEnvelope(BaseModel):
    """A DSSE envelope as JSON: the fields the spec defines and no others."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    payload: str
    payloadType: str
    signatures: list[DsseSignature] = Field(min_length=1)


def keyid(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def generate_keypair(prefix: Path) -> KeyPair:
    """Write ``prefix.key`` (PKCS#8 PEM, mode 0600) and ``prefix.pub``; never overwrite either."""
    private_path = prefix.with_name(prefix.name + PRIVATE_SUFFIX)
    public_path = prefix.with_name(prefix.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; kiln never overwrites a key",
                             hint="choose another -o prefix, or move the old pair away first")
    key = ec.generate_private_key(ec.SECP256R1())
    password = os.environ.get(PASSWORD_ENV)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password
        else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        write_new(private_path, private_pem, mode=0o600)
    except FileExistsError as exc:  # appeared since the check above
        raise UsageError(f"{private_path} already exists; kiln never overwrites a key") from exc
    try:
        write_new(public_path, public_pem, mode=0o644)
    except FileExistsError as exc:
        private_path.unlink()
        raise UsageError(f"{public_path} already exists; kiln never overwrites a key") from exc
    return KeyPair(private=private_path, public=public_path, keyid=keyid(key.public_key()))


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from PEM (encrypted ones with ``KILN_KEY_PASSWORD``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the signing key ({exc.strerror})",
                           hint="make one with `kiln keygen -o keys/kiln`") from exc
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError as exc:
        what = "is encrypted" if password is None else "is not encrypted"
        raise SigningError(f"{path}: the key {what}",
                           hint=f"set {PASSWORD_ENV} to its password" if password is None
                           else f"unset {PASSWORD_ENV}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{path}: not a PEM private key, or a wrong password ({exc})",
                           hint="pass the .key file that `kiln keygen` wrote") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningError(f"{path}: kiln signs with ECDSA P-256 keys only",
                           hint="make one with `kiln keygen -o keys/kiln`")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key from PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the public key ({exc.strerror})",
                         hint="pass the .pub file that `kiln keygen` wrote") from exc
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{path} is a private key",
                         hint="verify with the public half (the .pub file); keep the .key secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})",
                         hint="pass the .pub file that `kiln keygen` wrote") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise UsageError(f"{path}: not an ECDSA P-256 public key",
                         hint="kiln's key signatures are ECDSA P-256 (`kiln keygen`)")
    return key


def sign_with_key(statement: Mapping[str, Any],
                  key: Path | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """A DSSE envelope (as a JSON-ready dict) over ``statement``, signed with ``key``."""
    private = load_private_key(key) if isinstance(key, Path) else key
    payload = statement_bytes(statement)
    signature = private.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid(private.public_key()),
                        "sig": base64.b64encode(signature).decode()}],
    }


def write_envelope(envelope: Mapping[str, Any], target: Path) -> None:
    import json

    write_atomic(target, json.dumps(envelope, indent=2) + "\n")


def _b64(value: str, what: str, origin: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedAttestationError(f"{origin}: {what} is not valid base64") from exc


def verify_envelope_payload(envelope: Mapping[str, Any] | bytes, public_key: Path, *,
                            origin: str = "envelope") -> bytes:
    """Check a DSSE envelope's signature with ``public_key``; return the signed payload bytes.

    One signature by the key is enough (DSSE allows several); ``keyid`` is only a hint
    and is never trusted, but when no signature verifies it tells a wrong key from an
    edited statement.
    """
    key = load_public_key(public_key)
    try:
        model = (DsseEnvelope.model_validate_json(envelope) if isinstance(envelope, bytes)
                 else DsseEnvelope.model_validate(dict(envelope)))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top)"
        raise MalformedAttestationError(f"{origin}: not a DSSE envelope ({where}: {first['msg']})",
                                        hint="kiln writes these as <wheel>.dsse.json") from exc
    if model.payloadType != PAYLOAD_TYPE:
        raise MalformedAttestationError(
            f"{origin}: payloadType is {model.payloadType!r}, not {PAYLOAD_TYPE!r}")
    payload = _b64(model.payload, "the payload", origin)
    message = pae(model.payloadType, payload)
    ours = keyid(key)
    for signature in model.signatures:
        sig = _b64(signature.sig, "a signature", origin)
        try:
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return payload
    named = [s.keyid for s in model.signatures]
    if ours in named:
        raise SignatureError(
            f"{origin}: the signature by {public_key} (keyid {ours[:16]}…) does not match the "
            "statement: it was changed after signing",
            hint="do not trust this wheel; rebuild or re-fetch it with its attestation")
    shown = ", ".join(f"{k[:16]}…" if k else "(no keyid)" for k in named)
    raise SignerMismatchError(
        f"{origin}: signed by another key (keyid {shown}), not by {public_key} "
        f"(keyid {ours[:16]}…)",
        hint="check that you were given the right public key for this wheelhouse")

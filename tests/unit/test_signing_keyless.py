"""Keyless signing up to the network call: tokens, the signing context, the files it writes.

Sigstore's servers are not reachable here, so the signer itself is replaced where the
real one would ask Fulcio for a certificate; everything before that runs for real.
The online test (tests/integration/test_keyless_online.py) signs for real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest

from kiln.errors import SigningError
from kiln.provenance import statement_bytes
from kiln.signing import keyless
from kiln.signing.keyless import (
    KeylessSigner,
    find_identity_token,
    keyless_signer,
    parse_identity_token,
    sign_keyless,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "sigstore"
RECORDED_WHEEL = ASSETS / "rfc8785-0.1.2-py3-none-any.whl"
RECORDED_BUNDLE = ASSETS / "rfc8785-0.1.2-py3-none-any.whl.sigstore"
AMBIENT = ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
           "GOOGLE_SERVICE_ACCOUNT_NAME", "BUILDKITE", "GITLAB_CI", "CIRCLECI",
           "SIGSTORE_ID_TOKEN")


def make_token(**claims: Any) -> str:
    """An unsigned-for-Sigstore's-purposes OIDC token: sigstore-python checks claims only."""
    now = int(time.time())
    body = {"iss": "https://oauth2.sigstore.dev/auth", "aud": "sigstore", "sub": "someone",
            "email": "builder@example.com", "iat": now, "nbf": now, "exp": now + 600, **claims}
    return jwt.encode(body, "not-a-real-key-" * 4, algorithm="HS256")


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)


STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": RECORDED_WHEEL.name,
                 "digest": {"sha256": "c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25"
                                      "cf201"}}],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {"buildDefinition": {"buildType": "https://kiln.dev/build/v1",
                                      "externalParameters": {}},
                  "runDetails": {"builder": {"id": "kiln://test/test"}}},
}


def test_an_explicit_token_wins() -> None:
    assert find_identity_token("  tok  ") == "tok"


def test_no_token_anywhere_says_how_to_get_one() -> None:
    with pytest.raises(SigningError, match="needs an OIDC identity token") as exc:
        find_identity_token(None)
    assert exc.value.exit_code == 20
    assert "id-token: write" in (exc.value.hint or "")
    assert "KILN_IDENTITY_TOKEN" in (exc.value.hint or "")


def test_github_actions_without_id_token_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(SigningError, match="may not request an OIDC token") as exc:
        find_identity_token(None)
    assert "permissions: id-token: write" in (exc.value.hint or "")


def test_token_claims_are_checked_before_any_network_call() -> None:
    assert parse_identity_token(make_token()).identity == "builder@example.com"
    with pytest.raises(SigningError, match="expired"):
        parse_identity_token(make_token(iat=int(time.time()) - 3600,
                                        nbf=int(time.time()) - 3600,
                                        exp=int(time.time()) - 1800))
    with pytest.raises(SigningError, match="cannot be used for Sigstore"):
        parse_identity_token(make_token(aud="someone-else"))
    with pytest.raises(SigningError, match="cannot be used for Sigstore"):
        parse_identity_token("not.a.jwt")


def fake_signature(payload: bytes) -> bytes:
    """What the fake signer "signs" a payload with: distinct for every payload."""
    return hashlib.sha256(b"fake signature over " + payload).digest()


class FakeSigner:
    """Stands where sigstore's Signer holds a Fulcio certificate.

    Each call gets its own bundle: the recorded one (its certificate and log entry) with
    the envelope holding the statement it was asked to sign and a signature made from
    it, so a bundle written to the wrong file is told apart.
    """

    def __init__(self) -> None:
        self.signed: list[bytes] = []
        self.bundles: list[Any] = []

    def sign_dsse(self, statement: Any) -> Any:
        from sigstore.models import Bundle

        payload = statement._contents
        recorded = json.loads(RECORDED_BUNDLE.read_bytes())
        recorded["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
        recorded["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(
            fake_signature(payload)).decode()
        bundle = Bundle.from_json(json.dumps(recorded))
        self.signed.append(payload)
        self.bundles.append(bundle)
        return bundle


@pytest.fixture
def offline_sigstore(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Real trust config (the one sigstore-python ships) and SigningContext; a fake Fulcio step."""
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext

    seen: dict[str, Any] = {"signer": FakeSigner()}
    real_production, real_staging = ClientTrustConfig.production, ClientTrustConfig.staging

    def production(offline: bool = False) -> Any:
        seen["instance"] = "production"
        seen["config"] = real_production(offline=True)
        return seen["config"]

    def staging(offline: bool = False) -> Any:
        seen["instance"] = "staging"
        seen["config"] = real_staging(offline=True)
        return seen["config"]

    @contextmanager
    def signer(self: SigningContext, token: Any, *, cache: bool = True) -> Iterator[Any]:
        seen["token"] = token
        seen["context"] = self
        yield seen["signer"]

    monkeypatch.setattr(ClientTrustConfig, "production", staticmethod(production))
    monkeypatch.setattr(ClientTrustConfig, "staging", staticmethod(staging))
    monkeypatch.setattr(SigningContext, "signer", signer)
    return seen


def test_sign_keyless_writes_the_bundle_and_the_pep740_attestation(
        offline_sigstore: dict[str, Any], tmp_path: Path) -> None:
    from pypi_attestations import Attestation
    from sigstore.models import Bundle

    wheel = tmp_path / RECORDED_WHEEL.name
    wheel.write_bytes(RECORDED_WHEEL.read_bytes())
    token = make_token()
    done = sign_keyless(STATEMENT, wheel, identity_token=token, staging=False)

    assert offline_sigstore["instance"] == "production"
    assert offline_sigstore["token"]._raw_token == token
    # PEP 740 attestations carry Rekor v1 entries: the context must not pick Rekor v2.
    assert offline_sigstore["config"].force_tlog_version == 1
    first, second = offline_sigstore["signer"].signed
    assert first == statement_bytes(STATEMENT)  # kiln's SLSA statement, canonical bytes
    publish = json.loads(second)  # PyPI's publish statement over the same file
    assert publish["predicateType"] == "https://docs.pypi.org/attestations/publish/v1"
    assert publish["subject"] == STATEMENT["subject"]

    assert done.bundle == wheel.with_name(wheel.name + ".sigstore.json")
    assert done.attestation == wheel.with_name(wheel.name + ".publish.attestation")
    # W.sigstore.json is the bundle over this wheel's SLSA statement, not the publish one.
    written = Bundle.from_json(done.bundle.read_bytes())
    envelope = written._inner.dsse_envelope
    assert envelope is not None
    assert envelope.payload == statement_bytes(STATEMENT)
    assert envelope.signatures[0].sig == fake_signature(statement_bytes(STATEMENT))
    slsa_bundle, _ = offline_sigstore["signer"].bundles
    assert json.loads(done.bundle.read_bytes()) == json.loads(slsa_bundle.to_json())
    # W.publish.attestation is the attestation over PyPI's publish statement.
    attestation = Attestation.model_validate_json(done.attestation.read_bytes())
    assert attestation.envelope.statement == second
    assert attestation.envelope.signature == fake_signature(second)
    assert done.wheel == wheel
    assert (done.identity, done.issuer) == ("builder@example.com",
                                            "https://oauth2.sigstore.dev/auth")


def test_staging_goes_to_staging(offline_sigstore: dict[str, Any], tmp_path: Path) -> None:
    with keyless_signer(make_token(), staging=True) as signer:
        assert isinstance(signer, KeylessSigner)
    assert offline_sigstore["instance"] == "staging"
    wheel = tmp_path / RECORDED_WHEEL.name
    wheel.write_bytes(RECORDED_WHEEL.read_bytes())
    offline_sigstore.pop("instance")
    sign_keyless(STATEMENT, wheel, identity_token=make_token(), staging=True)
    assert offline_sigstore["instance"] == "staging"


@pytest.mark.parametrize("failure", ["sigstore", "attestation", "value"])
def test_a_failure_while_signing_is_a_signing_error_and_writes_nothing(
        offline_sigstore: dict[str, Any], tmp_path: Path, failure: str) -> None:
    import pypi_attestations
    from sigstore.errors import Error as SigstoreError

    error = {"sigstore": SigstoreError("Rekor refused the entry"),
             "attestation": pypi_attestations.AttestationError("bad bundle"),
             "value": ValueError("not a distribution")}[failure]

    def refuse(statement: Any) -> Any:
        raise error

    offline_sigstore["signer"].sign_dsse = refuse
    wheel = tmp_path / RECORDED_WHEEL.name
    wheel.write_bytes(RECORDED_WHEEL.read_bytes())
    with pytest.raises(SigningError, match=f"{wheel.name}: Sigstore signing failed: {error}"):
        sign_keyless(STATEMENT, wheel, identity_token=make_token())
    assert sorted(p.name for p in tmp_path.iterdir()) == [wheel.name]


def test_ambient_token_is_used_when_none_is_given(offline_sigstore: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(email="ci@example.com")
    import id as oidc_id

    def detect_credential(audience: str) -> str:
        assert audience == "sigstore"  # a token for another audience is no use to Fulcio
        return token

    monkeypatch.setattr(oidc_id, "detect_credential", detect_credential)
    with keyless_signer(None) as signer:
        assert signer.identity == "ci@example.com"
        assert signer.issuer == "https://oauth2.sigstore.dev/auth"


def test_unreachable_sigstore_is_a_clear_signing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigstore.errors import TUFError
    from sigstore.models import ClientTrustConfig

    def refuse(offline: bool = False) -> Any:
        raise TUFError("Failed to refresh TUF metadata")

    monkeypatch.setattr(ClientTrustConfig, "production", staticmethod(refuse))
    with pytest.raises(SigningError, match="cannot reach Sigstore's production trust root") as e:
        sign_keyless(STATEMENT, RECORDED_WHEEL, identity_token=make_token())
    assert "--key" in (e.value.hint or "")


def test_fulcio_failure_is_a_signing_error(offline_sigstore: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import requests
    from sigstore.sign import SigningContext

    @contextmanager
    def unreachable(self: SigningContext, token: Any, *, cache: bool = True) -> Iterator[Any]:
        raise requests.ConnectionError("fulcio.sigstore.dev: Name or service not known")
        yield  # pragma: no cover

    monkeypatch.setattr(SigningContext, "signer", unreachable)
    with pytest.raises(SigningError, match="could not be reached"):
        sign_keyless(STATEMENT, RECORDED_WHEEL, identity_token=make_token())


def test_sigstore_failures_include_its_client_errors() -> None:
    names = {cls.__name__ for cls in keyless._sigstore_failures()}
    assert {"Error", "FulcioClientError", "RekorClientError", "OSError"} <= names


def test_a_failing_ambient_detection_is_a_signing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import id as oidc_id

    def broken(audience: str) -> str:
        raise oidc_id.IdentityError("GCP metadata server unreachable")

    monkeypatch.setattr(oidc_id, "detect_credential", broken)
    with pytest.raises(SigningError, match="ambient OIDC credential detection failed: GCP") as e:
        find_identity_token(None)
    assert "KILN_IDENTITY_TOKEN" in (e.value.hint or "")

"""Keyless verification, offline, against real public Sigstore bundles (tests/assets/sigstore).

The assets are recorded signatures made by GitHub Actions workflows through Sigstore's
public-good instance, and one made on Sigstore's staging instance with an email
identity (see tests/assets/sigstore/README.md). Verification uses the trust root that
sigstore-python ships: no network.
"""

from __future__ import annotations

import base64
import json
import shutil
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
from kiln.verify import (
    FoundAttestation,
    VerifyPolicy,
    find_attestations,
    verify_bundle,
    verify_wheel,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "sigstore"
GITHUB = "https://token.actions.githubusercontent.com"

# Published to PyPI with Trusted Publishing; the .provenance file is PyPI's PEP 740
# provenance object for the file (what /integrity/<project>/<version>/<file>/provenance serves).
PA_SDIST = ASSETS / "pypi_attestations-0.0.19.tar.gz"
PA_WORKFLOW = ("https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml"
               "@refs/tags/v0.0.19")
# A Sigstore bundle made by actions/attest in GitHub Actions.
PAM_SDIST = ASSETS / "pypi_attestation_models-0.0.4a2.tar.gz"
PAM_WORKFLOW = ("https://github.com/trailofbits/pypi-attestation-models/.github/workflows/"
                "release.yml@refs/tags/v0.0.4a2")
# A wheel signed on Sigstore's staging instance by an email identity.
RFC_WHEEL = ASSETS / "rfc8785-0.1.2-py3-none-any.whl"


def policy(identity: str = PA_WORKFLOW, issuer: str = GITHUB, **kw: Any) -> VerifyPolicy:
    return VerifyPolicy(identity=identity, issuer=issuer, offline=True, **kw)


def test_pypi_provenance_verifies_with_the_publishers_workflow() -> None:
    result = verify_wheel(PA_SDIST, policy(), attestation=ASSETS / (PA_SDIST.name + ".provenance"))
    assert result.sha256 == "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"
    assert result.predicate_type == "https://docs.pypi.org/attestations/publish/v1"
    (signature,) = result.signatures
    assert signature.kind == "pep740-provenance"
    assert signature.signer == PA_WORKFLOW and signature.issuer == GITHUB


def test_pypi_attestations_own_api_agrees() -> None:
    from pypi_attestations import (
        Distribution,
        GitHubPublisher,
        Provenance,
        VerificationError,
    )

    provenance = Provenance.model_validate_json(
        (ASSETS / (PA_SDIST.name + ".provenance")).read_bytes())
    (attestation,) = provenance.attestation_bundles[0].attestations
    dist = Distribution.from_file(PA_SDIST)
    publisher = GitHubPublisher(repository="trailofbits/pypi-attestations", workflow="release.yml")
    kind, _ = attestation.verify(publisher, dist, offline=True)
    assert kind == "https://docs.pypi.org/attestations/publish/v1"
    wrong = GitHubPublisher(repository="trailofbits/pypi-attestations", workflow="evil.yml")
    with pytest.raises(VerificationError, match="does not match"):
        attestation.verify(wrong, dist, offline=True)


def test_githubs_slsa_provenance_verifies_and_is_summarised() -> None:
    result = verify_wheel(PA_SDIST, policy(),
                          attestation=ASSETS / (PA_SDIST.name + ".slsa.attestation"))
    assert result.predicate_type == "https://slsa.dev/provenance/v1"
    assert result.build_type == "https://actions.github.io/buildtypes/workflow/v1"
    assert result.builder == PA_WORKFLOW
    assert result.sdist is None  # not kiln's build type: kiln claims nothing it cannot read


@pytest.mark.parametrize(("identity", "issuer"), [
    (PA_WORKFLOW.replace("v0.0.19", "v0.0.18"), GITHUB),  # another ref
    (PA_WORKFLOW.replace("release.yml", "evil.yml"), GITHUB),  # another workflow
    (PA_WORKFLOW, "https://accounts.google.com"),  # another issuer
    ("https://github.com/trailofbits/pypi-attestations", GITHUB),  # a prefix is not enough
])
def test_wrong_identity_or_issuer_fails(identity: str, issuer: str) -> None:
    with pytest.raises(SignerMismatchError, match=f"signed by {PA_WORKFLOW}") as exc:
        verify_wheel(PA_SDIST, policy(identity, issuer),
                     attestation=ASSETS / (PA_SDIST.name + ".provenance"))
    assert exc.value.exit_code == 25


def test_sigstore_bundle_beside_the_file_is_found(tmp_path: Path) -> None:
    dist = tmp_path / PAM_SDIST.name
    shutil.copyfile(PAM_SDIST, dist)
    shutil.copyfile(ASSETS / (PAM_SDIST.name + ".sigstore"),
                    tmp_path / (PAM_SDIST.name + ".sigstore.json"))
    assert [a.kind for a in find_attestations(dist)] == ["sigstore"]
    result = verify_wheel(dist, policy(PAM_WORKFLOW))
    assert result.signatures[0].signer == PAM_WORKFLOW
    assert result.signatures[0].origin == str(tmp_path / (PAM_SDIST.name + ".sigstore.json"))


def test_tampered_file_fails(tmp_path: Path) -> None:
    dist = tmp_path / PA_SDIST.name
    dist.write_bytes(PA_SDIST.read_bytes() + b"\0")
    with pytest.raises(WheelDigestError, match="changed after signing") as exc:
        verify_wheel(dist, policy(), attestation=ASSETS / (PA_SDIST.name + ".provenance"))
    assert exc.value.exit_code == 22


def test_renamed_file_fails(tmp_path: Path) -> None:
    dist = tmp_path / "pypi_attestations-0.0.20.tar.gz"
    shutil.copyfile(PA_SDIST, dist)
    with pytest.raises(SubjectNameError, match="renamed") as exc:
        verify_wheel(dist, policy(), attestation=ASSETS / (PA_SDIST.name + ".provenance"))
    assert exc.value.exit_code == 23


def _bundle() -> dict[str, Any]:
    return json.loads((ASSETS / (PAM_SDIST.name + ".sigstore")).read_bytes())


def test_statement_edited_inside_the_bundle_fails() -> None:
    bundle = _bundle()
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "evil-1.0.tar.gz"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError, match="invalid signature") as exc:
        verify_bundle(bundle, policy(PAM_WORKFLOW))
    assert exc.value.exit_code == 24
    assert verify_bundle(_bundle(), policy(PAM_WORKFLOW))["subject"][0]["name"] == PAM_SDIST.name


def test_expired_bundle_fails() -> None:
    """Logged an hour after its ten-minute certificate expired."""
    bundle = _bundle()
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 3600)
    with pytest.raises(SignatureError, match="expired"):
        verify_bundle(bundle, policy(PAM_WORKFLOW))


@pytest.mark.parametrize("damage", ["truncated", "no-verification-material", "not-a-bundle",
                                    "bad-certificate"])
def test_malformed_bundle_fails(damage: str) -> None:
    bundle: Any = _bundle()
    if damage == "truncated":
        bundle = json.dumps(bundle).encode()[:400]
    elif damage == "no-verification-material":
        del bundle["verificationMaterial"]
    elif damage == "not-a-bundle":
        bundle = {"hello": "world"}
    elif damage == "bad-certificate":
        bundle["verificationMaterial"]["certificate"]["rawBytes"] = "AAAA"
    with pytest.raises(MalformedAttestationError) as exc:
        verify_bundle(bundle, policy(PAM_WORKFLOW))
    assert exc.value.exit_code == 27


def test_staging_bundle_needs_staging() -> None:
    bundle = ASSETS / (RFC_WHEEL.name + ".sigstore")
    email = policy("william@yossarian.net", "https://github.com/login/oauth")
    with pytest.raises(SignatureError, match="Sigstore verification failed") as exc:
        verify_wheel(RFC_WHEEL, email, attestation=bundle)
    assert "--staging" in (exc.value.hint or "")
    staging = policy("william@yossarian.net", "https://github.com/login/oauth", staging=True)
    assert verify_wheel(RFC_WHEEL, staging, attestation=bundle).sha256.startswith("c4e92e9e")


def test_missing_attestation(tmp_path: Path) -> None:
    dist = tmp_path / PA_SDIST.name
    shutil.copyfile(PA_SDIST, dist)
    with pytest.raises(AttestationMissingError, match="no attestation") as exc:
        verify_wheel(dist, policy())
    assert exc.value.exit_code == 26
    # Only a key-signed envelope beside it, but the policy asks for a Sigstore identity.
    (tmp_path / (dist.name + ".dsse.json")).write_text(
        '{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []}')
    with pytest.raises(AttestationMissingError, match="no Sigstore bundle"):
        verify_wheel(dist, policy())


def test_a_policy_must_say_whom_to_trust() -> None:
    with pytest.raises(UsageError, match="whom to trust"):
        verify_wheel(PA_SDIST, VerifyPolicy(offline=True))
    with pytest.raises(UsageError, match="--issuer"):
        verify_wheel(PA_SDIST, VerifyPolicy(identity=PA_WORKFLOW, offline=True))


def test_attestation_kinds_are_detected() -> None:
    kinds = {name: FoundAttestation.from_path(ASSETS / name).kind for name in (
        PA_SDIST.name + ".provenance", PA_SDIST.name + ".publish.attestation",
        PAM_SDIST.name + ".sigstore")}
    assert kinds == {PA_SDIST.name + ".provenance": "pep740-provenance",
                     PA_SDIST.name + ".publish.attestation": "pep740",
                     PAM_SDIST.name + ".sigstore": "sigstore"}


def test_a_policy_names_the_flag_that_is_missing() -> None:
    with pytest.raises(UsageError, match="--issuer is missing"):
        VerifyPolicy(identity=PA_WORKFLOW).check()
    with pytest.raises(UsageError, match="--identity is missing"):
        VerifyPolicy(issuer=GITHUB).check()


def _bundle_logged_at(seconds: int) -> Any:
    from sigstore.models import Bundle

    bundle = _bundle()
    bundle["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = str(seconds)
    return Bundle.from_json(json.dumps(bundle))


def test_a_signature_must_be_logged_while_its_certificate_is_valid() -> None:
    from kiln.verify import _check_certificate_time

    cert = _bundle_logged_at(0).signing_certificate
    start = int(cert.not_valid_before_utc.timestamp())
    end = int(cert.not_valid_after_utc.timestamp())
    for inside in (start, end):
        _check_certificate_time(_bundle_logged_at(inside), "b")
    for outside in (start - 1, end + 1):
        with pytest.raises(SignatureError, match="b: the signing certificate is valid from"):
            _check_certificate_time(_bundle_logged_at(outside), "b")
    _check_certificate_time(_bundle_logged_at(0), "b")  # no log time: sigstore's timestamps


def _certificate(identities: list[str], extensions: list[tuple[str, bytes]]) -> Any:
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")]))
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + timedelta(minutes=10)))
    if identities:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(i) for i in identities]), critical=False)
    for oid, value in extensions:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(key, hashes.SHA256())


def _utf8_string(text: str) -> bytes:
    data = text.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    width = (len(data).bit_length() + 7) // 8
    return bytes([0x0C, 0x80 | width]) + len(data).to_bytes(width, "big") + data


V1, V2 = "1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.8"


@pytest.mark.parametrize("issuer", [GITHUB, "https://" + "i" * 200, "https://" + "j" * 300])
def test_the_certificates_identity_and_issuer_are_read(issuer: str) -> None:
    from kiln.verify import _certificate_identity

    cert = _certificate([PA_WORKFLOW], [(V2, _utf8_string(issuer))])
    assert _certificate_identity(cert) == (PA_WORKFLOW, issuer)


def test_the_newer_issuer_extension_wins_and_the_older_one_is_read() -> None:
    from kiln.verify import _certificate_identity

    for extensions in ([(V1, b"https://old"), (V2, _utf8_string(GITHUB))],
                       [(V2, _utf8_string(GITHUB)), (V1, b"https://old")]):
        assert _certificate_identity(_certificate(["a", "b"], extensions)) == ("a, b", GITHUB)
    assert _certificate_identity(_certificate(["a"], [(V1, b"https://old")])) == (
        "a", "https://old")
    assert _certificate_identity(_certificate([], [])) == ("(no identity)", "")


@pytest.mark.parametrize("value", [b"", b"\x0c", b"\x04\x03abc", b"\x0c\x00"])
def test_what_is_not_a_utf8_string_reads_as_nothing(value: bytes) -> None:
    from kiln.verify import _der_utf8

    assert _der_utf8(value) == ""

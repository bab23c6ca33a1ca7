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

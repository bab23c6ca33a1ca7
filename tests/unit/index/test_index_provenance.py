"""PEP 740 publishers derived from signing certificates match what PyPI itself recorded."""

from __future__ import annotations

import json

import pytest
from index_support import ASSETS
from pypi_attestations import Attestation

from kiln.index.provenance import BadAttestation, provenance_for, publisher_from_certificate


def _derived(attestation: Attestation) -> dict:
    return publisher_from_certificate(attestation.verification_material.certificate,
                                      attestation.certificate_claims)


@pytest.mark.parametrize("recorded", [
    "pypi_attestations-0.0.19.tar.gz.provenance",  # GitHub Actions
    "gcb_attestation_test-0.0.0.tar.gz.provenance",  # Google Cloud Build
    "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance",  # CircleCI
])
def test_publisher_is_the_one_pypi_recorded(recorded):
    bundle = json.loads((ASSETS / recorded).read_text())["attestation_bundles"][0]
    attestation = Attestation.model_validate(bundle["attestations"][0])
    assert _derived(attestation) == bundle["publisher"]


def test_gitlab_publisher():
    attestation = Attestation.model_validate_json(
        (ASSETS / "gitlab_oidc_project-0.0.3.tar.gz.publish.attestation").read_bytes())
    assert _derived(attestation) == {"kind": "GitLab",
                                     "repository": "facutuesca/gitlab-oidc-project",
                                     "workflow_filepath": ".gitlab-ci.yml", "environment": None}


def test_provenance_for_a_wheel_from_its_attestation():
    name = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
    import hashlib

    digest = hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()
    made = provenance_for(ASSETS / f"{name}.publish.attestation", name, digest)
    ours = json.loads(made.body)
    pypi = json.loads((ASSETS / f"{name}.provenance").read_text())
    assert ours["attestation_bundles"][0]["publisher"] == \
        pypi["attestation_bundles"][0]["publisher"]
    assert Attestation.model_validate(ours["attestation_bundles"][0]["attestations"][0])
    with pytest.raises(BadAttestation, match="not this file"):
        provenance_for(ASSETS / f"{name}.publish.attestation", "other-1.0-py3-none-any.whl",
                       digest)
    with pytest.raises(BadAttestation, match="other bytes"):
        provenance_for(ASSETS / f"{name}.publish.attestation", name, "0" * 64)


def test_malformed_attestation(tmp_path):
    bad = tmp_path / "x.publish.attestation"
    bad.write_text('{"version": 1}')
    with pytest.raises(BadAttestation, match="not a PEP 740 attestation"):
        provenance_for(bad, "x-1.0-py3-none-any.whl", "0" * 64)

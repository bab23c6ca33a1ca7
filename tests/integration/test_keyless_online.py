"""Keyless signing for real, on Sigstore's staging instance. Needs the network and a token.

Runs only where an identity token exists: ``KILN_TEST_IDENTITY_TOKEN`` (any OIDC token with
audience ``sigstore``), or GitHub Actions with ``permissions: id-token: write``. Skipped,
with the reason shown (pytest -ra), everywhere else, including on this project's CI machine,
which cannot reach Sigstore.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import RunKiln

TOKEN_ENV = "KILN_TEST_IDENTITY_TOKEN"


def _identity_token() -> str | None:
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        import id as oidc_id

        return oidc_id.detect_credential(audience="sigstore")
    return None


@pytest.mark.online
@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get(TOKEN_ENV)
                         or os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")),
                    reason=f"online: set {TOKEN_ENV} (or run in GitHub Actions with "
                           "id-token: write) to sign with Sigstore staging")
def test_sign_keyless_on_staging_then_verify(run_kiln: RunKiln, cext_recipe: Path,
                                             tmp_path: Path) -> None:
    from sigstore.oidc import IdentityToken

    token = _identity_token()
    assert token, "no identity token could be obtained"
    identity = IdentityToken(token)
    run_kiln("build", cext_recipe, "-o", tmp_path / "wh", check=True)
    (wheel,) = (tmp_path / "wh").glob("*.whl")
    signed = run_kiln("sign", wheel, "--staging", "--identity-token", token, "--json",
                      check=True)
    assert json.loads(signed.stdout)[0]["method"] == "sigstore"
    assert (wheel.parent / (wheel.name + ".sigstore.json")).is_file()
    assert (wheel.parent / (wheel.name + ".publish.attestation")).is_file()
    verified = run_kiln("verify", wheel, "--staging", "--identity", identity.identity,
                        "--issuer", identity.federated_issuer or identity.issuer, "--json",
                        check=True)
    report = json.loads(verified.stdout)[0]
    assert report["buildType"] == "https://kiln.dev/build/v1"
    wrong = run_kiln("verify", wheel, "--staging", "--identity", "someone@else.example",
                     "--issuer", identity.issuer)
    assert wrong.returncode == 25

"""PEP 740 provenance objects from the attestation ``kiln sign`` leaves beside a wheel.

The index does not re-verify the Sigstore signature (``kiln verify`` does that with a
trust root); it checks that the attestation is well formed and is about exactly this
file — the in-toto subject names this filename with this sha256 — so it never
advertises an attestation for other bytes. The publisher is read from the signing
certificate's Fulcio claims, the way PyPI derives it from a Trusted Publisher.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_ISSUER = "1.3.6.1.4.1.57264.1.8"
_BUILD_SIGNER_URI = "1.3.6.1.4.1.57264.1.9"
_SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
_SOURCE_REPOSITORY_REF = "1.3.6.1.4.1.57264.1.14"
_BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"
_GITHUB = "https://token.actions.githubusercontent.com"
_GITLAB = "https://gitlab.com"
_GOOGLE = "https://accounts.google.com"
_CIRCLECI = "https://oidc.circleci.com"
_CIRCLECI_SIGNER = re.compile(r"/projects/([^/]+)/pipeline-definitions/([^/]+)$")


class BadAttestation(Exception):
    """The attestation cannot be served for this wheel; the message says why."""


@dataclass(frozen=True)
class ProvenanceFile:
    body: bytes  # the JSON provenance object
    publisher: dict[str, Any]


def provenance_for(attestation: Path, filename: str, sha256: str) -> ProvenanceFile:
    """The provenance object for one wheel from its ``.publish.attestation`` file."""
    try:
        from pydantic import ValidationError
        from pypi_attestations import Attestation
    except ImportError as exc:  # pragma: no cover - kiln depends on pypi-attestations
        raise BadAttestation("pypi-attestations is not installed") from exc
    try:
        raw = attestation.read_bytes()
        parsed = Attestation.model_validate_json(raw)
        statement = parsed.statement
    except (OSError, ValueError, ValidationError) as exc:
        raise BadAttestation(f"not a PEP 740 attestation ({_first_line(exc)})") from exc
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise BadAttestation("its statement must have exactly one subject")
    subject = subjects[0]
    digest = subject.get("digest")
    digest = digest if isinstance(digest, dict) else {}
    if subject.get("name") != filename:
        raise BadAttestation(f"it is about {subject.get('name')!r}, not this file")
    if digest.get("sha256") != sha256:
        raise BadAttestation("it is about other bytes (the subject's sha256 differs)")
    publisher = publisher_from_certificate(parsed.verification_material.certificate,
                                           parsed.certificate_claims)
    document = {"version": 1, "attestation_bundles": [
        {"publisher": publisher, "attestations": [json.loads(raw)]}]}
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return ProvenanceFile(body, publisher)


def publisher_from_certificate(der: bytes, claims: dict[str, str]) -> dict[str, Any]:
    """The PEP 740 publisher for a Fulcio certificate, as PyPI would name it.

    GitHub, GitLab, Google and CircleCI are PyPI's Trusted Publisher kinds (the shapes
    pypi-attestations models); anything else gets a generic publisher.
    """
    issuer = claims.get(_ISSUER, "")
    config = claims.get(_BUILD_CONFIG_URI, "")
    repository = urlparse(claims.get(_SOURCE_REPOSITORY_URI, "")).path.strip("/")
    if issuer == _GITHUB and repository:
        # .../owner/repo/.github/workflows/release.yml@refs/tags/v1 -> release.yml
        workflow = config.split("@", 1)[0].rsplit("/", 1)[-1]
        return {"kind": "GitHub", "repository": repository, "workflow": workflow,
                "environment": None}
    if issuer == _GITLAB and repository:
        path = urlparse(config.split("@", 1)[0]).path
        workflow_filepath = path.split("//", 1)[1] if "//" in path else path.rsplit("/", 1)[-1]
        return {"kind": "GitLab", "repository": repository,
                "workflow_filepath": workflow_filepath, "environment": None}
    signer = _CIRCLECI_SIGNER.search(claims.get(_BUILD_SIGNER_URI, ""))
    if issuer == _CIRCLECI and signer:
        return {"kind": "CircleCI", "project_id": signer.group(1),
                "pipeline_definition_id": signer.group(2),
                "vcs_origin": claims.get(_SOURCE_REPOSITORY_URI), "vcs_ref":
                claims.get(_SOURCE_REPOSITORY_REF)}
    identity = _san(der)
    if issuer == _GOOGLE and "@" in identity:
        return {"kind": "Google", "email": identity}
    # Not a Trusted Publisher kind PyPI knows (a person's OIDC login, another CI): PEP 740
    # lets an index define its own kinds; this one carries the identity and its issuer.
    return {"kind": "Sigstore", "claims": {"issuer": issuer, "identity": identity}}


def _san(der: bytes) -> str:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier):
        values = san.get_values_for_type(kind)
        if values:
            return str(values[0])
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

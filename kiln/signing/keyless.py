"""Keyless signing through Sigstore: an OIDC identity buys a short-lived certificate.

For each wheel ``W`` this writes two files, from one signer (one Fulcio certificate):

- ``W.sigstore.json``: a Sigstore bundle whose DSSE envelope holds kiln's SLSA provenance
  statement. This is what ``kiln verify`` checks.
- ``W.publish.attestation``: a PEP 740 attestation made by pypi-attestations. PyPI only
  accepts its own "publish" statement (subject: the file, predicate type
  ``https://docs.pypi.org/attestations/publish/v1``), not arbitrary SLSA provenance, so
  the index gets this one, signed by the same identity, while the full provenance stays
  in the bundle beside it.

Both use Rekor v1 entries (``force_tlog_version = 1``), as pypi-attestations' own CLI
does, because PEP 740 attestations carry a v1 transparency log entry.

Signing always needs Sigstore's servers (Fulcio, Rekor, the TUF repository) and an OIDC
token: ``--identity-token``/``KILN_IDENTITY_TOKEN``, or ambient credentials (GitHub
Actions with ``permissions: id-token: write``) found by ``id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.errors import SigningError
from kiln.files import write_atomic
from kiln.provenance import statement_bytes

if TYPE_CHECKING:
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer

SIGSTORE_SUFFIX = ".sigstore.json"
PUBLISH_SUFFIX = ".publish.attestation"
AUDIENCE = "sigstore"

HOW_TO_GET_AN_IDENTITY = (
    "in GitHub Actions give the job `permissions: id-token: write`; elsewhere pass "
    "--identity-token TOKEN (or set KILN_IDENTITY_TOKEN), or sign with a local key: "
    "--key keys/kiln.key")


@dataclass(frozen=True)
class KeylessOutputs:
    wheel: Path
    bundle: Path  # W.sigstore.json: kiln's SLSA statement
    attestation: Path  # W.publish.attestation: PEP 740, PyPI's publish statement
    identity: str
    issuer: str


def bundle_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + SIGSTORE_SUFFIX)


def attestation_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + PUBLISH_SUFFIX)


def find_identity_token(explicit: str | None) -> str:
    """The given token, else an ambient one (GitHub Actions and other CI), else a clear error."""
    if explicit and explicit.strip():
        return explicit.strip()
    import id as oidc_id

    try:
        token = oidc_id.detect_credential(audience=AUDIENCE)
    except oidc_id.GitHubOidcPermissionCredentialError as exc:
        raise SigningError(
            f"this GitHub Actions job may not request an OIDC token ({exc})",
            hint="add `permissions: id-token: write` to the job (pull requests from forks "
                 "never get it)") from exc
    except oidc_id.IdentityError as exc:
        raise SigningError(f"ambient OIDC credential detection failed: {exc}",
                           hint=HOW_TO_GET_AN_IDENTITY) from exc
    if not token:
        raise SigningError("keyless signing needs an OIDC identity token, and none was given "
                           "or found in the environment", hint=HOW_TO_GET_AN_IDENTITY)
    return str(token)


def parse_identity_token(raw: str) -> IdentityToken:
    """Check the token's claims (audience ``sigstore``, not expired) before any network call."""
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        why = f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)
        raise SigningError(f"the identity token cannot be used for Sigstore: {why}",
                           hint="tokens must have audience `sigstore` and be unexpired "
                                "(they last minutes: request one right before signing)") from exc


def _sigstore_failures() -> tuple[type[BaseException], ...]:
    """What sigstore-python raises when a service refuses or cannot be reached."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import ExpiredIdentity

    failures: list[type[BaseException]] = [SigstoreError, ExpiredIdentity,
                                           OSError]  # requests' errors are OSErrors
    try:  # the clients' own errors are not re-exported by sigstore's public modules
        from sigstore._internal.fulcio.client import ExpiredCertificate, FulcioClientError
        from sigstore._internal.rekor import RekorClientError

        failures += [ExpiredCertificate, FulcioClientError, RekorClientError]
    except ImportError:  # pragma: no cover - a newer sigstore moved them
        pass
    return tuple(failures)


def _trust_config(staging: bool) -> Any:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    where = "staging" if staging else "production"
    try:
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
    except SigstoreError as exc:
        raise SigningError(f"cannot reach Sigstore's {where} trust root (TUF): {exc}",
                           hint="keyless signing needs network access to Sigstore; offline, "
                                "sign with a local key (--key)") from exc
    config.force_tlog_version = 1
    return config


@dataclass
class KeylessSigner:
    """One Sigstore signer (one certificate) that signs several wheels."""

    signer: Signer
    identity: str
    issuer: str

    def sign_statement(self, statement: Mapping[str, Any], target: Path, what: str) -> Path:
        """Write a Sigstore bundle over one more statement (the test result) to ``target``."""
        from sigstore.dsse import Statement

        failures: tuple[type[BaseException], ...] = (*_sigstore_failures(), ValueError)
        try:
            bundle = self.signer.sign_dsse(Statement(statement_bytes(statement)))
        except failures as exc:
            raise SigningError(f"{what}: Sigstore signing failed: {exc}",
                               hint="check the network path to Sigstore (Fulcio, Rekor) and "
                                    "that the certificate has not expired") from exc
        write_atomic(target, bundle.to_json())
        return target

    def sign(self, statement: Mapping[str, Any], wheel: Path) -> KeylessOutputs:
        """Write ``W.sigstore.json`` (kiln's statement) and ``W.publish.attestation`` (PEP 740)."""
        import pypi_attestations
        from sigstore.dsse import Statement

        failures: tuple[type[BaseException], ...] = (
            *_sigstore_failures(), pypi_attestations.AttestationError, ValueError)
        try:
            dsse_statement = Statement(statement_bytes(statement))
            bundle = self.signer.sign_dsse(dsse_statement)
            attestation = pypi_attestations.Attestation.sign(
                self.signer, pypi_attestations.Distribution.from_file(wheel))
        except failures as exc:
            raise SigningError(f"{wheel.name}: Sigstore signing failed: {exc}",
                               hint="check the network path to Sigstore (Fulcio, Rekor) and "
                                    "that the certificate has not expired") from exc
        target_bundle, target_attestation = bundle_path(wheel), attestation_path(wheel)
        write_atomic(target_bundle, bundle.to_json())
        write_atomic(target_attestation, attestation.model_dump_json())
        return KeylessOutputs(wheel=wheel, bundle=target_bundle, attestation=target_attestation,
                              identity=self.identity, issuer=self.issuer)


@contextmanager
def keyless_signer(identity_token: str | None, *, staging: bool = False
                   ) -> Iterator[KeylessSigner]:
    """A signer for the token (or the ambient credential), with its certificate from Fulcio."""
    from sigstore.oidc import ExpiredIdentity
    from sigstore.sign import SigningContext

    token = parse_identity_token(find_identity_token(identity_token))
    context = SigningContext.from_trust_config(_trust_config(staging))
    # Signer() asks Fulcio for the certificate at once: wrap that, not the caller's work.
    try:
        with context.signer(token) as signer:
            session = KeylessSigner(signer=signer, identity=token.identity,
                                    issuer=token.federated_issuer or token.issuer)
    except ExpiredIdentity as exc:
        raise SigningError("the identity token expired before Sigstore could use it",
                           hint="request a fresh token right before signing") from exc
    except _sigstore_failures() as exc:
        raise SigningError(f"Sigstore refused or could not be reached for a signing "
                           f"certificate: {exc}",
                           hint="check the token's identity and the network path to Fulcio") \
            from exc
    yield session


def sign_keyless(statement: Mapping[str, Any], wheel: Path, *, identity_token: str | None,
                 staging: bool = False) -> KeylessOutputs:
    """Sign one wheel's statement with Sigstore; see ``keyless_signer`` to sign several."""
    with keyless_signer(identity_token, staging=staging) as signer:
        return signer.sign(statement, wheel)

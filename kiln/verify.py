"""Check a wheel against its signed provenance, and say what the provenance claims.

A wheel passes only when all of these hold, each failure with its own error (and exit
code, see kiln.errors):

- an attestation is there: ``W.dsse.json`` (local key), ``W.sigstore.json`` (Sigstore
  bundle), or one given explicitly (a bundle, a PEP 740 attestation, or PyPI's PEP 740
  provenance object for the file);
- its signature verifies: with the given public key, or as a Sigstore bundle against the
  trust root (``offline`` uses the one sigstore-python ships or has cached) whose
  certificate names exactly the identity and issuer the policy demands;
- the signed statement is an in-toto v1 statement, and kiln's own statements obey the
  SLSA v1 models;
- the wheel's sha256 is a subject of the statement under this exact filename.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kiln.errors import (
    AttestationMissingError,
    MalformedAttestationError,
    SignatureError,
    SignerMismatchError,
    SubjectNameError,
    TestsNotVerifiedError,
    UsageError,
    VerificationError,
    WheelDigestError,
)
from kiln.files import sha256_file
from kiln.provenance import (
    BUILD_TYPE,
    PAYLOAD_TYPE,
    REPRO_BYPRODUCT,
    TESTS_BYPRODUCT,
    is_kiln_statement,
    parse_statement,
)
from kiln.signing.keyless import SIGSTORE_SUFFIX
from kiln.signing.keys import keyid, load_public_key, verify_envelope_payload
from kiln.signing.wheels import DSSE_SUFFIX

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

AttestationKind = Literal["dsse", "sigstore", "pep740", "pep740-provenance"]
SIGSTORE_KINDS = ("sigstore", "pep740", "pep740-provenance")
_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"
_ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"


@dataclass(frozen=True)
class VerifyPolicy:
    """Whom to trust: a public key, a Sigstore identity and issuer, or both (both must pass)."""

    key: Path | None = None
    identity: str | None = None
    issuer: str | None = None
    offline: bool = False
    staging: bool = False

    def check(self) -> None:
        if (self.identity is None) != (self.issuer is None):
            missing = "--issuer" if self.issuer is None else "--identity"
            raise UsageError(f"keyless verification needs both --identity and --issuer; "
                             f"{missing} is missing",
                             hint="e.g. --identity https://github.com/ORG/REPO/.github/workflows/"
                                  "build.yml@refs/heads/main --issuer "
                                  "https://token.actions.githubusercontent.com")
        if self.key is None and self.identity is None:
            raise UsageError("say whom to trust: --key PUB, or --identity and --issuer",
                             hint="kiln never accepts a signature from just anyone")


@dataclass(frozen=True)
class FoundAttestation:
    """A signed statement about a wheel, from a file beside it, --bundle, or elsewhere."""

    kind: AttestationKind
    origin: str  # a path, or where else it came from (for messages)
    data: bytes

    @classmethod
    def from_path(cls, path: Path) -> FoundAttestation:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise AttestationMissingError(f"{path}: no such attestation") from exc
        except OSError as exc:
            raise MalformedAttestationError(f"{path}: cannot read it ({exc.strerror})") from exc
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> FoundAttestation:
        return cls(kind=_detect_kind(data, origin), origin=origin, data=data)


@dataclass(frozen=True)
class VerifiedSignature:
    kind: AttestationKind
    origin: str
    signer: str  # "key <keyid>" or the certificate's identity
    issuer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "attestation": self.origin, "signer": self.signer,
                "issuer": self.issuer}


@dataclass(frozen=True)
class VerifiedWheel:
    """A wheel that passed, and what its statement says."""

    wheel: Path
    sha256: str
    signatures: tuple[VerifiedSignature, ...]
    statement: dict[str, Any]
    predicate_type: str
    build_type: str | None = None
    builder: str | None = None
    started: str | None = None
    finished: str | None = None
    sdist: str | None = None
    sdist_sha256: str | None = None
    recipe: str | None = None
    recipe_sha256: str | None = None
    python: str | None = None
    target: str | None = None
    reproducible: bool | None = None
    repro_digests: list[str] = field(default_factory=list)
    tests_passed: bool | None = None
    signed_tests: VerifiedTests | None = None  # with --require-tests
    # The C libraries kiln built into it: (name, version, source URL, source sha256).
    libraries: list[tuple[str, str, str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel.name, "path": str(self.wheel), "sha256": self.sha256,
            "verified": True,
            "signatures": [s.to_json() for s in self.signatures],
            "predicateType": self.predicate_type, "buildType": self.build_type,
            "builder": self.builder, "started": self.started, "finished": self.finished,
            "sdist": self.sdist, "sdistSha256": self.sdist_sha256,
            "recipe": self.recipe, "recipeSha256": self.recipe_sha256,
            "python": self.python, "target": self.target,
            "reproducible": self.reproducible, "reproDigests": list(self.repro_digests),
            "testsPassed": self.tests_passed,
            "signedTests": self.signed_tests.to_json() if self.signed_tests else None,
            "libraries": [{"name": n, "version": v, "source": u, "sha256": d}
                          for n, v, u, d in self.libraries],
            "statement": self.statement,
        }


# --------------------------------------------------------------------------- finding

def _detect_kind(data: bytes, origin: str) -> AttestationKind:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedAttestationError(f"{origin}: not JSON ({exc})",
                                        hint="the attestation file is damaged or truncated") \
            from exc
    if not isinstance(doc, dict):
        raise MalformedAttestationError(f"{origin}: not a JSON object")
    if "payloadType" in doc and "signatures" in doc:
        return "dsse"
    if str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
        return "sigstore"
    if "attestation_bundles" in doc:
        return "pep740-provenance"
    if "verification_material" in doc and "envelope" in doc:
        return "pep740"
    raise MalformedAttestationError(
        f"{origin}: neither a DSSE envelope, a Sigstore bundle nor a PEP 740 attestation",
        hint="kiln reads <wheel>.dsse.json, <wheel>.sigstore.json, .publish.attestation and "
             "PyPI's provenance JSON")


def find_attestations(wheel: Path) -> list[FoundAttestation]:
    """The attestations kiln keeps beside a wheel: ``W.dsse.json`` and ``W.sigstore.json``."""
    found = []
    for suffix in (DSSE_SUFFIX, SIGSTORE_SUFFIX):
        path = wheel.with_name(wheel.name + suffix)
        if path.is_file():
            found.append(FoundAttestation.from_path(path))
    return found


# --------------------------------------------------------------------------- key path

def verify_envelope(envelope: Mapping[str, Any] | bytes, public_key: Path, *,
                    origin: str = "envelope") -> dict[str, Any]:
    """Check a DSSE envelope with ``public_key`` and return the statement it signs."""
    payload = verify_envelope_payload(envelope, public_key, origin=origin)
    return parse_statement(payload, origin)


# --------------------------------------------------------------------------- Sigstore path

@functools.lru_cache(maxsize=4)
def _verifier(staging: bool, offline: bool) -> Verifier:
    from sigstore.errors import Error as SigstoreError
    from sigstore.verify import Verifier

    try:
        return Verifier.staging(offline=offline) if staging else Verifier.production(
            offline=offline)
    except SigstoreError as exc:
        raise VerificationError(f"cannot load Sigstore's trust root: {exc}",
                                hint="without network, pass --offline to use the trust root "
                                     "sigstore-python ships (or its cached copy)") from exc


def _certificate_identity(cert: Certificate) -> tuple[str, str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        names = []
    issuer = ""
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        value = getattr(ext.value, "value", b"")
        if oid == _ISSUER_V2_OID:
            issuer = _der_utf8(value)
            break
        if oid == _ISSUER_V1_OID:
            issuer = value.decode(errors="replace")
    return (", ".join(names) or "(no identity)"), issuer


def _der_utf8(value: bytes) -> str:
    """The text of a DER UTF8String (tag 0x0c, a short or long length, the bytes)."""
    if len(value) < 2 or value[0] != 0x0C:
        return ""
    length, start = value[1], 2
    if length & 0x80:
        width = length & 0x7F
        length, start = int.from_bytes(value[2:2 + width], "big"), 2 + width
    return value[start:start + length].decode(errors="replace")


def _load_bundles(att: FoundAttestation) -> list[Bundle]:
    import pypi_attestations
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        if att.kind == "sigstore":
            return [Bundle.from_json(att.data)]
        if att.kind == "pep740":
            return [pypi_attestations.Attestation.model_validate_json(att.data).to_bundle()]
        if att.kind == "pep740-provenance":
            provenance = pypi_attestations.Provenance.model_validate_json(att.data)
            bundles = [a.to_bundle() for b in provenance.attestation_bundles
                       for a in b.attestations]
            if not bundles:
                raise MalformedAttestationError(f"{att.origin}: the provenance holds no "
                                                "attestations")
            return bundles
    except (SigstoreError, pypi_attestations.AttestationError, ValueError) as exc:
        raise MalformedAttestationError(f"{att.origin}: malformed {att.kind} attestation: "
                                        f"{str(exc).splitlines()[0]}",
                                        hint="the file is damaged, truncated or not a bundle") \
            from exc
    raise MalformedAttestationError(f"{att.origin}: a {att.kind} attestation is not a Sigstore "
                                    "bundle", hint="verify it with --key")


def _verify_one_bundle(bundle: Bundle, policy: VerifyPolicy, origin: str
                       ) -> tuple[dict[str, Any], str, str]:
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.verify import policy as sigstore_policy

    assert policy.identity is not None and policy.issuer is not None
    wanted = sigstore_policy.Identity(identity=policy.identity, issuer=policy.issuer)
    signer, issuer = _certificate_identity(bundle.signing_certificate)
    # The identity first: "signed by someone else" is a clearer reason than a chain error.
    try:
        wanted.verify(bundle.signing_certificate)
    except SigstoreVerificationError as exc:
        raise SignerMismatchError(
            f"{origin}: signed by {signer} (issuer {issuer or 'unknown'}), not by "
            f"{policy.identity} (issuer {policy.issuer})",
            hint="check --identity and --issuer: both must match the certificate exactly") \
            from exc
    _check_certificate_time(bundle, origin)
    try:
        payload_type, payload = _verifier(policy.staging, policy.offline).verify_dsse(bundle,
                                                                                     wanted)
    except SigstoreVerificationError as exc:
        raise SignatureError(f"{origin}: Sigstore verification failed: {exc}",
                             hint="the bundle was changed after signing, has expired or does "
                                  "not chain to the trust root"
                                  + ("" if policy.staging else " (was it signed on staging? "
                                     "then pass --staging)")) from exc
    if payload_type != PAYLOAD_TYPE:
        raise MalformedAttestationError(f"{origin}: payloadType is {payload_type!r}, not "
                                        f"{PAYLOAD_TYPE!r}")
    return parse_statement(payload, origin), signer, issuer


def _check_certificate_time(bundle: Bundle, origin: str) -> None:
    """An expired bundle: its log entry is dated outside the certificate's ten minutes.

    sigstore-python refuses it too; this names the reason plainly.
    """
    from datetime import datetime, timezone

    cert = bundle.signing_certificate
    try:
        seconds = int(bundle.log_entry._inner.integrated_time or 0)
    except (AttributeError, TypeError, ValueError):
        seconds = 0
    if not seconds:
        return  # no integrated time (Rekor v2): sigstore checks the signed timestamps
    logged = datetime.fromtimestamp(seconds, tz=timezone.utc)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= logged <= end:
        when = "%Y-%m-%d %H:%M:%S"
        raise SignatureError(
            f"{origin}: the signing certificate is valid from {start.strftime(when)} to "
            f"{end.strftime(when)} UTC, but the transparency log dates the signature "
            f"{logged.strftime(when)}: the bundle is expired or altered",
            hint="a Sigstore signature must be logged while its certificate is valid; sign again")


def verify_bundle(bundle: Mapping[str, Any] | bytes, policy: VerifyPolicy, *,
                  origin: str = "bundle") -> dict[str, Any]:
    """Check a Sigstore bundle (or PEP 740 attestation) against ``policy``; return its statement."""
    policy.check()
    if policy.identity is None:
        raise UsageError("a Sigstore bundle is checked against --identity and --issuer")
    data = bundle if isinstance(bundle, bytes) else json.dumps(dict(bundle)).encode()
    att = FoundAttestation.from_bytes(data, origin)
    return verify_sigstore_attestation(att, policy)[0][0]


def verify_sigstore_attestation(att: FoundAttestation, policy: VerifyPolicy
                     ) -> list[tuple[dict[str, Any], VerifiedSignature]]:
    out = []
    for bundle in _load_bundles(att):
        statement, signer, issuer = _verify_one_bundle(bundle, policy, att.origin)
        out.append((statement, VerifiedSignature(kind=att.kind, origin=att.origin,
                                                 signer=signer, issuer=issuer)))
    return out


# --------------------------------------------------------------------------- the wheel

def check_subject(statement: Mapping[str, Any], wheel_name: str, digest: str,
                  origin: str) -> None:
    """The wheel's sha256 must be a subject under exactly this filename."""
    subjects = statement.get("subject") or []
    named = [s for s in subjects if s.get("name") == wheel_name]
    if named:
        if any((s.get("digest") or {}).get("sha256") == digest for s in named):
            return
        stated = (named[0].get("digest") or {}).get("sha256", "(none)")
        raise WheelDigestError(
            f"{wheel_name}: its sha256 is {digest[:16]}…, but the statement in {origin} "
            f"names {stated[:16]}…: the wheel was changed after signing",
            hint="do not install it; fetch or build the wheel again")
    same_bytes = [s.get("name") for s in subjects
                  if (s.get("digest") or {}).get("sha256") == digest]
    if same_bytes:
        raise SubjectNameError(
            f"{wheel_name}: the statement in {origin} signs these bytes as {same_bytes[0]}, "
            "not under this filename: the wheel was renamed",
            hint="a wheel's filename carries its tags; restore the signed name")
    names = ", ".join(str(s.get("name")) for s in subjects) or "(nothing)"
    raise SubjectNameError(f"{wheel_name}: the statement in {origin} is about {names}, "
                           "not this wheel",
                           hint="pass the attestation that belongs to this wheel")


def _checked(wheel: Path, policy: VerifyPolicy, found: list[FoundAttestation]
             ) -> list[tuple[dict[str, Any], VerifiedSignature]]:
    """Verify the attestations the policy asks for; every one that is checked must pass."""
    results: list[tuple[dict[str, Any], VerifiedSignature]] = []
    if policy.key is not None:
        envelopes = [a for a in found if a.kind == "dsse"]
        if not envelopes:
            raise AttestationMissingError(
                f"{wheel.name}: no key-signed envelope to check with --key "
                f"(looked for {wheel.name}{DSSE_SUFFIX})",
                hint="sign with `kiln sign --key` or `kiln build --sign-key`, or pass --bundle")
        signer = f"key {keyid(load_public_key(policy.key))}"
        for att in envelopes:
            statement = verify_envelope(att.data, policy.key, origin=att.origin)
            results.append((statement, VerifiedSignature(kind="dsse", origin=att.origin,
                                                         signer=signer)))
    if policy.identity is not None:
        bundles = [a for a in found if a.kind in SIGSTORE_KINDS]
        if not bundles:
            raise AttestationMissingError(
                f"{wheel.name}: no Sigstore bundle to check with --identity "
                f"(looked for {wheel.name}{SIGSTORE_SUFFIX})",
                hint="sign with `kiln sign` (keyless), or pass --bundle PATH")
        for att in bundles:
            results.extend(verify_sigstore_attestation(att, policy))
    return results


def verify_wheel(wheel: Path, policy: VerifyPolicy,
                 attestation: Path | FoundAttestation | Sequence[FoundAttestation] | None = None
                 ) -> VerifiedWheel:
    """Verify ``wheel`` against its attestation(s) under ``policy``; raise on any doubt."""
    policy.check()
    if not wheel.is_file():
        raise UsageError(f"{wheel}: no such file", hint="pass the path of a wheel")
    if attestation is None:
        from kiln.audit import attestations_for  # the audit branch, when none lies beside it

        found = find_attestations(wheel) or attestations_for(wheel)
    elif isinstance(attestation, Path):
        found = [FoundAttestation.from_path(attestation)]
    elif isinstance(attestation, FoundAttestation):
        found = [attestation]
    else:
        found = list(attestation)
    if not found:
        raise AttestationMissingError(
            f"{wheel.name}: no attestation (looked for {wheel.name}{DSSE_SUFFIX} and "
            f"{wheel.name}{SIGSTORE_SUFFIX} beside it, and on the audit branch)",
            hint="sign it with `kiln sign` or `kiln build --sign-key`, or pass --bundle PATH "
                 "(`kiln verify` also looks on the audit branch)")
    checked = _checked(wheel, policy, found)
    digest = sha256_file(wheel)
    for statement, signature in checked:
        check_subject(statement, wheel.name, digest, signature.origin)
    kiln_first = sorted(checked, key=lambda c: not is_kiln_statement(c[0]))
    return summarise(wheel, digest, kiln_first[0][0], tuple(s for _, s in checked))


def summarise(wheel: Path, digest: str, statement: dict[str, Any],
              signatures: tuple[VerifiedSignature, ...]) -> VerifiedWheel:
    """What a verified statement says, in the fields an auditor asks about."""
    predicate = statement.get("predicate") or {}
    definition = predicate.get("buildDefinition") or {}
    run = predicate.get("runDetails") or {}
    metadata = run.get("metadata") or {}
    base: dict[str, Any] = {
        "wheel": wheel, "sha256": digest, "signatures": signatures, "statement": statement,
        "predicate_type": statement.get("predicateType", ""),
        "build_type": definition.get("buildType"),
        "builder": (run.get("builder") or {}).get("id"),
        "started": metadata.get("startedOn"), "finished": metadata.get("finishedOn"),
    }
    if definition.get("buildType") != BUILD_TYPE:
        return VerifiedWheel(**base)
    external = definition.get("externalParameters") or {}
    source = external.get("source") or {}
    recipe = external.get("recipe") or {}
    byproducts = {b.get("name"): b for b in run.get("byproducts") or []}
    repro = (byproducts.get(REPRO_BYPRODUCT) or {}).get("annotations") or {}
    tests = (byproducts.get(TESTS_BYPRODUCT) or {}).get("annotations") or {}
    return VerifiedWheel(
        **base,
        sdist=source.get("url"), sdist_sha256=source.get("sha256"),
        recipe=recipe.get("path"), recipe_sha256=recipe.get("sha256"),
        python=external.get("python"), target=external.get("target"),
        reproducible=repro.get("reproducible"), repro_digests=list(repro.get("digests") or []),
        tests_passed=tests.get("passed") if tests.get("ran") else None,
        libraries=_libraries(definition),
    )


def _libraries(definition: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, version, source URL, sha256) of each library the statement lists."""
    found = []
    for dep in definition.get("resolvedDependencies") or []:
        notes = dep.get("annotations") or {}
        if notes.get("kind") != "library":
            continue
        version = str(notes.get("version", ""))
        name = str(dep.get("name", "")).removeprefix("library:").removesuffix(f"-{version}")
        found.append((name, version, str(dep.get("uri", "")),
                      str((dep.get("digest") or {}).get("sha256", ""))))
    return found


# --------------------------------------------------------------------------- test results

@dataclass(frozen=True)
class VerifiedTests:
    """A signed test result that verified: what it says and who signed it."""

    summary: str  # "passed (412)"
    statement: dict[str, Any]
    signature: VerifiedSignature

    def to_json(self) -> dict[str, Any]:
        predicate = self.statement.get("predicate") or {}
        return {"summary": self.summary, "result": predicate.get("result"),
                "counts": predicate.get("counts"), "commands": predicate.get("commands"),
                "configuration": predicate.get("configuration"),
                "signature": self.signature.to_json()}


def find_test_results(wheel: Path, audit_repo: Path | None = None) -> list[FoundAttestation]:
    """The signed test results beside ``wheel``, else the ones its audit record keeps."""
    from kiln.testreport import TESTS_SUFFIXES

    found = [FoundAttestation.from_path(p) for p in
             (wheel.with_name(wheel.name + s) for s in TESTS_SUFFIXES) if p.is_file()]
    if found:
        return found
    from kiln.audit import attestations_for
    from kiln.errors import AuditError

    try:
        return attestations_for(wheel, repo=audit_repo, tests=True)
    except AuditError:
        return []


def verify_tests(wheel: Path, policies: Sequence[VerifyPolicy],
                 found: Sequence[FoundAttestation] | None = None,
                 audit_repo: Path | None = None) -> VerifiedTests:
    """A test result for ``wheel``'s very bytes, signed by one of ``policies``, that passed;
    TestsNotVerifiedError when there is none (a result by someone else does not count), and
    the signature errors of ``kiln verify`` when one was altered."""
    from kiln.testreport import TEST_RESULT_TYPE, TESTS_DSSE_SUFFIX, describe

    results = list(found) if found is not None else find_test_results(wheel, audit_repo)
    if not results:
        raise TestsNotVerifiedError(
            f"{wheel.name}: no signed test result (looked for {wheel.name}{TESTS_DSSE_SUFFIX} "
            "and .tests.sigstore.json beside it, and on the audit branch)",
            hint="build it with its tests and sign it (`kiln build --sign-key`, `kiln sign`)")
    digest = sha256_file(wheel)
    failed: list[str] = []
    for policy in policies:
        for att in results:
            try:
                if policy.key is not None:
                    if att.kind != "dsse":
                        continue
                    statement = verify_envelope(att.data, policy.key, origin=att.origin)
                    signature = VerifiedSignature(
                        kind="dsse", origin=att.origin,
                        signer=f"key {keyid(load_public_key(policy.key))}")
                elif att.kind == "dsse":
                    continue
                else:
                    statement, signature = verify_sigstore_attestation(att, policy)[0]
            except SignerMismatchError:
                continue  # another signer's result: not ours to count
            if statement.get("predicateType") != TEST_RESULT_TYPE:
                continue
            check_subject(statement, wheel.name, digest, att.origin)
            said = describe(statement)
            if (statement.get("predicate") or {}).get("result") == "PASSED":
                return VerifiedTests(said, statement, signature)
            failed.append(f"{said} ({att.origin})")
    if failed:
        raise TestsNotVerifiedError(f"{wheel.name}: its signed test result says {failed[0]}",
                                    hint="do not install it; fix the failing tests and build "
                                         "again")
    raise TestsNotVerifiedError(
        f"{wheel.name}: no test result signed by the trusted signer(s) "
        f"({len(results)} by others)",
        hint="pass the --key or --identity of the builder that ran the tests")

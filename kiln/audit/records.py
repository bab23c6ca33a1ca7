"""The audit record: one wheel's provenance, signatures and reproducibility, as committed.

A record lives at ``<project>/<version>/<wheel filename>.json`` on the audit branch. When a
later record gives the same filename a different sha256 (the wheel did not reproduce on
another builder), it is kept beside the first as ``<wheel filename>.<sha256>.json`` — the
full digest, so the name alone says which wheel it is about — and ``kiln audit verify``
reports the conflict. When another signer (a rebuilder with its own key or identity)
records the same bytes, its record is kept too, as
``<wheel filename>.<sha256>.<signers>.json`` where ``<signers>`` is the first 16 hex digits
of the sha256 of its sorted signer names: that is what a quorum (``kiln verify --quorum``)
counts.

The model refuses unknown keys: a record that was edited, or written by a kiln that
knows fields this one does not, fails loudly instead of being half understood.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kiln import __version__
from kiln.errors import AuditError
from kiln.files import Artifact
from kiln.provenance import REPRO_BYPRODUCT
from kiln.record import BuildRecord, load_record
from kiln.record import record_path as build_record_path

AUDIT_RECORD_KIND = "https://kiln.dev/audit-record/v1"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
# What may sit beside a wheel, and what kind of signature each file holds.
SIGNATURE_FILES = ((".dsse.json", "dsse"), (".sigstore.json", "sigstore"))
TEST_RESULT_FILES = ((".tests.dsse.json", "dsse"), (".tests.sigstore.json", "sigstore"))

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# Wheel filenames are the only user-influenced part of a record's path: keep them plain.
WheelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.+!-]+\.whl$")]
_ALTERNATIVE = re.compile(r"^(?P<wheel>.+\.whl)\.(?P<sha>[0-9a-f]{64})"
                          r"(?:\.(?P<signers>[0-9a-f]{16}))?\.json$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelDigest(Model):
    filename: WheelName
    sha256: Sha256
    size: int


class FileDigest(Model):
    path: str
    sha256: Sha256


class SourceDigest(Model):
    url: str
    filename: str
    sha256: Sha256


class LogDigest(Model):
    name: str
    sha256: Sha256
    size: int


class Reproducibility(Model):
    checked: bool
    reproducible: bool | None
    expected: bool = True  # False: the recipe declares the package known-unreproducible
    digests: list[Sha256] = []
    variations: list[str] = []


class RecordedSignature(Model):
    """A DSSE envelope signed with a key, or a Sigstore bundle, as it lay beside the wheel."""

    type: Literal["dsse", "sigstore"]
    file: str
    signed_by: str  # as the signature claims it; `kiln audit verify` checks it
    content: dict[str, Any]


class AuditRecord(Model):
    kind: Literal["https://kiln.dev/audit-record/v1"] = "https://kiln.dev/audit-record/v1"
    wheel: WheelDigest
    project: str
    version: str
    build_id: str
    python: str
    target: str
    source: SourceDigest
    recipe: FileDigest
    lock: FileDigest | None
    build_log: LogDigest | None
    reproducibility: Reproducibility
    builder: str
    statement: dict[str, Any]
    signatures: list[RecordedSignature]
    recorded_at: datetime
    recorded_by: str
    # The signed test results beside the wheel (W.tests.dsse.json, W.tests.sigstore.json).
    test_results: list[RecordedSignature] = Field(default_factory=list)

    def envelope(self) -> dict[str, Any] | None:
        """The DSSE envelope signed with a key, if the wheel has one."""
        return next((s.content for s in self.signatures if s.type == "dsse"), None)

    def bundle(self) -> dict[str, Any] | None:
        """The Sigstore bundle, if the wheel has one."""
        return next((s.content for s in self.signatures if s.type == "sigstore"), None)

    def to_bytes(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()

    @property
    def signers(self) -> frozenset[str]:
        """Who the signatures say signed the record (claimed; ``kiln verify`` checks them)."""
        return frozenset(s.signed_by for s in self.signatures)


def parse_record(data: bytes, where: str) -> AuditRecord:
    try:
        return AuditRecord.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "(record)"
        raise AuditError(f"{where}: {field}: {first['msg']}",
                         hint="records are written by kiln and never edited") from exc


# -- where records live --------------------------------------------------------------------


def wheel_folder(filename: str) -> tuple[str, str]:
    """(normalised project name, version) of a wheel filename: the record's folder."""
    if not re.fullmatch(r"[A-Za-z0-9_.+!-]+\.whl", filename):
        raise AuditError(f"{filename!r} is not a wheel filename",
                         hint="wheel filenames look like name-1.0-cp311-cp311-linux_x86_64.whl")
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise AuditError(f"{filename!r} is not a wheel filename: {exc}") from exc
    return str(canonicalize_name(name)), str(version)


def primary_path(filename: str) -> str:
    project, version = wheel_folder(filename)
    return f"{project}/{version}/{filename}.json"


def alternative_path(filename: str, sha256: str) -> str:
    """Where a second record for ``filename`` with another digest goes."""
    project, version = wheel_folder(filename)
    return f"{project}/{version}/{filename}.{sha256}.json"


def signers_tag(signers: frozenset[str]) -> str:
    """The 16 hex digits that name a set of signers in a witness record's path."""
    return hashlib.sha256("\n".join(sorted(signers)).encode()).hexdigest()[:16]


def witness_path(filename: str, sha256: str, signers: frozenset[str]) -> str:
    """Where a record of bytes already recorded, by signers not yet recorded, goes."""
    project, version = wheel_folder(filename)
    return f"{project}/{version}/{filename}.{sha256}.{signers_tag(signers)}.json"


def is_witness_path(path: str) -> bool:
    match = _ALTERNATIVE.match(path.rpartition("/")[2])
    return bool(match and match["signers"])


def parse_record_path(path: str) -> tuple[str, str | None]:
    """(wheel filename, sha256 for an alternative or witness record else None), or AuditError."""
    folder, _, leaf = path.rpartition("/")
    match = _ALTERNATIVE.match(leaf)
    filename, sha = (match["wheel"], match["sha"]) if match else (leaf.removesuffix(".json"),
                                                                  None)
    if not leaf.endswith(".json") or not filename.endswith(".whl"):
        raise AuditError(f"{path}: not a record path (<project>/<version>/<wheel>.json)")
    if folder != "/".join(wheel_folder(filename)):
        raise AuditError(f"{path}: a record for {filename} belongs in "
                         f"{'/'.join(wheel_folder(filename))}/")
    return filename, sha


def expected_path(record: AuditRecord, alternative: bool) -> str:
    w = record.wheel
    return alternative_path(w.filename, w.sha256) if alternative else primary_path(w.filename)


def commit_message(filename: str, sha256: str, conflict: bool, witness: bool = False) -> str:
    """One line naming the wheel and its digest."""
    message = f"audit: {filename} sha256:{sha256}"
    if witness:
        message += " (another signer of bytes already recorded)"
    if conflict:
        message += " (differs from the first record: not reproduced across builders)"
    return message


# -- reading what lies beside a wheel --------------------------------------------------------


def statement_of(envelope: dict[str, Any], where: str) -> dict[str, Any]:
    """The in-toto statement a DSSE envelope carries (not yet verified)."""
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD:
        raise AuditError(f"{where}: payloadType is {envelope.get('payloadType')!r}, "
                         f"not {IN_TOTO_PAYLOAD}")
    try:
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise AuditError(f"{where}: the payload is not a base64 JSON statement") from exc
    if not isinstance(statement, dict):
        raise AuditError(f"{where}: the payload is not a JSON object")
    return statement


def envelope_of(signature: RecordedSignature) -> dict[str, Any]:
    if signature.type == "dsse":
        return signature.content
    envelope = signature.content.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise AuditError(f"{signature.file}: the Sigstore bundle holds no DSSE envelope")
    return envelope


def signer_of(kind: str, content: dict[str, Any], where: str) -> str:
    """Who a signature says signed it: the key id, or the certificate's identity."""
    if kind == "dsse":
        sigs = content.get("signatures") or []
        return ", ".join(f"key {s.get('keyid') or '(no key id)'}" for s in sigs) or "(unsigned)"
    return certificate_identity(content, where)


def certificate_identity(bundle: dict[str, Any], where: str) -> str:
    from cryptography import x509

    material = bundle.get("verificationMaterial") or {}
    raw = (material.get("certificate") or {}).get("rawBytes")
    if raw is None:
        chain = (material.get("x509CertificateChain") or {}).get("certificates") or [{}]
        raw = chain[0].get("rawBytes")
    if not raw:
        raise AuditError(f"{where}: the Sigstore bundle has no signing certificate")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(raw))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise AuditError(f"{where}: the signing certificate cannot be read: {exc}") from exc
    names = [*san.get_values_for_type(x509.UniformResourceIdentifier),
             *san.get_values_for_type(x509.RFC822Name)]
    return names[0] if names else "(no identity)"


def subjects_name(statement: dict[str, Any], filename: str, sha256: str) -> bool:
    """Whether the statement names this wheel, under this filename, with this digest."""
    for subject in statement.get("subject") or []:
        if (isinstance(subject, dict) and subject.get("name") == filename
                and (subject.get("digest") or {}).get("sha256") == sha256):
            return True
    return False


def _signatures_beside(wheel: Path, files: tuple[tuple[str, str], ...] = SIGNATURE_FILES
                       ) -> list[RecordedSignature]:
    found = []
    for suffix, kind in files:
        path = wheel.with_name(wheel.name + suffix)
        if not path.exists():
            continue
        try:
            content = json.loads(path.read_bytes())
        except ValueError as exc:
            raise AuditError(f"{path}: not JSON: {exc}",
                             hint="sign the wheel again (kiln sign, or kiln build --sign-key)"
                             ) from exc
        if not isinstance(content, dict):
            raise AuditError(f"{path}: not a JSON object")
        found.append(RecordedSignature(type=kind, file=path.name,  # type: ignore[arg-type]
                                       signed_by=signer_of(kind, content, str(path)),
                                       content=content))
    return found


def _statement_for(build: BuildRecord, signatures: list[RecordedSignature]) -> dict[str, Any]:
    if signatures:
        # What was signed, byte for byte — never a statement made again now.
        return statement_of(envelope_of(signatures[0]), signatures[0].file)
    from kiln.provenance import build_statement

    return dict(build_statement(build))


def record_for_wheel(wheel: Path, now: datetime | None = None) -> AuditRecord:
    """The audit record of a wheel from what lies beside it: its build record, its signatures."""
    if not wheel.is_file():
        raise AuditError(f"{wheel}: no such wheel")
    artifact = Artifact.of(wheel)
    build = load_record(build_record_path(wheel))
    if build.wheel.filename != wheel.name or build.wheel.sha256 != artifact.sha256:
        raise AuditError(
            f"{wheel}: its build record names {build.wheel.filename} sha256 "
            f"{build.wheel.sha256[:12]}…, but the wheel has sha256 {artifact.sha256[:12]}…",
            hint="the wheel was changed or replaced after it was built; build it again")
    signatures = _signatures_beside(wheel)
    statement = _statement_for(build, signatures)
    test_results = _signatures_beside(wheel, TEST_RESULT_FILES)
    for sig in (*signatures, *test_results):
        if not subjects_name(statement_of(envelope_of(sig), sig.file), wheel.name,
                             artifact.sha256):
            raise AuditError(f"{wheel.with_name(sig.file)}: the signed statement does not name "
                             f"{wheel.name} with sha256 {artifact.sha256[:12]}…",
                             hint="the signature belongs to another wheel; sign this one again")
    if not subjects_name(statement, wheel.name, artifact.sha256):
        raise AuditError(f"{wheel}: the provenance statement does not name this wheel")
    project, version = wheel_folder(wheel.name)
    return AuditRecord(
        wheel=WheelDigest(filename=wheel.name, sha256=artifact.sha256, size=artifact.size),
        project=project, version=version,
        **statement_facts(statement, str(wheel.with_name(signatures[0].file)) if signatures
                          else str(wheel)),
        statement=statement,
        signatures=signatures,
        recorded_at=now or datetime.now(timezone.utc).replace(microsecond=0),
        recorded_by=f"kiln {__version__}",
        test_results=test_results,
    )


# -- what the statement says ------------------------------------------------------------------
# The record's summary fields are read from the statement, never from elsewhere, so that
# `kiln audit verify` can read them again from the signed statement and catch any edit.


def statement_facts(statement: dict[str, Any], where: str) -> dict[str, Any]:
    """The record fields a kiln provenance statement determines (AuditError if it lacks one)."""
    try:
        predicate = statement["predicate"]
        definition = predicate["buildDefinition"]
        external = definition["externalParameters"]
        internal = definition["internalParameters"]
        dependencies = definition.get("resolvedDependencies") or []
        run = predicate["runDetails"]
        byproducts = run.get("byproducts") or []
        sdist = _by_kind(dependencies, "sdist")
        lock = _by_kind(dependencies, "lock")
        log = _by_kind(byproducts, "build-log")
        repro = next((b for b in byproducts if b.get("name") == REPRO_BYPRODUCT), None)
        repro_notes = (repro or {}).get("annotations") or {}
        return {
            "build_id": internal["buildId"],
            "python": external["python"],
            "target": external["target"],
            "source": SourceDigest(url=external["source"]["url"],
                                   filename=sdist["name"] if sdist else "",
                                   sha256=external["source"]["sha256"]),
            "recipe": FileDigest(path=external["recipe"]["path"],
                                 sha256=external["recipe"]["sha256"]),
            "lock": FileDigest(path=lock["name"], sha256=lock["digest"]["sha256"])
            if lock else None,
            "build_log": LogDigest(name=log["name"], sha256=log["digest"]["sha256"],
                                   size=(log.get("annotations") or {}).get("size", 0))
            if log else None,
            "reproducibility": Reproducibility(
                checked=repro is not None,
                reproducible=repro_notes.get("reproducible"),
                expected=repro_notes.get("expected", True),
                digests=list(repro_notes.get("digests") or []),
                variations=list(repro_notes.get("variations") or [])),
            "builder": run["builder"]["id"],
        }
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise AuditError(f"{where}: the provenance statement is not kiln's, or lacks "
                         f"{exc}", hint="record wheels that kiln built and signed") from exc


def _by_kind(descriptors: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((d for d in descriptors
                 if isinstance(d, dict) and (d.get("annotations") or {}).get("kind") == kind),
                None)


def facts_of(record: AuditRecord) -> dict[str, Any]:
    """The same fields as they stand in ``record`` (to compare with ``statement_facts``)."""
    return {name: getattr(record, name) for name in ("build_id", "python", "target", "source",
                                                     "recipe", "lock", "build_log",
                                                     "reproducibility", "builder")}

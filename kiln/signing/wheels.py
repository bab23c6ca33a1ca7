"""Sign wheels in a wheelhouse from their build records; the after-build signing step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from kiln.errors import SigningError
from kiln.files import sha256_file
from kiln.progress import reporter
from kiln.provenance import build_statement
from kiln.record import BuildRecord, load_record, record_path
from kiln.signing.keyless import KeylessOutputs, keyless_signer
from kiln.signing.keys import keyid, load_private_key, sign_with_key, write_envelope
from kiln.testreport import test_statement, tests_bundle_path, tests_dsse_path

if TYPE_CHECKING:
    from kiln.pipeline import JobResult

DSSE_SUFFIX = ".dsse.json"


def dsse_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + DSSE_SUFFIX)


@dataclass(frozen=True)
class SignedWheel:
    wheel: Path
    sha256: str
    method: str  # "key" or "sigstore"
    signer: str  # the key's id, or the identity in the certificate
    files: tuple[Path, ...]

    def to_json(self) -> dict[str, Any]:
        return {"wheel": str(self.wheel), "sha256": self.sha256, "method": self.method,
                "signer": self.signer, "files": [str(f) for f in self.files]}


def statement_for_wheel(wheel: Path, record: BuildRecord | None = None) -> dict[str, Any]:
    """The provenance statement for ``wheel``, refusing a wheel its record does not describe."""
    if not wheel.is_file():
        raise SigningError(f"{wheel}: no such wheel", hint="pass wheels from the wheelhouse")
    record = record if record is not None else load_record(record_path(wheel))
    digest = sha256_file(wheel)
    named = {w.filename: w.sha256 for w in record.outputs}
    if wheel.name not in named:
        raise SigningError(f"{wheel.name}: its build record describes {', '.join(named)}, "
                           "not this file", hint="a renamed wheel cannot be signed; rebuild it")
    if named[wheel.name] != digest:
        raise SigningError(f"{wheel.name}: sha256 {digest[:12]}… is not the "
                           f"{named[wheel.name][:12]}… its build record names",
                           hint="the wheel changed after it was built; rebuild it")
    return build_statement(record)


def sign_wheel_with_key(wheel: Path, key: Path | ec.EllipticCurvePrivateKey,
                        record: BuildRecord | None = None) -> SignedWheel:
    """Write ``W.dsse.json``: the wheel's statement in a DSSE envelope signed with ``key``;
    and ``W.tests.dsse.json``, its test result, when its tests ran."""
    private = load_private_key(key) if isinstance(key, Path) else key
    record = record if record is not None else load_record(record_path(wheel))
    statement = statement_for_wheel(wheel, record)
    target = dsse_path(wheel)
    write_envelope(sign_with_key(statement, private), target)
    files = [target]
    tests = test_statement(record, wheel.name)
    if tests is not None:
        files.append(tests_dsse_path(wheel))
        write_envelope(sign_with_key(tests, private), files[-1])
    return SignedWheel(wheel=wheel, sha256=statement["subject"][0]["digest"]["sha256"],
                       method="key", signer=keyid(private.public_key()), files=tuple(files))


def sign_wheels_with_key(wheels: list[Path], key: Path) -> list[SignedWheel]:
    private = load_private_key(key)
    out = []
    for wheel in wheels:
        reporter().stage("sign", wheel.name)
        out.append(sign_wheel_with_key(wheel, private))
    return out


@contextmanager
def _keyless(identity_token: str | None, staging: bool) -> Iterator[
        Callable[[Path], KeylessOutputs]]:
    with keyless_signer(identity_token, staging=staging) as signer:
        def sign(wheel: Path) -> KeylessOutputs:
            record = load_record(record_path(wheel))
            done = signer.sign(statement_for_wheel(wheel, record), wheel)
            tests = test_statement(record, wheel.name)  # the wheel was checked just above
            if tests is not None:
                signer.sign_statement(tests, tests_bundle_path(wheel), wheel.name)
            return done

        yield sign


def sign_wheels_keyless(wheels: list[Path], *, identity_token: str | None,
                        staging: bool = False) -> list[SignedWheel]:
    """Sign each wheel with Sigstore: ``W.sigstore.json`` and ``W.publish.attestation``."""
    # Statements first: a wheel that does not match its record fails before any network use.
    for wheel in wheels:
        statement_for_wheel(wheel)
    out = []
    with _keyless(identity_token, staging) as sign:
        for wheel in wheels:
            reporter().stage("sign", f"{wheel.name} (Sigstore)")
            done = sign(wheel)
            tests = tests_bundle_path(wheel)
            out.append(SignedWheel(wheel=wheel, sha256=sha256_file(wheel), method="sigstore",
                                   signer=f"{done.identity} ({done.issuer})",
                                   files=(done.bundle, done.attestation,
                                          *((tests,) if tests.is_file() else ()))))
    return out


def key_signing_step(key: Path) -> Callable[[JobResult], None]:
    """An after-build step that writes ``W.dsse.json`` beside each finished wheel.

    The key is loaded now, so a missing or wrong key fails before anything is built.
    """
    private = load_private_key(key)

    def sign_built_wheel(result: JobResult) -> None:
        if result.wheel is None or result.record is None:
            return
        reporter().stage("sign", result.wheel.name)
        sign_wheel_with_key(result.wheel, private, record=result.record)

    return sign_built_wheel

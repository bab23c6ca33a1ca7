"""Every error kiln raises on purpose: a message, a hint, and the exit code it maps to.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class KilnError(Exception):
    """An expected failure: the CLI prints ``error:`` and ``hint:`` and exits with ``exit_code``."""

    exit_code = 1
    default_hint: str | None = None
    # Bad input (a malformed recipe, a wrong sha256, a bad option): the command refuses it
    # and writes nothing, not even a status file saying it failed.
    bad_input = False

    def __init__(self, message: str, *, hint: str | None = None, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.log = log

    def __str__(self) -> str:
        return self.message


class UsageError(KilnError):
    """The command line asked for something that cannot be done."""

    exit_code = 2
    bad_input = True


class RecipeError(KilnError):
    """A recipe or lock file is malformed; the message names the file and the field."""

    exit_code = 2
    bad_input = True


class NothingToDoError(KilnError):
    """The selection matched nothing (no recipe, no Python, no target)."""

    exit_code = 3


class FetchError(KilnError):
    """An sdist (or another input) could not be downloaded or read."""

    exit_code = 4
    default_hint = "check the url and your network, then run the command again"


class HashMismatchError(FetchError):
    """Downloaded bytes do not have the digest the recipe promises."""

    exit_code = 5
    default_hint = (
        "if the new file is the one you want, put its sha256 in the recipe; otherwise the "
        "download was tampered with or corrupted"
    )


class SourceHashMismatchError(HashMismatchError):
    """The recipe's sdist does not have the sha256 the recipe gives: the recipe is refused.

    Bad input, unlike a pinned file of kiln's own that does not match (a failed build).
    """

    bad_input = True


class UnsafeArchiveError(KilnError):
    """An archive tried to write outside its folder, or was too large to be honest."""

    exit_code = 6


class LockError(KilnError):
    """Build requirements could not be resolved or the lock does not fit the recipe."""

    exit_code = 7


class EnvironmentSetupError(KilnError):
    """The pinned build environment (interpreter, venv, tools) could not be made."""

    exit_code = 8


class BuildError(KilnError):
    """The build backend failed."""

    exit_code = 10


class RepairError(KilnError):
    """auditwheel or delocate refused the wheel."""

    exit_code = 11


class WheelTestError(KilnError):
    """The recipe's tests failed against a built wheel."""

    exit_code = 12
    # What the failing command's runner counted (kiln.testresults.TestCounts), and the command.
    counts: Any = None
    command: str = ""


class NotReproducibleError(KilnError):
    """Two builds of the same inputs gave different wheels."""

    exit_code = 13

    def __init__(self, message: str, *, hint: str | None = None, log: Path | None = None,
                 report: Path | None = None) -> None:
        super().__init__(message, hint=hint, log=log)
        self.report = report  # the JSON report that names each difference


class ChallengeError(KilnError):
    """Two sources (indexes, a wheelhouse) serve different bytes under one wheel filename."""

    exit_code = 14
    default_hint = "rebuild the wheel yourself (`kiln rebuild URL`) to see which bytes it gives"


class SigningError(KilnError):
    """A statement could not be signed."""

    exit_code = 20


class VerificationError(KilnError):
    """A wheel, a signature or a record did not check out."""

    exit_code = 21


# What `kiln verify` found wrong, one exit code per kind of doubt, so a script can tell
# a tampered wheel from a missing signature.
class WheelDigestError(VerificationError):
    """The wheel's bytes are not the bytes the statement names (tampered or replaced)."""

    exit_code = 22


class SubjectNameError(VerificationError):
    """The statement does not name the wheel under this filename (renamed, or another wheel)."""

    exit_code = 23


class SignatureError(VerificationError):
    """The signature does not verify: the statement or bundle was changed after signing."""

    exit_code = 24


class SignerMismatchError(VerificationError):
    """A valid signature, but by another key or identity than the policy trusts."""

    exit_code = 25


class AttestationMissingError(VerificationError):
    """No attestation was found for the wheel."""

    exit_code = 26


class MalformedAttestationError(VerificationError):
    """The envelope, bundle or statement cannot be read as one."""

    exit_code = 27
    default_hint = "the attestation is damaged, truncated or of another kind; fetch it again"


class QuorumError(VerificationError):
    """Fewer distinct trusted signers vouch for the wheel's digest than the quorum asks."""

    exit_code = 28


class BuildersDisagreeError(VerificationError):
    """A trusted signer signed other bytes under the same filename: builders disagree."""

    exit_code = 29


class TestsNotVerifiedError(VerificationError):
    """``--require-tests``: no signed test result that passed, by a trusted signer."""

    exit_code = 31


class AuditError(KilnError):
    """The audit branch could not be read or written."""

    exit_code = 30


class IndexBuildError(KilnError):
    """The package index could not be written."""

    exit_code = 40


class PublishError(KilnError):
    """The index could not be published."""

    exit_code = 41


class UnsupportedError(KilnError):
    """kiln does not do this (on this host, for this package, or yet); the message says which."""

    exit_code = 64


class BuildsFailedError(KilnError):
    """Some of several builds failed; each failure was already reported."""

    exit_code = 10

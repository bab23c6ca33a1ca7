"""The audit branch: an append-only, tamper-evident git record of every build.

``gitstore`` speaks git plumbing, ``records`` is the record format, ``branch`` appends and
reads records, ``push`` shares them, ``verify`` checks a whole branch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.audit.branch import DEFAULT_BRANCH, Added, AuditBranch, find_record
from kiln.audit.records import AuditRecord, record_for_wheel

if TYPE_CHECKING:
    from kiln.pipeline import JobResult
    from kiln.verify import FoundAttestation

__all__ = ["DEFAULT_BRANCH", "Added", "AuditBranch", "AuditRecord", "attestations_for",
           "audit_step", "find_record", "record_for_wheel"]


def audit_step(repo: Path, branch: str = DEFAULT_BRANCH) -> Callable[[JobResult], None]:
    """The after-build step of ``kiln build --audit``: record each finished wheel.

    Opens the repository now, so a build that cannot be recorded fails before it starts.
    Runs after signing, so the record carries the signature written beside the wheel.
    """
    from kiln.progress import reporter

    audit = AuditBranch.open(repo, branch)

    def record(result: JobResult) -> None:
        if result.wheel is None:
            return
        reporter().stage("audit", result.wheel.name)
        added = audit.add(record_for_wheel(result.wheel))
        if added.status == "exists":
            reporter().note(f"{result.wheel.name} is already on the {branch} branch "
                            f"({added.path})")

    return record


def attestations_for(wheel: Path, repo: Path | None = None, branch: str | None = None,
                     *, tests: bool = False) -> list[FoundAttestation]:
    """The signatures the audit branch keeps for ``wheel`` (with ``tests``, its signed test
    results): for ``kiln verify`` when none lie beside it. Empty when there is no
    repository, branch or record.
    """
    from kiln.files import sha256_file
    from kiln.verify import FoundAttestation

    record = find_record(wheel.name, sha256_file(wheel), repo=repo, branch=branch)
    if record is None:
        return []
    return [FoundAttestation.from_bytes(json.dumps(sig.content).encode(),
                                        f"the audit branch's record of {wheel.name} ({sig.file})")
            for sig in (record.test_results if tests else record.signatures)]

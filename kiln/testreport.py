"""The signed test result: a second in-toto statement over the same wheel digest.

The provenance says how a wheel was built; this says what its tests found, so that
``kiln verify --require-tests`` can refuse a wheel nobody has seen pass its tests. It is
an in-toto v1 Statement whose predicate follows in-toto's test-result predicate
(https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md: a
``result`` of PASSED or FAILED, the ``configuration`` it ran with) and adds what kiln
knows: the commands, the counts, the interpreter, the platform and whether it ran under
emulation. It is signed like the provenance: ``W.tests.dsse.json`` with a key,
``W.tests.sigstore.json`` keyless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiln.provenance import STATEMENT_TYPE
from kiln.record import BuildRecord, TestCountsRef, TestRef

TEST_RESULT_TYPE = "https://kiln.dev/test-result/v1"
TESTS_DSSE_SUFFIX = ".tests.dsse.json"
TESTS_SIGSTORE_SUFFIX = ".tests.sigstore.json"
TESTS_SUFFIXES = (TESTS_DSSE_SUFFIX, TESTS_SIGSTORE_SUFFIX)


def tests_dsse_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + TESTS_DSSE_SUFFIX)


def tests_bundle_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + TESTS_SIGSTORE_SUFFIX)


def test_statement(record: BuildRecord, wheel: str | None = None) -> dict[str, Any] | None:
    """The test-result statement for ``wheel`` (default: the record's first output), or None
    when the tests did not run (there is nothing to attest)."""
    test = record.test
    if not test.ran:
        return None
    output = next((o for o in record.outputs if wheel is None or o.filename == wheel), None)
    if output is None:
        return None
    predicate: dict[str, Any] = {
        "result": "PASSED" if test.passed else "FAILED",
        "configuration": [
            {"name": "interpreter", "annotations": {"implementation": "CPython",
                                                    "version": record.python.version,
                                                    "tag": record.python.tag}},
            {"name": "platform", "annotations": {"target": record.target,
                                                 "emulated": test.emulated,
                                                 "host": record.host}},
        ],
        "commands": list(test.commands),
        # what the tests ran with: [test] requires as locked and installed by their hashes
        "requirements": [{"name": r.name, "version": r.version, "sha256": r.hashes}
                         for r in test.requirements],
        "counts": test.counts.model_dump(mode="json") if test.counts else None,
        "seconds": test.seconds,
        "buildId": record.build_id,
        "recipe": {"name": record.recipe.name, "version": record.recipe.version,
                   "sha256": record.recipe.sha256},
        "finishedOn": record.finished.isoformat().replace("+00:00", "Z"),
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": output.filename, "digest": {"sha256": output.sha256}}],
        "predicateType": TEST_RESULT_TYPE,
        "predicate": predicate,
    }


def describe(statement: dict[str, Any]) -> str:
    """What a test-result statement says, as tables say it (``passed (412)``)."""
    predicate = statement.get("predicate") or {}
    emulated = any(c.get("name") == "platform" and (c.get("annotations") or {}).get("emulated")
                   for c in predicate.get("configuration") or [] if isinstance(c, dict))
    try:
        counts = TestCountsRef.model_validate(predicate.get("counts"))
    except ValidationError:
        counts = None  # commands without a runner kiln counts (an import check)
    said = TestRef(ran=True, passed=predicate.get("result") == "PASSED", counts=counts,
                   emulated=emulated).summary()
    if counts is None and said.startswith("passed"):
        said = said.replace("passed", "passed (commands only, no tests counted)", 1)
    return said

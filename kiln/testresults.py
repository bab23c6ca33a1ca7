"""What a test command found: how many tests ran, passed, failed and were skipped.

A recipe's test commands are plain argv. When one runs pytest, kiln adds ``--junitxml`` and
reads the counts and the first failing test from the report; when one runs unittest, it
reads them from unittest's own summary (``Ran 12 tests``, ``FAILED (failures=1)``) and its
``FAIL:``/``ERROR:`` headers. Any other command (``python -c 'import x'``) passes or fails
without counts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # the report is written by the pytest kiln runs
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_PYTHON = re.compile(r"(?:.*/)?python(?:3(?:\.\d+)?)?\Z")
_RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
_UNITTEST_END = re.compile(r"^(OK|FAILED)(?: \((.*)\))?\s*$", re.MULTILINE)
_UNITTEST_FAIL = re.compile(r"^(?:FAIL|ERROR): (\S+) \(([^)]*)\)", re.MULTILINE)
# pytest's last line: "=== 3 failed, 409 passed, 2 skipped, 1 error in 1.20s ===", or with
# -q "3 failed, 409 passed in 1.20s"; subtests ("5 subtests passed") are not tests.
_PYTEST_END = re.compile(r"^[= ]*((?:\d+ \w+|no tests ran)[^\n]*?) in [\d.]+s\b[^\n]*$",
                         re.MULTILINE)
_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)\b")
_PYTEST_FIRST = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class TestCounts:
    collected: int
    passed: int
    failed: int  # failures and errors
    skipped: int
    first_failure: str = ""  # "tests/test_x.py::TestY::test_z", or unittest's "test_z (m.C)"
    skip_reasons: tuple[str, ...] = ()  # why tests were skipped (pytest), the first few

    def __add__(self, other: TestCounts) -> TestCounts:
        return TestCounts(self.collected + other.collected, self.passed + other.passed,
                          self.failed + other.failed, self.skipped + other.skipped,
                          self.first_failure or other.first_failure,
                          _first(self.skip_reasons + other.skip_reasons))


@dataclass(frozen=True)
class Instrumented:
    argv: tuple[str, ...]
    runner: str  # "pytest", "unittest", or "" (counts unknown)
    report: Path | None  # pytest's JUnit XML, at this path outside the sandbox


def runner_of(argv: Sequence[str]) -> str:
    """Which test runner ``argv`` starts: pytest, unittest, or neither ("")."""
    if not argv:
        return ""
    first = Path(argv[0]).name
    if first in ("pytest", "py.test"):
        return "pytest"
    if _PYTHON.match(argv[0]) and len(argv) >= 3 and argv[1] == "-m":
        if argv[2] in ("pytest", "py.test"):
            return "pytest"
        if argv[2] == "unittest":
            return "unittest"
    return ""


def instrument(argv: Sequence[str], report: Path, report_inside: str) -> Instrumented:
    """``argv``, with pytest asked for a JUnit report at ``report_inside`` (the path the
    command sees; ``report`` is where kiln reads it)."""
    runner = runner_of(argv)
    if runner != "pytest":
        return Instrumented(tuple(argv), runner, None)
    return Instrumented((*argv, f"--junitxml={report_inside}", "-o", "junit_family=xunit2"),
                        runner, report)


def read_counts(run: Instrumented, output: str) -> TestCounts | None:
    """The counts of one finished command, or None when they cannot be known."""
    if run.runner == "pytest":
        # pytest's own summary has the numbers (its JUnit report counts each subtest as a
        # test); the report adds why tests were skipped, and a failure the summary missed.
        said = _pytest_summary(output)
        report = (_junit_counts(run.report) if run.report is not None and run.report.is_file()
                  else None)
        if said is None or report is None:
            return said or report
        return TestCounts(said.collected, said.passed, said.failed, said.skipped,
                          said.first_failure or report.first_failure, report.skip_reasons)
    if run.runner == "unittest":
        return _unittest_counts(output)
    return None


def total(counts: Sequence[TestCounts | None]) -> TestCounts | None:
    """The counts of several commands together (None when none of them could count)."""
    known = [c for c in counts if c is not None]
    if not known:
        return None
    out = known[0]
    for more in known[1:]:
        out = out + more
    return out


def _junit_counts(path: Path) -> TestCounts | None:
    try:
        # ElementTree resolves no external entities, and expat >= 2.4 bounds expansion.
        root = ET.parse(path).getroot()  # noqa: S314
    except (ET.ParseError, OSError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        return None
    collected = failed = skipped = 0
    for suite in suites:
        collected += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    first = ""
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            first = _pytest_id(case.get("classname", ""), case.get("name", ""))
            break
    if not first and failed:
        # A collection error has no test case: pytest names the module in an <error>.
        error = next(root.iter("error"), None)
        if error is not None:
            first = (error.get("message") or "").strip()
    reasons = [(skip.get("message") or "").strip() for skip in root.iter("skipped")]
    return TestCounts(collected, max(collected - failed - skipped, 0), failed, skipped, first,
                      _first(tuple(r for r in reasons if r)))


def _first(reasons: tuple[str, ...], limit: int = 5) -> tuple[str, ...]:
    """The first few distinct skip reasons (a platform's suite may skip hundreds alike)."""
    return tuple(dict.fromkeys(reasons))[:limit]


def _pytest_id(classname: str, name: str) -> str:
    """``tests.test_x.TestY`` + ``test_z`` → ``tests/test_x.py::TestY::test_z`` (best effort:
    a dotted classname does not say where the module ends)."""
    parts = classname.split(".") if classname else []
    module = [p for p in parts if not p[:1].isupper()]
    classes = parts[len(module):]
    path = "/".join(module) + ".py" if module else ""
    return "::".join([x for x in (path, *classes, name) if x])


def _pytest_summary(output: str) -> TestCounts | None:
    ends = [e for e in _PYTEST_END.findall(output)
            if e.startswith("no tests ran") or _PYTEST_COUNT.search(e)]
    if not ends:
        return None
    found = {word: int(number) for number, word in _PYTEST_COUNT.findall(ends[-1])}
    passed = found.get("passed", 0) + found.get("xfailed", 0) + found.get("xpassed", 0)
    failed = found.get("failed", 0) + found.get("error", 0) + found.get("errors", 0)
    skipped = found.get("skipped", 0)
    first = _PYTEST_FIRST.search(output)
    return TestCounts(passed + failed + skipped, passed, failed, skipped,
                      first.group(1) if first else "")


def _unittest_counts(output: str) -> TestCounts | None:
    ran = _RAN.findall(output)
    ends = _UNITTEST_END.findall(output)
    if not ran or not ends:
        return None
    collected = int(ran[-1])
    details = dict(re.findall(r"(\w+)=(\d+)", ends[-1][1] or ""))
    failed = int(details.get("failures", 0)) + int(details.get("errors", 0))
    failed += int(details.get("unexpected successes", 0))
    skipped = int(details.get("skipped", 0))
    first = _UNITTEST_FAIL.search(output)
    return TestCounts(collected, max(collected - failed - skipped, 0), failed, skipped,
                      f"{first.group(1)} ({first.group(2)})" if first else "")

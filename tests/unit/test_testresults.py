"""Reading what a test runner found from what it printed and the report it wrote."""

from __future__ import annotations

from pathlib import Path

from kiln.testresults import Instrumented, instrument, read_counts, runner_of

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
 errors="0" failures="1" skipped="1" tests="8">
<testcase classname="tests.test_a" name="test_ok"/>
<testcase classname="tests.test_a.TestB" name="test_bad"><failure message="boom"/></testcase>
<testcase classname="tests.test_a" name="test_later"><skipped message="needs a GPU"/></testcase>
</testsuite></testsuites>"""


def _pytest(tmp_path: Path, junit: str | None = None) -> Instrumented:
    report = tmp_path / "junit.xml"
    if junit is not None:
        report.write_text(junit)
    return Instrumented(("python", "-m", "pytest"), "pytest", report)


def test_runners_are_recognised_and_pytest_asked_for_a_report(tmp_path):
    assert runner_of(["python", "-m", "pytest", "tests"]) == "pytest"
    assert runner_of(["/venv/bin/python3.11", "-m", "unittest"]) == "unittest"
    assert runner_of(["pytest"]) == "pytest"
    assert runner_of(["python", "-c", "import x"]) == ""
    run = instrument(["pytest", "tests"], tmp_path / "r.xml", "/tmp/r.xml")
    assert run.argv[:2] == ("pytest", "tests") and "--junitxml=/tmp/r.xml" in run.argv


def test_pytests_summary_has_the_numbers_and_the_report_the_reasons(tmp_path):
    # pytest 9 writes each subtest as a test case: its summary line is what counts.
    output = ("FAILED tests/test_a.py::TestB::test_bad - assert 1 == 2\n"
              "==== 1 failed, 5 passed, 1 skipped, 5 subtests passed in 0.31s ====\n")
    counts = read_counts(_pytest(tmp_path, JUNIT), output)
    assert counts is not None
    assert (counts.collected, counts.passed, counts.failed, counts.skipped) == (7, 5, 1, 1)
    assert counts.first_failure == "tests/test_a.py::TestB::test_bad"
    assert counts.skip_reasons == ("needs a GPU",)


def test_quiet_pytest_and_collection_errors(tmp_path):
    quiet = read_counts(_pytest(tmp_path), "....\n412 passed, 2 xfailed in 3.02s\n")
    assert quiet is not None and (quiet.collected, quiet.passed) == (414, 414)
    broken = read_counts(_pytest(tmp_path), (
        "ERROR tests/test_mmh3.py - ModuleNotFoundError: No module named 'helper'\n"
        "!!!! Interrupted: 1 error during collection !!!!\n"
        "=============== 1 error in 0.12s ===============\n"))
    assert broken is not None and (broken.failed, broken.passed) == (1, 0)
    assert broken.first_failure == "tests/test_mmh3.py"
    none = read_counts(_pytest(tmp_path), "=== no tests ran in 0.01s ===\n")
    assert none is not None and none.collected == 0


def test_the_report_alone_when_pytest_printed_no_summary(tmp_path):
    counts = read_counts(_pytest(tmp_path, JUNIT), "")
    assert counts is not None and (counts.collected, counts.failed) == (8, 1)
    assert counts.first_failure == "tests/test_a.py::TestB::test_bad"


def test_unittest_summary():
    run = Instrumented(("python", "-m", "unittest"), "unittest", None)
    output = ("FAIL: test_add (tests.test_x.Speedups.test_add)\n----\n"
              "Ran 12 tests in 0.004s\n\nFAILED (failures=1, errors=1, skipped=2)\n")
    counts = read_counts(run, output)
    assert counts is not None
    assert (counts.collected, counts.passed, counts.failed, counts.skipped) == (12, 8, 2, 2)
    assert counts.first_failure == "test_add (tests.test_x.Speedups.test_add)"
    assert read_counts(run, "Ran 3 tests in 0.1s\n\nOK\n").passed == 3  # type: ignore[union-attr]

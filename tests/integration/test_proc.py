"""The subprocess helper: timeouts hold for silent programs; cancelled scopes stop theirs."""

from __future__ import annotations

import threading
import time

import pytest

from kiln import proc
from kiln.errors import BuildError


def test_timeout_holds_for_a_program_that_prints_nothing(tmp_path):
    started = time.monotonic()
    with pytest.raises(BuildError) as info:
        proc.run(["sh", "-c", "sleep 30"], what="sleeping", error=BuildError, timeout=1,
                 log=tmp_path / "log")
    assert "timed out after 1 s" in info.value.message
    assert time.monotonic() - started < 10


def test_cancelling_a_scope_stops_its_program_and_its_children(tmp_path):
    scope = proc.CancelScope()
    marker = tmp_path / "child-survived"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            proc.run(["sh", "-c", f"(sleep 3; touch {marker}) & sleep 30"], what="waiting",
                     error=BuildError)
        except BuildError as exc:
            errors.append(exc)

    thread = threading.Thread(target=proc.run_in_scope, args=(scope, work))
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    scope.cancel("the build beside it failed")
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 10
    assert errors and "stopped: the build beside it failed" in errors[0].message
    time.sleep(3.5)
    assert not marker.exists(), "the whole process group must go"
    with pytest.raises(BuildError, match="not started"):
        proc.run_in_scope(scope, lambda: proc.run(["true"], what="after", error=BuildError))


def test_the_failure_names_the_last_line_that_says_something(tmp_path):
    # setuptools-rust prints its cargo output after a heading, and often that output is empty
    script = ("import sys; print('error: linker cc not found'); "
              "print('-- Output captured from stdout:'); print(); print('-' * 20); sys.exit(1)")
    with pytest.raises(BuildError) as info:
        proc.run(["python3", "-c", script], what="building", error=BuildError,
                 log=tmp_path / "log")
    assert info.value.message == "building failed (exit 1): error: linker cc not found"


def test_cargo_messages_are_scaffolding_too(tmp_path):
    # an older setuptools-rust shows cargo's captured stdout: its JSON messages, not a reason
    script = ("import sys; print('error: `cargo rustc --lib` failed with code 101'); "
              "print('-- Output captured from stdout:'); "
              "print('{\"reason\":\"build-finished\",\"success\":false}'); sys.exit(1)")
    with pytest.raises(BuildError) as info:
        proc.run(["python3", "-c", script], what="building", error=BuildError,
                 log=tmp_path / "log")
    assert info.value.message.endswith(": error: `cargo rustc --lib` failed with code 101")


def test_a_short_command_is_named_by_its_last_line_that_says_something():
    script = ("import sys; print('fatal: not a git repository', file=sys.stderr); "
              "print('-- Output captured from stderr:', file=sys.stderr); sys.exit(128)")
    with pytest.raises(BuildError) as info:
        proc.capture(["python3", "-c", script], what="asking git", error=BuildError)
    assert info.value.message == "asking git failed (exit 128): fatal: not a git repository"

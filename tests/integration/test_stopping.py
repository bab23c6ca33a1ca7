"""Stopping kiln stops everything it started: SIGTERM during a --check-repro build leaves
no backend, compiler or stray child of either build running, and kiln exits 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kiln.toolchain.sandbox import pid_namespace_works
from tests.conftest import make_sdist, recipe_text

SETUP_PY = """
import subprocess, sys, time
from setuptools import setup
if "bdist_wheel" in sys.argv:  # the build itself, not the hook kiln asks requirements of
    # A child that leaves its session, as a build tool's daemon would (a compiler
    # server, sccache): killing the build's process group does not reach it.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", "{marker}"],
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(900)
setup()
"""


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            found.append(int(entry.name))
    return found


def _wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


@pytest.mark.skipif(not pid_namespace_works(), reason="bubblewrap cannot make a PID namespace")
def test_sigterm_stops_both_builds_and_what_they_left_running(tmp_path, kiln_env, test_wheels):
    marker = f"kiln-stop-test-{uuid.uuid4().hex}"
    sdist = make_sdist(tmp_path / "sdists", "stopdemo", "1.0", {
        "pyproject.toml": """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
        """,
        "setup.py": SETUP_PY.format(marker=marker),
    })
    recipe = tmp_path / "stopdemo.toml"
    recipe.write_text(recipe_text(sdist))
    kiln = subprocess.Popen(
        [sys.executable, "-m", "kiln", "build", str(recipe), "--check-repro", "-j", "2",
         "-o", str(tmp_path / "dist")],
        cwd=tmp_path, env=kiln_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        # Both the build and its twin reach setup.py, each leaving a detached child.
        started = _wait_for(lambda: len(_running(marker)) >= 2 or kiln.poll() is not None, 300)
        assert started and kiln.poll() is None, kiln.communicate()[0][-3000:]
        kiln.send_signal(signal.SIGTERM)
        output, _ = kiln.communicate(timeout=60)
        assert kiln.returncode == 143, output[-3000:]
        assert _wait_for(lambda: not _running(marker), 10), \
            f"still running after kiln stopped: {_running(marker)}"
    finally:
        if kiln.poll() is None:
            kiln.kill()
            kiln.wait()
        for pid in _running(marker):
            os.kill(pid, signal.SIGKILL)

"""Unit tests never start programs: any subprocess here is a bug in the test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class _NoSubprocess(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: object, *a: object, **k: object) -> None:
        raise AssertionError(f"unit tests must not run programs, but tried: {args!r}")


@pytest.fixture(autouse=True)
def _forbid_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "Popen", _NoSubprocess)


@pytest.fixture
def with_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend bubblewrap, faketime and taskset are installed."""
    import kiln.buildenv
    import kiln.toolchain.sandbox

    monkeypatch.setattr(kiln.toolchain.sandbox, "bwrap_path", lambda: Path("/usr/bin/bwrap"))
    monkeypatch.setattr(kiln.toolchain.sandbox, "pid_namespace_works", lambda: True)
    monkeypatch.setattr(kiln.buildenv, "bwrap_path", lambda: Path("/usr/bin/bwrap"))
    monkeypatch.setattr(kiln.buildenv.shutil, "which", lambda name: f"/usr/bin/{name}")

"""The backend's warnings go to the log of the build that caused them, in any thread."""

from __future__ import annotations

import threading
import warnings

import pyproject_hooks

from kiln.pep517 import _warnings_to_log


def _warn(text: str) -> None:
    # what pyproject-hooks does with each warning the backend printed
    warnings.warn_explicit(text, category=pyproject_hooks.BuildBackendWarning,
                           filename="setuptools/dist.py", lineno=765)


def test_two_builds_in_two_threads_keep_their_warnings_apart(tmp_path, capsys):
    barrier = threading.Barrier(2)

    def build(name: str) -> None:
        with _warnings_to_log(tmp_path / f"{name}.log"):
            barrier.wait()
            for n in range(20):
                _warn(f"{name} warning {n}")
                if n == 10:
                    barrier.wait()

    threads = [threading.Thread(target=build, args=(n,)) for n in ("build", "rebuild")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("build", "rebuild"):
        lines = (tmp_path / f"{name}.log").read_text().splitlines()
        assert lines == [f"warning from the build backend: {name} warning {n}"
                         for n in range(20)]
    assert "warning" not in capsys.readouterr().err


def test_other_warnings_are_left_alone(tmp_path):
    with _warnings_to_log(tmp_path / "build.log"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("not the backend's", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["not the backend's"]
    assert not (tmp_path / "build.log").exists()

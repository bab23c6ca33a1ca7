"""How the library tells whoever is watching what it is doing, without printing.

The library calls ``reporter()``; the CLI installs one that draws on the terminal.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, detail: str = "") -> None:
        """A pipeline stage starts (``fetch``, ``build``, ``repair`` …)."""

    def command(self, argv: Sequence[str]) -> None:
        """A subprocess is about to run."""

    def output(self, line: str) -> None:
        """One line a running tool printed (already written to the log)."""

    def finished(self, argv: Sequence[str], returncode: int, seconds: float) -> None:
        """A subprocess that ``command`` announced has ended."""

    def note(self, message: str) -> None:
        """Something worth telling that is not an error (cache hit, fallback)."""


class SilentReporter:
    def stage(self, name: str, detail: str = "") -> None:
        pass

    def command(self, argv: Sequence[str]) -> None:
        pass

    def output(self, line: str) -> None:
        pass

    def finished(self, argv: Sequence[str], returncode: int, seconds: float) -> None:
        pass

    def note(self, message: str) -> None:
        pass


_SILENT = SilentReporter()  # stateless, so one shared default is safe
_current: contextvars.ContextVar[Reporter] = contextvars.ContextVar(
    "kiln_reporter", default=_SILENT
)


def reporter() -> Reporter:
    return _current.get()


@contextmanager
def reporting(new: Reporter) -> Iterator[Reporter]:
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


class PrefixedReporter:
    """Tags everything with a label, so two builds running at once stay readable."""

    def __init__(self, inner: Reporter, label: str) -> None:
        self._inner = inner
        self._label = label

    def stage(self, name: str, detail: str = "") -> None:
        self._inner.stage(name, f"[{self._label}] {detail}".rstrip())

    def command(self, argv: Sequence[str]) -> None:
        self._inner.command(argv)

    def output(self, line: str) -> None:
        self._inner.output(f"[{self._label}] {line}")

    def finished(self, argv: Sequence[str], returncode: int, seconds: float) -> None:
        self._inner.finished(argv, returncode, seconds)

    def note(self, message: str) -> None:
        self._inner.note(f"[{self._label}] {message}")

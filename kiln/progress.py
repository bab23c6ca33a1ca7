"""How the library tells whoever is watching what it is doing, without printing.

The library calls ``reporter()``; the CLI installs one that draws on the terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Compiler and linker command lines are long and alike; their file is what tells progress.
_SOURCE = re.compile(r"\.(c|cc|cpp|cxx|c\+\+|m|mm|f|f90|s|S|pyx)\Z")
_LABEL = re.compile(r"\[[A-Za-z][^\]]*\] ")  # PrefixedReporter's "[rebuild] ", not ninja's "[2/9] "
_NINJA = re.compile(r"\[(\d+/\d+)\]\s+(.*)\Z")


def summarise(line: str) -> tuple[str, str]:
    """What a build-log line is doing, in a few words: ("compile", file), ("link", file) or
    ("", the line)."""
    text = _LABEL.sub("", line.strip(), count=1) if line.startswith("[") else line.strip()
    words = text.split()
    if "-c" in words:
        sources = [w.strip("'\"") for w in words if not w.startswith("-")
                   and _SOURCE.search(w.strip("'\""))]
        if sources:
            return "compile", sources[-1]
    ninja = _NINJA.match(text)  # ninja (meson, CMake): "[181/476] Compiling C object x.c.o"
    if ninja:
        done, rest = ninja.group(1), ninja.group(2).split()
        if rest and rest[0] in ("Compiling", "Building"):
            return "compile", f"{rest[-1]} [{done}]"
        return "", text
    if len(words) >= 4 and words[0] == "Compiling" and words[2] == "object":  # meson
        return "compile", words[3]
    if words and words[0] == "Compiling" and len(words) >= 2:  # cargo
        return "compile", " ".join(words[1:3])
    if "-shared" in words and "-o" in words:
        at = words.index("-o")
        if at + 1 < len(words):
            return "link", words[at + 1].rsplit("/", 1)[-1]
    return "", text



def ninja_step(line: str) -> tuple[int, int] | None:
    """ninja's ``[done/total]`` at the start of a line (meson, CMake), if it has one."""
    text = _LABEL.sub("", line.strip(), count=1) if line.startswith("[") else line.strip()
    match = _NINJA.match(text)
    if not match:
        return None
    done, total = match.group(1).split("/")
    return int(done), int(total)


@dataclass(frozen=True)
class Expectation:
    """What the last build of the same recipe (any version), Python and target took: what
    a running build's progress is measured against."""

    version: str
    seconds: float  # the build stage (the backend), not repair and tests
    compiles: int  # the compile commands its log shows


def _expectation_file(cache: Path, project: str, python: str, target: str) -> Path:
    return cache / "progress" / f"{project}-{python}-{target}.json"


def last_build(cache: Path, project: str, python: str, target: str) -> Expectation | None:
    try:
        data = json.loads(_expectation_file(cache, project, python, target).read_text())
        return Expectation(str(data["version"]), float(data["seconds"]), int(data["compiles"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compiles_in(log: Path) -> int:
    """How many compile commands a build log shows."""
    count = 0
    with contextlib.suppress(OSError), log.open(encoding="utf-8", errors="replace") as fh:
        count = sum(1 for line in fh if summarise(line)[0] == "compile")
    return count


def remember_build(cache: Path, project: str, python: str, target: str,
                   expectation: Expectation) -> None:
    """Keep what this build took, for the next one's progress (best effort)."""
    from kiln.files import write_atomic

    with contextlib.suppress(OSError):
        write_atomic(_expectation_file(cache, project, python, target), json.dumps({
            "version": expectation.version, "seconds": expectation.seconds,
            "compiles": expectation.compiles}))



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

    def expect(self, last: Expectation | None, compiled: Callable[[], int] | None) -> None:
        """The current stage builds: ``last`` is what the last build of the same recipe
        took, ``compiled()`` how many objects this one has compiled so far (the rest of
        its compiles were found in the compiler cache)."""


class SilentReporter:
    def stage(self, name: str, detail: str = "") -> None:
        pass

    def expect(self, last: Expectation | None, compiled: Callable[[], int] | None) -> None:
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

    def expect(self, last: Expectation | None, compiled: Callable[[], int] | None) -> None:
        self._inner.expect(last, compiled)

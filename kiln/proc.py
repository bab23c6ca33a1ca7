"""The one way kiln runs another program: no shell, echoed, logged, failures carry the output."""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kiln.errors import KilnError
from kiln.progress import reporter

T = TypeVar("T")

_TAIL_LINES = 30


# Lines a tool prints around its output rather than about the failure: setuptools-rust's
# "-- Output captured from stdout:" (its cargo output follows, often empty) and, in older
# versions, that output: cargo's JSON messages ({"reason":"build-finished",…}); rules of dashes.
SCAFFOLDING = re.compile(r"\s*(?:-- Output captured from std(?:out|err):?|[-=*_~]{3,}"
                         r'|\{"reason":\s*"[\w-]+".*\})\s*\Z')
_QUOTED_WIDTH = 200


def last_said(lines: Iterable[str], count: int = 1) -> list[str]:
    """The last ``count`` lines of a program's output that say something (not blank, not
    scaffolding)."""
    said = [line.rstrip() for line in lines if line.strip() and not SCAFFOLDING.match(line)]
    return said[-count:]


def quote(lines: Iterable[str], count: int = 5) -> str:
    """The last lines a program printed, indented under a heading, for a hint."""
    said = last_said(lines, count)
    if not said:
        return "it printed nothing"
    shown = [line if len(line) <= _QUOTED_WIDTH else line[:_QUOTED_WIDTH] + "…"
             for line in said]
    return "its last lines:\n" + "\n".join(f"  {line}" for line in shown)


class CancelScope:
    """The programs one piece of work started, so all of them can be stopped at once.

    The two builds of a reproducibility check each run in a scope: when one fails, the
    other is stopped instead of being waited for (a grpcio build takes an hour).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._inner: list[CancelScope] = []  # scopes opened inside this one's work
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return bool(self.reason)

    def cancel(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            running = list(self._running)
            inner = list(self._inner)
        for proc in running:
            _kill_group(proc)
        for scope in inner:  # a build's own build-and-twin pair goes with it
            scope.cancel(reason)

    def _adopt(self, scope: CancelScope) -> None:
        with self._lock:
            self._inner.append(scope)
            reason = self.reason
        if reason:
            scope.cancel(reason)

    def _add(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.add(proc)
            cancelled = self.cancelled
        if cancelled:
            _kill_group(proc)

    def _discard(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.discard(proc)


_scope: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar(
    "kiln_cancel_scope", default=None)


def run_in_scope(scope: CancelScope, fn: Callable[[], T]) -> T:
    """Call ``fn`` with every program it runs belonging to ``scope`` (which is cancelled
    with the scope this runs in, if any)."""
    outer = _scope.get()
    if outer is not None:
        outer._adopt(scope)
    token = _scope.set(scope)
    try:
        return fn()
    finally:
        _scope.reset(token)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    # Each program runs in its own session: its whole group (compilers, make …) goes.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Finished:
    argv: tuple[str, ...]
    returncode: int
    tail: str


def render(argv: Sequence[str]) -> str:
    return shlex.join(str(a) for a in argv)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    error: type[KilnError] = KilnError,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
    hint: str | None = None,
    umask: int = -1,
) -> Finished:
    """Run ``argv``; stream its output to ``log`` and the reporter; raise ``error`` if it fails.

    ``what`` names the step for the error message ("building markupsafe 2.1.5 for cp311").
    """
    args = tuple(str(a) for a in argv)
    scope = _scope.get()
    if scope is not None and scope.cancelled:
        raise error(f"{what}: not started: {scope.reason}", hint=hint, log=log)
    reporter().command(args)
    started = time.monotonic()
    returncode = -1
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    log_file = log.open("a", encoding="utf-8", errors="replace") if log else None
    try:
        if log_file:
            log_file.write(f"+ {render(args)}\n")
            log_file.flush()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                text=True,
                errors="replace",
                umask=umask,
                start_new_session=True,
            )
        except OSError as exc:
            msg = f"{what}: cannot run {args[0]}: {exc.strerror or exc}"
            raise error(msg, hint=hint) from exc
        assert proc.stdout is not None
        if scope is not None:
            scope._add(proc)
        # The timeout holds even for a program that hangs without a word of output.
        timed_out = threading.Event()
        watchdog = None
        if timeout is not None:
            def expire() -> None:
                timed_out.set()
                _kill_group(proc)

            watchdog = threading.Timer(timeout, expire)
            watchdog.daemon = True
            watchdog.start()
        try:
            for line in proc.stdout:
                if log_file:
                    log_file.write(line)
                stripped = line.rstrip("\n")
                tail.append(stripped)
                reporter().output(stripped)
            returncode = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if scope is not None:
                scope._discard(proc)
        if timed_out.is_set():
            raise error(f"{what}: timed out after {timeout:.0f} s", hint=hint, log=log)
        if scope is not None and scope.cancelled:
            raise error(f"{what}: stopped: {scope.reason}", hint=hint, log=log)
    finally:
        if log_file:
            log_file.close()
        reporter().finished(args, returncode, time.monotonic() - started)
    finished = Finished(args, returncode, "\n".join(tail))
    if check and returncode != 0:
        last = (last_said(tail) or ["no output"])[-1]
        msg = f"{what} failed (exit {returncode}): {last.strip()}"
        raise error(msg, hint=hint, log=log)
    return finished


def capture(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    error: type[KilnError] = KilnError,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    check: bool = True,
    quiet: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command and return its output (bytes); stderr rides along in the error."""
    args = tuple(str(a) for a in argv)
    if not quiet:
        reporter().command(args)
    started = time.monotonic()
    code = -1
    try:
        result = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
        code = result.returncode
    except OSError as exc:
        msg = f"{what}: cannot run {args[0]}: {exc.strerror or exc}"
        raise error(msg) from exc
    finally:
        if not quiet:
            reporter().finished(args, code, time.monotonic() - started)
    if check and result.returncode != 0:
        why = last_said(result.stderr.decode(errors="replace").splitlines())
        msg = f"{what} failed (exit {result.returncode}): {why[-1].strip() if why else 'no output'}"
        raise error(msg)
    return result

"""The one way kiln runs another program: no shell, echoed, logged, failures carry the output."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError
from kiln.progress import reporter

_TAIL_LINES = 30


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
            )
        except OSError as exc:
            msg = f"{what}: cannot run {args[0]}: {exc.strerror or exc}"
            raise error(msg, hint=hint) from exc
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if log_file:
                    log_file.write(line)
                stripped = line.rstrip("\n")
                tail.append(stripped)
                reporter().output(stripped)
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            msg = f"{what}: timed out after {timeout:.0f} s"
            raise error(msg, hint=hint, log=log) from exc
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    finally:
        if log_file:
            log_file.close()
        reporter().finished(args, returncode, time.monotonic() - started)
    finished = Finished(args, returncode, "\n".join(tail))
    if check and returncode != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
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
        why = result.stderr.decode(errors="replace").strip().splitlines()
        msg = f"{what} failed (exit {result.returncode}): {why[-1] if why else 'no output'}"
        raise error(msg)
    return result

"""The terminal: progress on stderr, results on stdout, errors as ``error:`` and ``hint:``."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kiln import proc
from kiln.cli.plain import print_json as print_json
from kiln.cli.plain import table as table
from kiln.progress import Expectation, ninja_step, summarise

# Logs and pipes get wide lines rather than wheel names folded over five rows.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, highlight=False,
              width=None if sys.stderr.isatty() else 200)


def _short(counted: str, left: str) -> str:
    """The status line's part of the progress: "412/1021, ~12m left · "."""
    words = counted.split()
    head = "/".join(words[0:3:2]) if len(words) >= 3 and words[1] == "of" else ""
    tail = left.split(" (")[0].replace("about ", "~")
    text = ", ".join(x for x in (head, tail) if x)
    return f"{text} · " if text else ""


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class _Track:
    """One thread's current stage: a build and its rebuild run side by side, each its own."""

    stage: str
    started: float
    lines: int = 0
    compiles: int = 0
    last: str = ""
    last_output: float = 0.0
    last_beat: float = 0.0
    running: int = 0  # subprocesses announced and not yet finished
    expected: Expectation | None = None  # the last build of the same recipe
    compiled: Callable[[], int] | None = None  # objects this stage compiled (not reused)
    step: tuple[int, int] | None = None  # ninja's [done/total]
    counted_at: float = -1.0
    new_objects: int = 0

    def _new(self, now: float) -> int:
        """compiled(), asked at most once a second (it lists a folder)."""
        if self.compiled is not None and now - self.counted_at >= 1.0:
            self.counted_at, self.new_objects = now, self.compiled()
        return self.new_objects

    def progress(self, now: float) -> tuple[str, str]:
        """("412 of ~1021 files compiled (375 new, 37 from the cache)", "about 12m left …");
        ninja counts its own steps ("13 of 48 steps")."""
        if self.step:
            done, whole = self.step
            counted = f"{done} of {whole} steps"
        else:
            done = self.compiles
            whole = self.expected.compiles if self.expected else 0
            counted = (f"{done} of ~{whole} files compiled" if done and whole
                       else f"{done} files compiled" if done else "")
        if self.compiles and self.compiled is not None:
            new = min(max(self._new(now), 0), self.compiles)
            counted += f" ({new} new, {self.compiles - new} from the cache)"
        elapsed = now - self.started
        left = ""
        if done >= 10 and whole > done:
            left = f"about {duration(elapsed * (whole - done) / done)} left"
        elif self.expected is not None:
            remaining = self.expected.seconds - elapsed
            left = (f"about {duration(remaining)} left" if remaining >= 1
                    else "longer than the last build")
        if left and self.expected is not None:
            left += (f" (the last build, {self.expected.version}: "
                     f"{duration(self.expected.seconds)})")
        return counted, left

    def summary(self, now: float) -> str:
        parts = [duration(now - self.started)]
        counted, left = self.progress(now)
        parts += [x for x in (counted, left) if x]
        parts.append(f"{self.lines} log lines")
        quiet = now - (self.last_output or self.started)
        if quiet >= TerminalReporter.HEARTBEAT:
            parts.append(f"no output for {duration(quiet)}")
        text = ", ".join(parts)
        return f"{text}, last: {self.last[:100]}" if self.last else text


class TerminalReporter:
    """Shows stages as they start, and how each running one is getting on.

    On a TTY, a live status line: each running stage's elapsed time, files compiled and
    last log line. Without a TTY (CI logs) a heartbeat line per running stage every
    30 seconds instead of the tool's every line, also while the tool is silent (a long
    link). ``-v`` prints every line and every command. The full output is in the log.
    """

    HEARTBEAT = 30.0
    TICK = 1.0

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.tty = err.is_terminal
        self._lock = threading.Lock()
        self._tracks: dict[int, _Track] = {}
        self._status: Any = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def _print(self, text: Text | str) -> None:
        with self._lock:
            err.print(text)

    def _track(self) -> _Track:
        key = threading.get_ident()
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(stage="", started=time.monotonic())
        return track

    def stage(self, name: str, detail: str = "") -> None:
        self._stop_status()
        now = time.monotonic()
        with self._lock:
            self._tracks[threading.get_ident()] = _Track(stage=f"{name} {detail}".strip(),
                                                         started=now, last_beat=now)
        if not self.quiet:
            self._print(Text.assemble(("→ ", "cyan"), (f"{name:<8}", "bold"), " ", detail))

    def command(self, argv: Sequence[str]) -> None:
        with self._lock:
            self._track().running += 1
        self._start_ticker()
        if self.verbose:
            self._print(Text(f"  + {proc.render(argv)}", style="dim"))

    def finished(self, argv: Sequence[str], returncode: int, seconds: float) -> None:
        with self._lock:
            track = self._track()
            track.running = max(0, track.running - 1)

    def output(self, line: str) -> None:
        now = time.monotonic()
        kind, what = summarise(line)
        with self._lock:
            track = self._track()
            track.lines += 1
            track.last_output = now
            step = ninja_step(line)
            if step is not None:
                track.step = step
            if kind == "compile":
                track.compiles += 1
                track.last = f"compiling {what}"
            elif kind == "link":
                track.last = f"linking {what}"
            elif what:
                track.last = what
        if self.verbose:
            self._print(Text(f"    {line}", style="dim"))
        elif not self.quiet and self.tty:
            self._refresh(now)

    def tick(self, now: float | None = None) -> None:
        """Heartbeats (no TTY) or a refreshed status line (TTY); the ticker calls it."""
        if self.quiet or self.verbose:
            return
        now = time.monotonic() if now is None else now
        if self.tty:
            self._refresh(now)
            return
        beats = []
        with self._lock:
            for track in self._tracks.values():
                if track.running and now - track.last_beat >= self.HEARTBEAT:
                    track.last_beat = now
                    beats.append(f"  … {track.stage}: {track.summary(now)}")
        for beat in beats:
            self._print(Text(beat, style="dim"))

    def _refresh(self, now: float) -> None:
        with self._lock:
            running = [t for t in self._tracks.values() if t.running]
            if not running:
                return
            width = max(20, (err.width - 10) // len(running))
            text = "  |  ".join(
                f"{duration(now - t.started)}  {t.stage.split(' (')[0]}: "
                f"{_short(*t.progress(now))}{t.last}"[:width]
                for t in running)
            if self._status is None:
                self._status = err.status("")
                self._status.start()
            self._status.update(Text(text, style="dim"))

    def _start_ticker(self) -> None:
        if self._ticker is not None or self.quiet or self.verbose:
            return

        def run() -> None:
            while not self._stop.wait(self.TICK):
                self.tick()

        self._ticker = threading.Thread(target=run, name="kiln-heartbeat", daemon=True)
        self._ticker.start()

    def expect(self, last: Expectation | None, compiled: Callable[[], int] | None) -> None:
        with self._lock:
            track = self._track()
            track.expected, track.compiled = last, compiled

    def note(self, message: str) -> None:
        self._stop_status()
        if not self.quiet:
            self._print(Text(f"  {message}", style="yellow"))

    def _stop_status(self) -> None:
        with self._lock:
            if self._status is not None:
                self._status.stop()
                self._status = None

    def close(self) -> None:
        self._stop.set()
        self._stop_status()


def rich_table(title: str | None, columns: Sequence[str],
               rows: Sequence[Sequence[str]]) -> None:
    """The table laid out by rich, which folds what does not fit (``table`` draws the rest
    itself)."""
    t = Table(title=Text(title) if title else None, show_lines=False, header_style="bold",
              title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        # Cells are data (recipe keys like "[build]" included), never rich markup.
        t.add_row(*(Text(cell) for cell in row))
    out.print(t)

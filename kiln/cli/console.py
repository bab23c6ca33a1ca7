"""The terminal: progress on stderr, results on stdout, errors as ``error:`` and ``hint:``."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kiln import proc

# Logs and pipes get wide lines rather than wheel names folded over five rows.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, highlight=False,
              width=None if sys.stderr.isatty() else 200)


class TerminalReporter:
    """Shows stages as they start; a running tool's last line and elapsed time on a TTY.

    Without a TTY (CI logs), it prints a heartbeat line every 30 seconds instead of the
    tool's every line; ``-v`` prints every line and every command.
    """

    HEARTBEAT = 30.0

    def __init__(self, verbose: bool = False, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.tty = err.is_terminal
        self._lock = threading.Lock()
        self._stage = ""
        self._stage_started = time.monotonic()
        self._lines = 0
        self._last_beat = time.monotonic()
        self._status: Any = None

    def _print(self, text: Text | str) -> None:
        with self._lock:
            err.print(text)

    def stage(self, name: str, detail: str = "") -> None:
        self._stop_status()
        self._stage = f"{name} {detail}".strip()
        self._stage_started = time.monotonic()
        self._lines = 0
        if not self.quiet:
            self._print(Text.assemble(("→ ", "cyan"), (f"{name:<8}", "bold"), " ", detail))

    def command(self, argv: Sequence[str]) -> None:
        if self.verbose:
            self._print(Text(f"  + {proc.render(argv)}", style="dim"))

    def output(self, line: str) -> None:
        self._lines += 1
        if self.verbose:
            self._print(Text(f"    {line}", style="dim"))
            return
        if self.quiet:
            return
        elapsed = time.monotonic() - self._stage_started
        if self.tty:
            with self._lock:
                if self._status is None:
                    self._status = err.status("")
                    self._status.start()
                short = line.strip()[: max(20, err.width - 30)]
                self._status.update(Text(f"{elapsed:5.0f} s  {short}", style="dim"))
        elif time.monotonic() - self._last_beat >= self.HEARTBEAT:
            self._last_beat = time.monotonic()
            self._print(Text(f"  … {self._stage}: {elapsed:.0f} s, {self._lines} log lines, "
                             f"last: {line.strip()[:100]}", style="dim"))

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
        self._stop_status()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    t = Table(title=Text(title) if title else None, show_lines=False, header_style="bold",
              title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        # Cells are data (recipe keys like "[build]" included), never rich markup.
        t.add_row(*(Text(cell) for cell in row))
    out.print(t)

"""Tables without rich: the same boxes rich draws, for the commands that must start fast
(``kiln recipe check``, a cached ``kiln build``). A table that does not fit the line, or
holds text whose width is not one column a character, is left to rich, which folds it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

printed_json = False  # whether this command has written its JSON (kiln.cli.main asks)
# Characters kiln's tables use beyond ASCII, each one column wide.
_NARROW = frozenset("—–…×≤≥·→←✓✗")


def _narrow(text: str) -> bool:
    return text.isascii() or all(c.isascii() or c in _NARROW for c in text)


def _styled(stream: TextIO) -> bool:
    """Whether rich would colour ``stream``: a terminal, and colour not turned off."""
    return (stream.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")


def width_of(stream: TextIO) -> int:
    """The line rich would fill: the terminal's width, or 200 for a pipe or a file."""
    if not stream.isatty():
        return 200
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except OSError:
        return 80


def table_text(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]],
               *, width: int, styled: bool = False) -> str | None:
    """The table as rich draws it (heavy head, one space of padding), or None when it
    needs rich: wider than ``width``, a cell over several lines, or wide characters."""
    cells = [list(columns), *(list(row) for row in rows)]
    if any("\n" in cell or not _narrow(cell) for row in cells for cell in row):
        return None
    if title is not None and ("\n" in title or not _narrow(title)):
        return None
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if sum(widths) + 3 * len(widths) + 1 > width:
        return None
    bold, italic, reset = ("\x1b[1m", "\x1b[3m", "\x1b[0m") if styled else ("", "", "")

    def line(left: str, fill: str, joint: str, right: str) -> str:
        return left + joint.join(fill * (w + 2) for w in widths) + right

    def cells_of(row: Sequence[str], bar: str, style: str = "") -> str:
        parts = [f" {style}{cell}{reset if style else ''}{' ' * (w - len(cell))} "
                 for cell, w in zip(row, widths, strict=True)]
        return bar + bar.join(parts) + bar

    out = []
    if title:
        out.append(f"{italic}{title}{reset}" if styled else title)
    out.append(line("┏", "━", "┳", "┓"))
    out.append(cells_of(columns, "┃", bold))
    out.append(line("┡", "━", "╇", "┩"))
    out.extend(cells_of(row, "│") for row in rows)
    out.append(line("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Print the table on stdout without rich; False (nothing printed) when it needs rich."""
    text = table_text(title, columns, rows, width=width_of(sys.stdout),
                      styled=_styled(sys.stdout))
    if text is None:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print the table on stdout: drawn here when it fits, else laid out by rich."""
    if not print_table(title, columns, rows):
        from kiln.cli.console import rich_table

        rich_table(title, columns, rows)


def note(message: str) -> None:
    """A note on stderr, as kiln's progress reporter shows one."""
    text = f"  {message}"
    if _styled(sys.stderr):
        text = f"\x1b[33m{text}\x1b[0m"
    sys.stderr.write(text + "\n")


def print_json(data: Any) -> None:
    global printed_json
    printed_json = True
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()

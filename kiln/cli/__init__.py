"""kiln's command line: the only place that prints, exits or knows about the terminal."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import typer

from kiln.cli import console
from kiln.cli.app import State, app, report_error
from kiln.errors import KilnError

# Each module adds its commands to ``app`` when imported.
COMMAND_MODULES = (
    "kiln.cli.recipe",
    "kiln.cli.build",
    "kiln.cli.sign",
    "kiln.cli.matrix",
    "kiln.cli.audit",
    "kiln.cli.index",
    "kiln.cli.emulation",
    "kiln.cli.status",
    "kiln.cli.toolchain",
    "kiln.cli.challenge",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def _parse_error() -> type[Exception]:
    """What typer raises for a command line it cannot parse (an unknown option, a file
    that is not there): its own click's errors since typer 0.26, click's before."""
    found: type[Exception] | None = getattr(typer, "TyperException", None)
    if found is None:
        import click

        found = click.ClickException
    return found


def main() -> None:
    console.printed_json = False
    try:
        # Not standalone: typer then raises a command line it cannot parse, to be JSON too.
        code = app(standalone_mode=False)
    except _parse_error() as exc:
        sys.exit(_parse_failure(exc))
    except typer.Abort:
        console.err.print("Aborted!")
        sys.exit(1)
    except KilnError as exc:
        if State.verbose or os.environ.get("KILN_VERBOSE"):
            traceback.print_exc()
        report_error(exc)
        _error_json(type(exc).__name__, exc.message, exc.hint, exc.exit_code,
                    str(exc.log) if exc.log else None)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(code) returns its code here


def _parse_failure(exc: Any) -> int:
    """Show a command line typer could not parse as typer does (the usage line, where to
    find help, the error in a panel), and as JSON with --json; its exit code."""
    try:
        from typer.rich_utils import rich_format_error
    except ImportError:  # typer without rich
        exc.show()
    else:
        rich_format_error(exc)
    command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "kiln"
    code: int = exc.exit_code
    _error_json("UsageError", exc.format_message(), f"`{command} -h` shows what it takes", code)
    return code


def _error_json(kind: str, message: str, hint: str | None, exit_code: int,
                log: str | None = None) -> None:
    """--json promises JSON on stdout whatever happens: the error, when nothing else."""
    if "--json" in sys.argv[1:] and not console.printed_json:
        console.print_json({"error": {"kind": kind, "message": message, "hint": hint,
                                      "exit_code": exit_code, "log": log}})

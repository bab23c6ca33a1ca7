"""kiln's command line: the only place that prints, exits or knows about the terminal."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

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


def main() -> None:
    console.printed_json = False
    try:
        app()
    except KilnError as exc:
        if State.verbose or os.environ.get("KILN_VERBOSE"):
            traceback.print_exc()
        report_error(exc)
        if "--json" in sys.argv[1:] and not console.printed_json:
            # --json promises JSON on stdout whatever happens: the error, when nothing else.
            console.print_json({"error": {
                "kind": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                "exit_code": exc.exit_code, "log": str(exc.log) if exc.log else None}})
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)

"""kiln's command line: the only place that prints, exits or knows about the terminal."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

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
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    try:
        app()
    except KilnError as exc:
        if State.verbose or os.environ.get("KILN_VERBOSE"):
            traceback.print_exc()
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)

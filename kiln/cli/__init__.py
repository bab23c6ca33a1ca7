"""kiln's command line: the only place that prints, exits or knows about the terminal.

Starting must not wait on what the command line does not use: ``kiln --version`` never
imports typer, and a command imports only the module that registers it (typer, rich,
and that module's needs), not the other commands' modules and theirs.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

# The module that adds each top-level command to ``app`` when imported. A command missing
# here still works (an unknown word loads them all), it only starts slower.
COMMANDS = {
    "recipe": "kiln.cli.recipe",
    "build": "kiln.cli.build",
    "lock": "kiln.cli.build",
    "repro": "kiln.cli.build",
    "rebuild": "kiln.cli.build",
    "keygen": "kiln.cli.sign",
    "sign": "kiln.cli.sign",
    "verify": "kiln.cli.sign",
    "matrix": "kiln.cli.matrix",
    "audit": "kiln.cli.audit",
    "index": "kiln.cli.index",
    "serve": "kiln.cli.index",
    "publish": "kiln.cli.index",
    "test": "kiln.cli.emulation",
    "sysroot": "kiln.cli.emulation",
    "status": "kiln.cli.status",
    "toolchain": "kiln.cli.toolchain",
    "challenge": "kiln.cli.challenge",
    "cache": "kiln.cli.cache",
}
# Their order is the order of ``kiln --help``.
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))
# The root's own options; none takes a value, so the first other word names the command.
_ROOT_OPTIONS = frozenset({"-v", "--verbose", "-q", "--quiet", "--version", "-h", "--help"})


def load_commands(argv: list[str] | None = None) -> typer.Typer:
    """The application with the command ``argv`` names registered, or every command when
    it names none kiln knows (help, a typo's "did you mean")."""
    from kiln.cli.app import app

    words = argv or []
    at = next((i for i, word in enumerate(words) if word not in _ROOT_OPTIONS), len(words))
    command = words[at] if at < len(words) else None
    # `kiln -h build` asks for the root's help, which lists every command.
    if command in COMMANDS and not {"-h", "--help"} & set(words[:at]):
        importlib.import_module(COMMANDS[command])
    else:
        for module in COMMAND_MODULES:
            importlib.import_module(module)
    return app


class _Package(types.ModuleType):
    """``kiln.cli.app`` is the application with every command, as it was when this package
    imported them all: tests and tools that walk the commands ask for it so. A property,
    because importing the submodule ``kiln.cli.app`` would otherwise bind that name to the
    module (the setter lets it try)."""

    @property
    def app(self) -> typer.Typer:
        return load_commands()

    @app.setter
    def app(self, module: object) -> None:
        pass


sys.modules[__name__].__class__ = _Package


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from kiln import __version__

        sys.stdout.write(f"kiln {__version__}\n")
        sys.exit(0)
    if "build" in sys.argv[1:3]:  # asked again for what kiln built: no typer, no pipeline
        from kiln.cli.quickbuild import serve

        if serve(sys.argv[1:]):
            sys.exit(0)
    from kiln.cli.recipecheck import plain_command_line

    check = plain_command_line(sys.argv[1:])
    if check is not None:  # kiln recipe check, without typer's start-up
        _check_recipes(*check)
    _run(sys.argv[1:])


def _check_recipes(recipes: list[Any], json_output: bool) -> None:
    from kiln.cli.recipecheck import recipe_check
    from kiln.errors import KilnError

    try:
        recipe_check(recipes, json_output)
    except KilnError as exc:
        _failed(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


def _failed(exc: Any) -> None:
    """Report a KilnError (``error:``, ``hint:``, JSON with --json) and exit with its code."""
    import traceback

    from kiln.cli.app import State, report_error

    if State.verbose or os.environ.get("KILN_VERBOSE"):
        traceback.print_exc()
    report_error(exc)
    _error_json(type(exc).__name__, exc.message, exc.hint, exc.exit_code,
                str(exc.log) if exc.log else None)
    sys.exit(exc.exit_code)


def _run(argv: list[str]) -> None:
    import typer

    from kiln.cli import console, plain
    from kiln.errors import KilnError

    app = load_commands(argv)
    plain.printed_json = False
    _stop_on_sigterm()
    try:
        # Not standalone: typer then raises a command line it cannot parse, to be JSON too.
        code = app(standalone_mode=False)
    except _parse_error() as exc:
        sys.exit(_parse_failure(exc))
    except typer.Abort:
        console.err.print("Aborted!")
        sys.exit(1)
    except KilnError as exc:
        _failed(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        if Terminated.received:  # typer returns 130 for any KeyboardInterrupt
            console.err.print("Stopped (SIGTERM): what kiln had started is stopped too.")
            sys.exit(143)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(code) returns its code here


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so the same clean-up runs: the
    programs kiln started are stopped and temporary folders removed."""

    received = False


def _stop_on_sigterm() -> None:
    import signal

    def stop(signum: int, frame: object) -> None:
        Terminated.received = True
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)


def _parse_error() -> type[Exception]:
    """What typer raises for a command line it cannot parse (an unknown option, a file
    that is not there): its own click's errors since typer 0.26, click's before."""
    import typer

    found: type[Exception] | None = getattr(typer, "TyperException", None)
    if found is None:
        import click

        found = click.ClickException
    return found


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
    from kiln.cli import plain

    if "--json" in sys.argv[1:] and not plain.printed_json:
        plain.print_json({"error": {"kind": kind, "message": message, "hint": hint,
                                      "exit_code": exit_code, "log": log}})

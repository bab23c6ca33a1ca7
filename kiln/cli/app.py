"""The typer application and the state every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from kiln import __version__
from kiln.errors import KilnError

app = typer.Typer(
    name="kiln",
    help="Recipes in, signed and reproducible Python wheels out, served as a package index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
    verbose = False
    quiet = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kiln {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", envvar="KILN_VERBOSE",
                                          help="Echo every command and its output; show "
                                               "tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print kiln's version.")] = False,
) -> None:
    State.verbose = verbose
    State.quiet = quiet



def report_error(exc: KilnError) -> None:
    from rich.text import Text

    from kiln.cli.console import err

    err.print(Text.assemble(("error: ", "bold red"), exc.message))
    if exc.hint:
        err.print(Text.assemble(("hint: ", "bold cyan"), exc.hint))
    if exc.log is not None:
        err.print(Text(f"log: {exc.log}", style="dim"))

"""Options shared by several commands, and turning them into library values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import State
from kiln.cli.console import TerminalReporter
from kiln.files import cache_home
from kiln.installer import PYPI_SIMPLE, IndexOptions

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead "
                                                         "of a table.")]
CacheOption = Annotated[Path | None, typer.Option("--cache-dir", envvar="KILN_CACHE_DIR",
                                                  help="Where downloads and finished builds are "
                                                       "kept [default: ~/.cache/kiln].")]
IndexUrlOption = Annotated[str, typer.Option("--index-url", envvar="KILN_INDEX_URL",
                                             help="Index for build requirements.")]
FindLinksOption = Annotated[list[str] | None, typer.Option(
    "--find-links", envvar="KILN_FIND_LINKS",
    help="Extra folder or URL of distributions (repeatable).")]
NoIndexOption = Annotated[bool, typer.Option("--no-index", envvar="KILN_NO_INDEX",
                                             help="Use only --find-links (air-gapped).")]
CratesUrlOption = Annotated[str | None, typer.Option(
    "--crates-url", envvar="KILN_CRATES_URL",
    help="Where the Rust crates of an sdist's Cargo.lock come from: a URL with {name} and "
         "{version}, in crates.io's layout (default: the recipe's crates-url, else "
         "https://static.crates.io/crates/{name}/{name}-{version}.crate).")]


def cache_dir(option: Path | None) -> Path:
    return (option or cache_home()).absolute()


def index_options(index_url: str = PYPI_SIMPLE, find_links: list[str] | None = None,
                  no_index: bool = False) -> IndexOptions:
    links = tuple(str(Path(x).absolute()) if "://" not in x else x for x in find_links or ())
    return IndexOptions(index_url=index_url, find_links=links, no_index=no_index)


def terminal(json_output: bool = False) -> TerminalReporter:
    return TerminalReporter(verbose=State.verbose, quiet=State.quiet)

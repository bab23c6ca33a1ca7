"""``kiln status``: the catalogue's last known results, as a table, JSON or PACKAGES.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from kiln.cli.app import app
from kiln.cli.common import JsonOption
from kiln.cli.console import err, out, print_json, table


@app.command()
def status(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files or folders (recipes/).")],
    wheelhouse: Annotated[Path, typer.Option(
        "--wheelhouse", "-w", help="Where kiln build put the wheels and records.")
    ] = Path("wheelhouse"),
    write: Annotated[Path | None, typer.Option(
        "--write", help="Also write this Markdown page (PACKAGES.md).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="With --write: replace a page that lists recipes these are not.")
    ] = False,
    audit_repo: Annotated[Path, typer.Option(
        "--audit-repo", help="The git repository whose audit branch to read.")] = Path(),
    audit_branch: Annotated[str, typer.Option(
        "--audit-branch", envvar="KILN_AUDIT_BRANCH", help="The audit branch's name.")
    ] = "audit",
    no_audit: Annotated[bool, typer.Option(
        "--no-audit", help="Do not read the audit branch.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Each recipe × Python × target: built, reproducible, signed, tested — or why it failed."""
    from kiln.errors import UsageError
    from kiln.files import write_atomic
    from kiln.status import collect_status
    from kiln.statuspage import (
        COLUMNS,
        FAILED,
        cell_row,
        listed_recipes,
        render_packages_md,
        summary_line,
    )

    found = collect_status(recipes, wheelhouse=wheelhouse,
                           audit_repo=None if no_audit else audit_repo,
                           audit_branch=audit_branch)
    if write is not None and not replace and write.is_file():
        # The page is rewritten from these recipes alone: the rows of any other would go.
        ours = {r.name for r in found.recipes}
        others = [n for n in listed_recipes(write.read_text(encoding="utf-8", errors="replace"))
                  if n not in ours]
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more"
                                             if len(others) > 5 else "")
            raise UsageError(
                f"--write {write}: it lists {len(others)} recipe(s) these are not ({shown}); "
                "writing it from these alone would drop their rows",
                hint="name every recipe (kiln status recipes/ --write …), or --replace to "
                     "write the page from these alone")
    if write is not None:
        args = [*map(str, recipes)]
        if wheelhouse != Path("wheelhouse"):
            args += ["--wheelhouse", str(wheelhouse)]
        command = "kiln status " + " ".join(args) + f" --write {write}"
        sources = (f"the build records and status files in `{wheelhouse}`"
                   + (f" and {found.audit_source}" if found.audit_source else ""))
        write_atomic(write, render_packages_md(found, command=command, sources=sources))
    if json_output:
        print_json(found.to_json())
        return
    table(None, list(COLUMNS), [cell_row(c) for c in found.cells])
    for cell in found.cells:
        if cell.result in FAILED and cell.result != "invalid":  # an invalid row says why
            where = f"{cell.name} {cell.version} ({cell.python}, {cell.target})"
            err.print(Text.assemble((f"{where}: ", "bold"), cell.why))
    for problem in found.problems:
        err.print(Text(f"note: {problem}", style="dim"))
    out.print(summary_line(found))
    if write is not None:
        out.print(f"wrote {os.fspath(write)}")

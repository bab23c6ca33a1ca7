"""``kiln challenge``: do several indexes serve the same bytes under the same filenames?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from kiln.cli.app import State, app
from kiln.cli.common import JsonOption, terminal
from kiln.cli.console import out, print_json, table
from kiln.progress import reporting

if TYPE_CHECKING:
    from kiln.challenge import ChallengeReport, Difference, Side


@app.command("challenge")
def challenge_command(
    sources: Annotated[list[str] | None, typer.Argument(
        help="kiln indexes to compare: simple/ root URLs (https://, http://127.0.0.1, "
             "file://) or folders `kiln index -o` wrote.", metavar="SOURCE",
        show_default=False)] = None,
    wheelhouse: Annotated[Path | None, typer.Option(
        "--wheelhouse", help="Also compare this folder of wheels (with their .build.json "
                             "beside them).")] = None,
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Only this project (repeatable).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Compare what several kiln indexes (and a wheelhouse) serve under the same wheel
    filenames, and the inputs each build was given where they differ; exit non-zero on a
    difference."""
    from kiln.challenge import challenge, open_sources
    from kiln.errors import ChallengeError

    opened = open_sources(sources or [], wheelhouse)
    with reporting(terminal()):
        report = challenge(opened, project or [])
    if json_output:
        print_json(report.as_json())
    else:
        _print(report)
    if report.differ:
        first = report.differ[0]
        raise ChallengeError(f"{len(report.differ)} file(s) differ between the sources, "
                             f"first {first.filename} ({first.digests} different sha256)")


def _print(report: ChallengeReport) -> None:
    for note in report.notes:
        out.print(Text(f"note: {note}", style="yellow"))
    rows = []
    for d in report.differ:
        digests = {s.listed.source: _digest(s.listed.sha256, s.listed.upstream) for s in d.sides}
        rows.append([d.filename, "differs", *(digests.get(n, "—") for n in report.sources)])
    for o in report.only:
        rows.append([o.filename, "only one side",
                     *(_digest(o.sha256, o.upstream) if n == o.source else "—"
                       for n in report.sources)])
    if State.verbose:  # agreements are most of a healthy index: listed on request
        for a in report.agree:
            rows.append([a.filename, "agrees", *(_digest(a.sha256, a.upstream)
                                                 if n in a.sources else "—"
                                                 for n in report.sources)])
    if rows:
        table(None, ["file", "status", *report.sources], rows)
    upstream = sum(a.upstream for a in report.agree)
    out.print(Text(report.summary() + (f" ({upstream} of the agreeing are upstream's links)"
                                       if upstream else "")))
    for d in report.differ:
        _print_difference(d)


def _digest(sha256: str, upstream: bool) -> str:
    return sha256[:16] + (" (upstream)" if upstream else "")


def _print_difference(d: Difference) -> None:
    sides = d.sides
    rows = [
        ["sha256", *(_digest(s.listed.sha256, s.listed.upstream) for s in sides)],
        ["builder", *(_builders(s) for s in sides)],
        ["build record", *(_record(s) for s in sides)],
    ]
    if d.compared is not None:
        a, b = d.compared
        for diff in d.inputs:
            label = diff.input if diff.shapes_bytes else f"{diff.input} (does not shape bytes)"
            values = {a: diff.ours, b: diff.theirs}
            rows.append([label, *(values.get(s.listed.source, "") for s in sides)])
    table(f"{d.filename}: {d.digests} different sha256", ["", *(s.listed.source for s in sides)],
          rows)
    if d.compared is None:
        out.print(Text("  fewer than two sides published a build record of different bytes: "
                       "no inputs to compare", style="dim"))
    elif not d.inputs:
        out.print(Text(f"  the records of {d.compared[0]} and {d.compared[1]} name the same "
                       "inputs: the build is not reproducible, or a record is wrong",
                       style="yellow"))


def _builders(side: Side) -> str:
    builders = side.builders
    if builders is None:
        return "unknown"
    return "; ".join(b.describe() for b in builders) or "none trusted"


def _record(side: Side) -> str:
    found = side.record
    if found.where is None:
        return "upstream's file" if side.listed.upstream else "none published"
    if found.problem is not None:
        return f"{found.where}: {found.problem}"
    return found.where + (" (describes other bytes)" if found.other_bytes else "")

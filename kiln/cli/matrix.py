"""``kiln matrix``: the GitHub Actions matrix for a set of recipes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from kiln.cli.app import app
from kiln.cli.common import JsonOption
from kiln.cli.console import err, out, print_json, table
from kiln.errors import UsageError


def _compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=False)


def _wheels_from_log(path: Path, since_days: int | None) -> list[str]:
    """Wheel filenames from ``kiln audit log --json`` (or a JSON list of filenames)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--rebuild-of {path}: not a readable JSON file: {exc}",
                         hint="give it the output of `kiln audit log --json`") from exc
    if not isinstance(data, list):
        raise UsageError(f"--rebuild-of {path}: must hold a JSON list")
    cutoff = (datetime.now(timezone.utc) - timedelta(days=since_days)
              if since_days is not None else None)
    wheels = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            wheels.append(item)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("wheel"), str):
            raise UsageError(f"--rebuild-of {path}: item {i} is neither a wheel filename nor "
                             "an object with a \"wheel\" key")
        when = item.get("recorded_at")
        if cutoff is not None and isinstance(when, str):
            try:
                stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError as exc:
                raise UsageError(f"--rebuild-of {path}: item {i}: recorded_at {when!r} is not "
                                 "an ISO 8601 time") from exc
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=timezone.utc)
            if stamp < cutoff:
                continue
        wheels.append(item["wheel"])
    return wheels


def _write_github_output(path: Path, pieces: list[dict[str, Any]], chunk: int,
                         jobs: int) -> None:
    """The outputs build.yml and rebuild.yml read: one chunk's matrix and the counts."""
    lines = [
        f"matrix={_compact(pieces[chunk]) if pieces else ''}",
        f"chunk={chunk}",
        f"chunk-count={len(pieces)}",
        f"chunk-jobs={len(pieces[chunk]['include']) if pieces else 0}",
        f"jobs={jobs}",
    ]
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@app.command()
def matrix(
    recipes: Annotated[list[Path] | None, typer.Argument(
        help="Recipe files (recipes/*.toml); none with --rebuild-index.",
        show_default=False)] = None,
    max_jobs: Annotated[int, typer.Option(
        "--max-jobs", help="Jobs per matrix; GitHub allows at most 256.")] = 256,
    chunks: Annotated[bool, typer.Option(
        "--chunks", help="Print a list of matrices of at most --max-jobs jobs each.")] = False,
    aarch64: Annotated[str, typer.Option(
        "--aarch64", help="linux-aarch64 builds: 'native' on ubuntu-24.04-arm runners, or "
                          "'cross' (hermetic, cross-compiling) on ubuntu-latest.")] = "native",
    alternate: Annotated[bool, typer.Option(
        "--alternate", help="Different runner images (for independent rebuilds).")] = False,
    runner: Annotated[list[str] | None, typer.Option(
        "--runner", help="TARGET=LABEL: build TARGET on this runner (repeatable).")] = None,
    python: Annotated[list[str] | None, typer.Option(
        "--python", "-p", help="Only these CPython versions (repeatable).")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Only these targets (repeatable).")] = None,
    rebuild_of: Annotated[Path | None, typer.Option(
        "--rebuild-of", help="Rebuild these wheels instead: `kiln audit log --json` output "
                             "(or a JSON list of wheel filenames); runners are --alternate "
                             "ones.")] = None,
    rebuild_index: Annotated[str | None, typer.Option(
        "--rebuild-index", help="Rebuild what this kiln index serves (its /simple/ URL), "
                                "each wheel from its own build record (`kiln rebuild "
                                "WHEEL_URL`): a rebuilder's matrix, with no recipes.")] = None,
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="With --rebuild-index: only this project (repeatable).")] = None,
    since_days: Annotated[int | None, typer.Option(
        "--since-days", help="With --rebuild-of: only wheels recorded in the last N days; "
                             "with --rebuild-index: uploaded in the last N days.")] = None,
    index_url: Annotated[str | None, typer.Option(
        "--index-url", help="With --rebuild-of: the published index (PEP 691), to add each "
                            "wheel's url.")] = None,
    chunk: Annotated[int | None, typer.Option(
        "--chunk", help="Only chunk N (from 0) of the split matrix.")] = None,
    github_output: Annotated[Path | None, typer.Option(
        "--github-output", help="Append matrix= (chunk --chunk, default 0), chunk=, "
                                "chunk-count=, chunk-jobs= and jobs= to this file (GitHub "
                                "Actions' $GITHUB_OUTPUT).")] = None,
    json_output: JsonOption = False,
) -> None:
    """The GitHub Actions matrix: one job per recipe × Python × target, with runner and backend."""
    from kiln.matrix import (
        Matrix,
        build_matrix,
        index_rebuild_matrix,
        parse_runner_overrides,
        rebuild_matrix,
    )

    overrides = parse_runner_overrides(runner or [])
    recipes = recipes or []
    if rebuild_index is not None and (recipes or rebuild_of is not None):
        raise UsageError("--rebuild-index rebuilds from the wheels' own records: it takes no "
                         "recipes and no --rebuild-of",
                         hint="give either recipes (with --rebuild-of), or --rebuild-index URL")
    if rebuild_index is None and not recipes:
        raise UsageError("no recipes given",
                         hint="kiln matrix recipes/*.toml, or --rebuild-index URL for a rebuilder")
    built: Matrix | None
    if rebuild_of is not None or rebuild_index is not None:
        if rebuild_index is not None:
            selection = index_rebuild_matrix(rebuild_index, since_days=since_days,
                                             projects=project or [], alternate=alternate,
                                             max_jobs=max_jobs, runners=overrides)
        else:
            assert rebuild_of is not None
            selection = rebuild_matrix(recipes, _wheels_from_log(rebuild_of, since_days),
                                       index_url=index_url, max_jobs=max_jobs,
                                       runners=overrides)
        for wheel, why in selection.skipped:
            err.print(f"not rebuilding {wheel}: {why}", style="dim", highlight=False)
        built = selection.matrix
    else:
        built = build_matrix(recipes, max_jobs=max_jobs, aarch64=aarch64, alternate=alternate,
                             runners=overrides, pythons=tuple(python or ()),
                             targets=tuple(target or ()))
    pieces = built.chunks() if built else []
    jobs = len(built.entries) if built else 0
    if chunk is not None and not 0 <= chunk < max(len(pieces), 1):
        raise UsageError(f"--chunk {chunk}: the matrix has {len(pieces)} chunk(s)",
                         hint=f"chunks are numbered 0 to {len(pieces) - 1}")
    if github_output is not None:
        _write_github_output(github_output, pieces, chunk or 0, jobs)
    if json_output:
        if chunk is not None and pieces:
            print_json(pieces[chunk])
        else:
            print_json(pieces if chunks else built.single() if built else {"include": []})
        return
    if built is not None and github_output is None:
        table(None, ["id", "runner", "backend", "python", "target"],
              [[e["id"], e["runner"], e.get("backend", "from its record"), e["python"], e["target"]]
               for e in built.entries])
    where = f", written to {github_output}" if github_output else ""
    out.print(f"{jobs} jobs in {len(pieces)} matrix chunk(s) of at most {max_jobs}{where}",
              highlight=False)

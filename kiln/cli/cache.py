"""``kiln cache``: what builds left in kiln's cache, and keeping it within a size and age."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.app import app
from kiln.cli.common import CacheOption, JsonOption, cache_dir
from kiln.cli.console import err, out, print_json, table

if TYPE_CHECKING:
    from kiln.prune import Bound

cache_app = typer.Typer(help="What builds left in kiln's cache; keep it within a size and age.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")

MaxSizeOption = Annotated[str | None, typer.Option(
    "--max-size", envvar="KILN_CACHE_MAX_SIZE",
    help="Keep at most this much (10G, 500M; none for no limit) [default: 10G].")]
MaxAgeOption = Annotated[str | None, typer.Option(
    "--max-age", envvar="KILN_CACHE_MAX_AGE",
    help="Remove what was not used for this long (30d, 12h; none for no limit) "
         "[default: 30d].")]

_TITLES = {"objects": "compiled objects (zig's caches)", "builds": "finished builds",
           "libraries": "built C libraries", "leftovers": "left by killed builds"}


def _bound(max_size: str | None, max_age: str | None) -> Bound:
    from kiln.prune import parse_bound

    return parse_bound(max_size, max_age, size_name="--max-size", age_name="--max-age")


def _when(stamp: float | None) -> str:
    from kiln.prune import human_age

    if stamp is None:
        return ""
    return f"{human_age(max(time.time() - stamp, 60))} ago"


@cache_app.command("show")
def show_command(max_size: MaxSizeOption = None, max_age: MaxAgeOption = None,
                 cache: CacheOption = None, json_output: JsonOption = False) -> None:
    """What the cache holds, by area, and what a prune would remove now (removes nothing)."""
    from kiln.prune import AREAS, human_size, status

    root = cache_dir(cache)
    report = status(root, _bound(max_size, max_age))
    if json_output:
        print_json({"cache": str(root), **report.to_json()})
        return
    rows = [[_TITLES[a], str(report.kept[a].entries + report.removed[a].entries),
             human_size(report.kept[a].size + report.removed[a].size),
             _when(report.removed[a].oldest or report.kept[a].oldest),
             str(report.removed[a].entries),
             human_size(report.removed[a].size)] for a in AREAS]
    table(f"{root} ({report.bound.describe()})",
          ["area", "entries", "size", "oldest use", "a prune removes", "freeing"], rows)


@cache_app.command("prune")
def prune_command(max_size: MaxSizeOption = None, max_age: MaxAgeOption = None,
                  cache: CacheOption = None, json_output: JsonOption = False) -> None:
    """Remove the least recently used objects, builds and libraries until the rest fits.

    Waits for running builds; downloads and the pinned toolchain are kept."""
    from kiln.prune import AREAS, Busy, human_size, prune

    root = cache_dir(cache)
    bound = _bound(max_size, max_age)
    try:
        report = prune(root, bound, wait=False)
    except Busy:
        err.print("waiting for the kiln builds that use this cache to finish")
        report = prune(root, bound, wait=True)
    if json_output:
        print_json({"cache": str(root), **report.to_json()})
        return
    rows = [[_TITLES[a], str(report.removed[a].entries), human_size(report.removed[a].size),
             str(report.kept[a].entries), human_size(report.kept[a].size)] for a in AREAS]
    table(f"{root} ({bound.describe()})",
          ["area", "removed", "freed", "kept", "size"], rows)
    if not report.access_times:
        out.print("note: this file system keeps no access times (noatime), so each compile "
                  "chain is pruned whole, by its newest use")

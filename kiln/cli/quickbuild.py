"""``kiln build`` answered before typer starts, when kiln remembers the answer
(:mod:`kiln.replay`): a plain command line, and every wheel it asks for cached.

A plain command line is ``[-q] build RECIPE… [-p X.Y]… [-t TARGET]… [-o DIR]
[--cache-dir DIR] [--no-test]``. Any other word, and any answer the replay cannot vouch
for, goes to the pipeline through typer, which is always right, only slower.
"""

from __future__ import annotations

import time
from pathlib import Path

from kiln.replay import BuildRequest, replay

COLUMNS = ("wheel", "tag", "sha256", "s", "status", "tests")
_VALUED = {"-p": "python", "--python": "python", "-t": "target", "--target": "target",
           "-o": "output", "--output": "output", "--cache-dir": "cache"}


def request_of(argv: list[str]) -> tuple[BuildRequest, bool] | None:
    """(the request, --quiet) of a plain ``kiln build`` command line, else None."""
    from kiln.files import cache_home

    words = list(argv)
    quiet = False
    while words and words[0] in ("-q", "--quiet"):
        quiet = True
        words.pop(0)
    if not words or words[0] != "build":
        return None
    values: dict[str, list[str]] = {"python": [], "target": [], "output": [], "cache": []}
    recipes: list[str] = []
    tests = True
    rest = iter(words[1:])
    for word in rest:
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in _VALUED:
            if not eq:
                value = next(rest, "")
            if not value or value.startswith("-"):
                return None
            values[_VALUED[name]].append(value)
        elif word == "--no-test":
            tests = False
        elif word.startswith("-"):
            return None
        else:
            recipes.append(word)
    if not recipes or len(values["output"]) > 1 or len(values["cache"]) > 1:
        return None
    cache = Path(values["cache"][0]) if values["cache"] else cache_home()
    output = Path(values["output"][0]) if values["output"] else Path("wheelhouse")
    return BuildRequest(recipes=tuple(Path(r).absolute() for r in recipes),
                        pythons=tuple(values["python"]), targets=tuple(values["target"]),
                        tests=tests, cache=cache.absolute(), output=output.absolute()), quiet


def serve(argv: list[str]) -> bool:
    """Answer a plain ``kiln build`` from kiln's memo: True when it was answered."""
    started = time.monotonic()
    parsed = request_of(argv)
    if parsed is None:
        return False
    request, quiet = parsed
    served = replay(request, started)
    if served is None:
        return False
    from kiln.cli.plain import note, table

    seconds = f"{time.monotonic() - started:.1f}"
    if not quiet:
        for item in served:
            note(f"{item.label}: using the cached build {item.key[:12]} (same recipe, sdist, "
                 "lock, interpreter and toolchain; --no-cache builds again)")
    rows = [[*item.row[:3], seconds, "cached", item.row[3]] for item in served]
    table(None, COLUMNS, rows)
    return True

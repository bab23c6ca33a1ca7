"""A recipe's whole matrix built one at a time against side by side, in one run.

    one at a time:  kiln build --no-cache --fail-fast RECIPE   (--fail-fast builds one by one)
    side by side:   kiln build --no-cache RECIPE               (kiln.schedule)

Both in the same KILN_CACHE_DIR, after one untimed warm-up build that fills zig's object
cache, the CPython descriptions and the sdist: every timed build compiles from warm caches,
so what is measured is the rest of a build (its venv, requirements, link, repair, tests),
which is what side by side overlaps. The two are alternated, --runs times each.

    .venv/bin/python benchmarks/side_by_side.py [--recipe recipes/markupsafe.toml] [--runs 3]
        [-j 2] [--no-test]

Goal (issue 15): side by side takes less wall time than one at a time when builds leave
cores idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from repro_overhead import timed as run_timed  # noqa: E402  (beside this script)


def timed(recipe: Path, cache: Path, out: Path, *args: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return run_timed([sys.executable, "-m", "kiln", "-q", "build", str(recipe), "-o", str(out),
                      "--no-cache", *args],
                     {**os.environ, "KILN_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "markupsafe.toml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-test", action="store_true")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="kiln-side-by-side-"))
    recipe = args.recipe.resolve()
    extra = ["-j", str(args.jobs), *(["--no-test"] if args.no_test else [])]
    try:
        timed(recipe, base / "cache", base / "warm", *extra)
        rows: dict[str, list[float]] = {"one at a time": [], "side by side": []}
        for _ in range(args.runs):
            rows["one at a time"].append(timed(recipe, base / "cache", base / "wh", *extra,
                                               "--fail-fast"))
            rows["side by side"].append(timed(recipe, base / "cache", base / "wh", *extra))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    reference = statistics.median(rows["one at a time"])
    print(f"{recipe.name}, its whole matrix, -j {args.jobs}, warm object cache, "
          f"{args.runs} runs each, median seconds")
    print(f"{'builds':<16}{'median s':>10}{'min s':>9}{'ratio':>9}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:<16}{med:>10.2f}{min(values):>9.2f}{med / reference:>8.2f}×")


if __name__ == "__main__":
    main()

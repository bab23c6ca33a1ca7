"""One recipe built for four Pythons against one Python, with --check-repro, in one run.

    one:   kiln build --check-repro --no-cache -p 3.11
    four:  kiln build --check-repro --no-cache -p 3.10 -p 3.11 -p 3.12 -p 3.13

Each timed run starts from a cold object cache: a fresh KILN_CACHE_DIR holding what a
warm-up build (every Python, no twin) left in its cache, less zig's object caches
(tools/zigcache-*), kiln's finished builds and its built libraries. The pinned zig, the
CPython descriptions, the sdist and the locked build requirements (uv's own cache) are
there, so nothing is downloaded while the clock runs, and every object is compiled at least
once. The twin always compiles in its own chain, so "one" compiles the package twice.

Printed for each run: wall seconds, the CPU seconds of kiln and everything it started,
and how many objects each compile chain holds afterwards (what was compiled: a hit is not
a new object).

    .venv/bin/python benchmarks/multi_python.py [--recipe recipes/brotli.toml] [--runs 1]
        [--one 3.11] [--pythons 3.10 3.11 3.12 3.13] [--seed ~/.cache/kiln]

--seed takes an existing kiln cache as the warm-up's result (the same parts are left out),
which spares a big recipe's warm-up build (grpcio: about half an hour); it must be on the
same file system as the temporary folder (the copy is hard links).

Goal (issue 15): four Pythons ≤ 1.5× one.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coldcache import cold_copy  # noqa: E402  (beside this script)

from kiln.recipe import load_recipe  # noqa: E402
from kiln.toolchain.zig import cache_entries  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kiln_build(recipe: Path, cache: Path, out: Path, pythons: list[str],
               *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one kiln build."""
    argv = [sys.executable, "-m", "kiln", "-q", "build", str(recipe), "-o", str(out),
            "--no-cache", *(a for p in pythons for a in ("-p", p)), *args]
    env = {**os.environ, "KILN_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                       os.environ.get("PYTHONPATH"))))}
    cpu, start = _cpu(), time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(argv)}\n{result.stdout[-3000:]}\n"
                         f"{result.stderr[-3000:]}")
    return elapsed, _cpu() - cpu


def objects(cache: Path) -> dict[str, int]:
    """How many objects each compile chain (build, rebuild) holds."""
    return {chain.name: cache_entries(chain)
            for chain in sorted(cache.glob("tools/zigcache-*/*")) if chain.is_dir()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "brotli.toml")
    parser.add_argument("--one", default="3.11")
    parser.add_argument("--pythons", nargs="+", default=["3.10", "3.11", "3.12", "3.13"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the caches and wheels")
    parser.add_argument("--seed", type=Path,
                        help="a kiln cache to start each run from, instead of a warm-up build")
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    label = load_recipe(recipe).label

    base = Path(tempfile.mkdtemp(prefix="kiln-multi-python-"))
    seed = args.seed.expanduser().resolve() if args.seed else base / "seed"
    if not args.seed:
        # The warm-up: toolchain, CPython descriptions, sdist and build requirements.
        kiln_build(recipe, seed, base / "wh-seed", args.pythons)
    times: dict[str, list[tuple[float, float]]] = {"one": [], "four": []}
    held: dict[str, dict[str, int]] = {}
    for run in range(args.runs):
        # Four first: on a big recipe it is the figure that matters, and each result is
        # printed as it comes, so a run cut short still tells something.
        for name, pythons in (("four", args.pythons), ("one", [args.one])):
            cache = cold_copy(seed, base / f"{name}-{run}")
            assert not any(objects(cache).values()), objects(cache)
            times[name].append(kiln_build(recipe, cache, base / f"wh-{name}-{run}", pythons,
                                          "--check-repro"))
            held[name] = objects(cache)
            wall, cpu = times[name][-1]
            print(f"run {run + 1}, {name} ({' '.join(pythons)}): {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU, objects {held[name]}", file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(cache)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)

    one = statistics.median(w for w, _ in times["one"])
    print(f"{label}, --check-repro, {os.cpu_count()} CPUs, cold object caches, "
          f"{args.runs} run{'s' * (args.runs != 1)}, median seconds"
          + (f" (kept in {base})" if args.keep else ""))
    print(f"{'run':<34}{'wall s':>9}{'CPU s':>9}{'objects (build/rebuild)':>26}{'ratio':>8}")
    rows = (("one", f"CPython {args.one}"), ("four", f"CPython {', '.join(args.pythons)}"))
    for name, title in rows:
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        count = "/".join(str(held[name].get(c, 0)) for c in ("build", "rebuild"))
        print(f"{title:<34}{wall:>9.1f}{cpu:>9.1f}{count:>26}{wall / one:>7.2f}×")
    ratio = statistics.median(w for w, _ in times["four"]) / one
    print(f"goal {len(args.pythons)} Pythons ≤ 1.5× one: {'met' if ratio <= 1.5 else 'NOT met'} "
          f"({ratio:.2f}×)")


if __name__ == "__main__":
    main()

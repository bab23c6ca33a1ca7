"""What proving reproducibility costs: kiln build --check-repro against one build, in one run.

    single:      kiln build --no-cache                 (one build)
    sequential:  two single builds one after the other  (what a naive check costs)
    check-repro: kiln build --no-cache --check-repro   (the build and its varied rebuild,
                 side by side when there are two cores)

    .venv/bin/python benchmarks/repro_overhead.py [--recipe recipes/markupsafe.toml] [--runs 5]

Goal (issue 3), on this 2-core machine: check-repro ≤ 1.6× a single build for a small C
extension.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "markupsafe.toml")
    parser.add_argument("--python", default="3.11")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["KILN_CACHE_DIR"] = str(base / "cache")
    build = [sys.executable, "-m", "kiln", "-q", "build", str(args.recipe.resolve()), "--python",
             args.python, "--target", "linux-x86_64", "-o", str(base / "wh"), "--no-cache",
             "--no-test"]
    timed(build, env)  # warm the sdist, uv and memo caches
    single, sequential, check = [], [], []
    for _ in range(args.runs):
        single.append(timed(build, env))
        sequential.append(timed(build, env) + timed(build, env))
        check.append(timed([*build, "--check-repro", "--overwrite"], env))
    shutil.rmtree(base, ignore_errors=True)

    one = statistics.median(single)
    print(f"{args.recipe.name}, CPython {args.python}, {os.cpu_count()} CPUs, {args.runs} runs, "
          "median seconds")
    print(f"{'run':<30}{'median s':>10}{'ratio':>9}")
    for name, values in (("single build", single), ("two builds, one after other", sequential),
                         ("--check-repro", check)):
        med = statistics.median(values)
        print(f"{name:<30}{med:>10.3f}{med / one:>8.2f}×")
    ratio = statistics.median(check) / one
    print(f"goal --check-repro ≤ 1.6× a single build: {'met' if ratio <= 1.6 else 'NOT met'} "
          f"({ratio:.2f}×; {statistics.median(check) / statistics.median(sequential):.2f}× the "
          "sequential pair)")


if __name__ == "__main__":
    main()

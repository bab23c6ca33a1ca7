"""kiln build against the manual pipeline, on the same sdist, and kiln's start-up, in one run.

    manual:       unpack the sdist; python -m build --wheel; auditwheel repair
    kiln cold:    kiln build --no-cache (sdist and package downloads cached, build not)
    kiln cached:  kiln build (an identical build is in kiln's cache)
    start-up:     kiln --version, kiln recipe check RECIPE

Both sides start with their package caches warm (pip's for `python -m build`, uv's for
kiln) and the sdist on disk; neither has a finished build to reuse. kiln is timed with
and without its test stage, since the manual pipeline runs no tests. The kiln timed is
this checkout's (PYTHONPATH), whatever the interpreter has installed.

    .venv/bin/python benchmarks/build_overhead.py [--recipe recipes/markupsafe.toml] [--runs 5]
        [--startup-runs 20] [--no-cold]

Goals (issues 2 and 15): cold ≤ 1.10× manual, cached ≤ 0.05× manual, start-up ≤ 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiln.fetch import fetch_sdist  # noqa: E402
from kiln.installer import uv_binary  # noqa: E402
from kiln.recipe import load_recipe  # noqa: E402
from kiln.toolchain.interpreters import find_interpreter  # noqa: E402


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{result.stdout}\n{result.stderr}")
    return elapsed


def startup(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> list[float]:
    """Wall times of a short kiln command, after one run that fills the bytecode cache."""
    timed(argv, env, cwd)
    return [timed(argv, env, cwd) for _ in range(runs)]


def manual(sdist: Path, python: Path, work: Path, env: dict[str, str]) -> float:
    """The pipeline a maintainer would run by hand."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "src", filter="data")
    (project,) = (work / "src").iterdir()
    timed([str(python), "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(project)],
          env, work)
    (wheel,) = (work / "dist").glob("*.whl")
    bin_dir = Path(sys.executable).parent
    timed([str(bin_dir / "auditwheel"), "repair", "-w", str(work / "wheelhouse"), str(wheel)],
          {**env, "PATH": f"{bin_dir}:{env['PATH']}"}, work)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "markupsafe.toml")
    parser.add_argument("--python", default="3.11")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--startup-runs", type=int, default=20)
    parser.add_argument("--no-cold", action="store_true",
                        help="Skip the cold kiln builds (start-up and cached only).")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    base = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    env = dict(os.environ)
    # This machine sets PYTHONDONTWRITEBYTECODE, which makes every Python program recompile
    # its imports on every start; users' machines cache bytecode. Both sides get the default.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT)
    env["KILN_CACHE_DIR"] = str(base / "kiln-cache")
    os.environ["KILN_CACHE_DIR"] = env["KILN_CACHE_DIR"]
    sdist = fetch_sdist(recipe, base / "kiln-cache").path
    # The manual side gets pypa/build in a venv of the same interpreter kiln builds with.
    tools = base / "manual-tools"
    subprocess.run([str(uv_binary()), "venv", "-q", "--python",
                    str(find_interpreter(args.python).path), str(tools)], check=True)
    subprocess.run([str(uv_binary()), "pip", "install", "-q", "--python", str(tools / "bin/python"),
                    "build", "pip"], check=True)
    python = tools / "bin" / "python"
    kiln = [sys.executable, "-m", "kiln", "-q", "build", str(args.recipe.resolve()),
            "--python", args.python, "--target", "linux-x86_64", "-o", str(base / "wh")]
    started = {
        "kiln --version": startup([sys.executable, "-m", "kiln", "--version"], env, base,
                                  args.startup_runs),
        "kiln recipe check": startup([sys.executable, "-m", "kiln", "recipe", "check",
                                      str(args.recipe.resolve())], env, base, args.startup_runs),
    }

    # Warm-up: fills pip's and uv's caches and kiln's interpreter/tool memo, not timed.
    manual(sdist, python, base / "manual", env)
    timed([*kiln, "--no-cache"], env, base)

    rows: dict[str, list[float]] = {"manual": [], "kiln cold (no tests)": [],
                                    "kiln cold (with tests)": [], "kiln cached": []}
    if args.no_cold:
        del rows["kiln cold (no tests)"], rows["kiln cold (with tests)"]
    for _ in range(args.runs):
        rows["manual"].append(manual(sdist, python, base / "manual", env))
        if not args.no_cold:
            rows["kiln cold (no tests)"].append(timed([*kiln, "--no-cache", "--no-test"], env,
                                                      base))
            rows["kiln cold (with tests)"].append(timed([*kiln, "--no-cache"], env, base))
        timed(kiln, env, base)  # make sure the cached entry matches the tests setting
        rows["kiln cached"].append(timed(kiln, env, base))
    shutil.rmtree(base, ignore_errors=True)

    reference = statistics.median(rows["manual"])
    print(f"{recipe.label}, CPython {args.python}, {args.runs} runs each, median seconds")
    print(f"{'pipeline':<26}{'median s':>10}{'min s':>9}{'ratio':>9}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:<26}{med:>10.3f}{min(values):>9.3f}{med / reference:>8.2f}×")
    cached = statistics.median(rows["kiln cached"]) / reference
    if not args.no_cold:
        cold = statistics.median(rows["kiln cold (no tests)"]) / reference
        print(f"goal cold ≤ 1.10×: {'met' if cold <= 1.10 else 'NOT met'} ({cold:.2f}×)")
    print(f"goal cached ≤ 0.05×: {'met' if cached <= 0.05 else 'NOT met'} ({cached:.3f}×)")
    print(f"\nstart-up, {args.startup_runs} runs each")
    print(f"{'command':<26}{'median s':>10}{'min s':>9}")
    for name, values in started.items():
        med = statistics.median(values)
        print(f"{name:<26}{med:>10.3f}{min(values):>9.3f}  "
              f"goal ≤ 0.1 s: {'met' if med <= 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()

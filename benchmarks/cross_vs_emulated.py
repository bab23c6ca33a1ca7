"""Cross-compiling with zig against building under emulation, on one C-extension sdist.

In one run, on the same sdist (markupsafe 2.1.5 by default):

    native:    kiln build --backend host  (x86_64, the host's gcc)
    cross:     kiln build --backend hermetic --target linux-aarch64, each run from a cold
               compile cache (a copy of the cache without zig's object caches: zig compiles
               its libc stubs and runtime for aarch64, and every object of the package)
    cross warm: the same with zig's cache as the last cross build left it (every compile a
               hit): what a rebuild of the same inputs costs, shown beside, not the ratio
    emulated:  an aarch64 CPython, pip and gcc 12 from Debian bookworm's arm64 packages, run
               under qemu-aarch64-static: `pip wheel --use-pep517` of the sdist, which makes
               an isolated environment with the sdist's locked build requirements (offline,
               from a folder) and builds in it; every compiler, assembler and linker process
               is emulated too (what cibuildwheel does in an aarch64 container under QEMU)

The kiln builds run with --no-cache --no-test, so each is a full build (fresh venv, the
locked build requirements, sandbox, auditwheel repair). The emulated build has no repair
step, which flatters emulation. Also timed: the same `pip wheel` on the host (x86_64
CPython and gcc), the like-for-like partner of the emulated one. The machine is shared, so
each route's CPU time (user + system of all its processes) is printed beside wall time.

qemu-user has no binfmt here, so a program an emulated one starts would fail: the CPython
(started with qemu's -0 so that sys.executable is the script), gcc's subprograms (cc1, as,
collect2, ld) and the compiler setuptools calls are small host scripts that start the
aarch64 program under qemu.

    .venv/bin/python benchmarks/cross_vs_emulated.py [--recipe recipes/markupsafe.toml] [--runs 3]

Goals (issue 7): cross ≤ 1.5× native, emulated ≥ 8× cross.
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

from kiln.fetch import fetch_sdist  # noqa: E402
from kiln.lockfile import read_lock  # noqa: E402
from kiln.recipe import load_recipe  # noqa: E402
from kiln.toolchain.emulation import build_root  # noqa: E402
from kiln.toolchain.interpreters import find_interpreter  # noqa: E402

SUITE = "bookworm"
PYTHON = "3.11"
GCC = "12"
EMULATED_PACKAGES = [f"python{PYTHON}-minimal", f"libpython{PYTHON}-stdlib",
                     f"libpython{PYTHON}-dev", "python3-pip", f"gcc-{GCC}", "libc6-dev"]
QEMU = "/usr/bin/qemu-aarch64-static"
# pip adds `wheel` to a legacy (setup.py-only) sdist's build requirements.
PIP_LEGACY_EXTRA = "wheel==0.45.1"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and everything it started)."""
    cpu, start = _cpu(), time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {shlex.join(argv)}\n{result.stdout[-3000:]}\n"
                         f"{result.stderr[-3000:]}")
    return elapsed, _cpu() - cpu


def kiln_build(recipe: Path, cache: Path, out: Path, *args: str) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "KILN_CACHE_DIR": str(cache)}
    return run([sys.executable, "-m", "kiln", "build", str(recipe), "-o", str(out),
                "--no-cache", "--no-test", "--python", PYTHON, *args], env, ROOT)


def emulated_root(cache: Path) -> Path:
    """Debian's aarch64 CPython and gcc, unpacked once into the benchmark's cache."""
    root = cache / "bench-sysroots" / f"{SUITE}-arm64-py{PYTHON}-gcc{GCC}-pip"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        build_root(root, SUITE, "arm64", EMULATED_PACKAGES, cache / "debian")
        (root / ".complete").touch()
    return root


def host_scripts(root: Path, folder: Path) -> Path:
    """Host-side scripts that start each aarch64 tool under qemu (no binfmt needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    libexec = f"/usr/lib/gcc/aarch64-linux-gnu/{GCC}"
    tools = {"cc1": f"{libexec}/cc1", "collect2": f"{libexec}/collect2",
             "as": "/usr/bin/aarch64-linux-gnu-as", "real-ld": "/usr/bin/aarch64-linux-gnu-ld.bfd"}
    q = shlex.quote
    for name, path in tools.items():
        (folder / name).write_text(f"#!/bin/sh\nexec {QEMU} -L {q(str(root))} "
                                   f"{q(str(root) + path)} \"$@\"\n")
    # -B makes gcc (and collect2, through COMPILER_PATH) look here first for its subprograms.
    # -0 makes the script the CPython's argv[0], so sys.executable starts it under qemu too.
    (folder / f"python{PYTHON}").write_text(
        f"#!/bin/sh\nexec {QEMU} -L {q(str(root))} -0 \"$0\" "
        f"{q(str(root) + f'/usr/bin/python{PYTHON}')} \"$@\"\n")
    (folder / "gcc").write_text(
        f"#!/bin/sh\nexec {QEMU} -L {q(str(root))} "
        f"{q(str(root) + f'/usr/bin/aarch64-linux-gnu-gcc-{GCC}')} -B{q(str(folder))}/ \"$@\"\n")
    for script in folder.iterdir():
        script.chmod(0o755)
    return folder


def build_requirements(recipe: Path, cache: Path) -> Path:
    """The sdist's locked build requirements, as wheels in a folder (fetched once)."""
    lock = read_lock(load_recipe(recipe))
    if lock is None:
        raise SystemExit(f"{recipe}: no lock; run `kiln lock {recipe}` first")
    folder = cache / "bench-wheels"
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{p.name}=={p.version}" for p in lock.pins_for(PYTHON)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary", ":all:", "-d", str(folder), *pins, PIP_LEGACY_EXTRA],
                   check=True)
    return folder


def pip_wheel(python: str, sdist: Path, wheels: Path, work: Path,
              extra_env: dict[str, str]) -> tuple[float, float]:
    """`pip wheel` of the sdist with build isolation, offline, from ``wheels``."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "dist").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LC_ALL": "C.UTF-8",
           "SOURCE_DATE_EPOCH": "1700000000", "PIP_NO_CACHE_DIR": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra_env}
    timing = run([python, "-m", "pip", "wheel", "--use-pep517", "--no-deps", "--no-index",
                  "--find-links", str(wheels), "-w", str(work / "dist"), str(sdist)], env, work)
    (wheel,) = (work / "dist").glob("*.whl")
    return timing, wheel.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "markupsafe.toml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-cross",
                        help="kiln cache for the benchmark (zig, sysroots, sdists)")
    args = parser.parse_args()
    cache = args.cache.absolute()
    recipe = load_recipe(args.recipe)
    sdist = fetch_sdist(recipe, cache).path
    python = find_interpreter(PYTHON).path
    wheels = build_requirements(args.recipe, cache)
    scratch = Path(tempfile.mkdtemp(prefix="bench-cross-"))
    try:
        print(f"sdist: {sdist.name}; preparing zig and the emulated toolchain (not timed)")
        first = time.perf_counter()
        kiln_build(args.recipe, cache, scratch / "warm-zig", "--backend", "hermetic", "--target",
                   "linux-aarch64")
        print(f"  first zig build (installs zig if needed, may fill zig's cache): "
              f"{time.perf_counter() - first:.1f} s")
        kiln_build(args.recipe, cache, scratch / "warm-native", "--backend", "host")
        root = emulated_root(cache)
        scripts = host_scripts(root, scratch / "qemu-tools")
        gcc = str(scripts / "gcc")
        emulated_env = {"CC": gcc, "LDSHARED": f"{gcc} -shared"}
        routes = ("native", "cross", "cross-warm", "emulated", "host-pip")
        wall: dict[str, list[float]] = {k: [] for k in routes}
        cpu: dict[str, list[float]] = {k: [] for k in routes}
        for i in range(args.runs):
            timings = {
                "native": kiln_build(args.recipe, cache, scratch / "native", "--backend",
                                     "host"),
                "cross": kiln_build(args.recipe, cold_copy(cache, scratch / "cold-cache"),
                                    scratch / "cross", "--backend", "hermetic",
                                    "--target", "linux-aarch64"),
                "cross-warm": kiln_build(args.recipe, cache, scratch / "cross-warm", "--backend",
                                         "hermetic", "--target", "linux-aarch64"),
            }
            timings["emulated"], made = pip_wheel(str(scripts / f"python{PYTHON}"), sdist,
                                                  wheels, scratch / "emu", emulated_env)
            if "aarch64" not in made:
                raise SystemExit(f"the emulated build made {made}, not an aarch64 wheel")
            timings["host-pip"], _ = pip_wheel(str(python), sdist, wheels, scratch / "host", {})
            for key, (w, c) in timings.items():
                wall[key].append(w)
                cpu[key].append(c)
            print(f"  run {i + 1}: " + ", ".join(f"{k} {w:.2f} s ({c:.2f} s CPU)"
                                                 for k, (w, c) in timings.items()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    labels = {
        "native": "native   kiln build --backend host (x86_64)",
        "cross": "cross    kiln build --backend hermetic --target linux-aarch64 (cold)",
        "cross-warm": "         the same, zig's object cache warm (all hits)",
        "emulated": "emulated pip wheel under qemu (aarch64 CPython, pip, gcc)",
        "host-pip": "host     pip wheel on the host (x86_64 CPython, gcc)",
    }
    print()
    print(f"{'route':<60} {'wall s':>8} {'CPU s':>8}")
    for key in routes:
        print(f"{labels[key]:<60} {mw[key]:>8.2f} {mc[key]:>8.2f}")
    print()
    for name, a, b, goal in (("cross / native", "cross", "native", "≤ 1.5×"),
                             ("emulated / cross", "emulated", "cross", "≥ 8×"),
                             ("emulated / host pip", "emulated", "host-pip", "")):
        ratio_wall, ratio_cpu = mw[a] / mw[b], mc[a] / mc[b]
        met = ""
        if goal:
            ok = ratio_wall <= 1.5 if goal.startswith("≤") else ratio_wall >= 8
            met = f"(goal {goal}: {'met' if ok else 'NOT met'})"
        print(f"{name:<20} = {ratio_wall:5.2f}× wall, {ratio_cpu:5.2f}× CPU  {met}")


if __name__ == "__main__":
    main()

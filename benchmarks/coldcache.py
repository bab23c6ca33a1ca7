"""A kiln cache without what a build compiles, for benchmarks that time compiles cold."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# What a cold copy leaves out: zig's object caches, finished builds, built C libraries and
# work folders. The pinned zig, CPython descriptions, sdists and downloads stay, so nothing
# is downloaded while the clock runs and every object is compiled at least once.
COLD = ("zigcache-*", "builds", "libraries", "work", "progress")


def cold_copy(seed: Path, dest: Path) -> Path:
    """``seed`` without its object caches and finished builds (hard links: nothing is
    written to a cache's files in place)."""
    def skipped(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if any(Path(n).match(p) for p in COLD)]

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(seed, dest, symlinks=True, ignore=skipped, copy_function=os.link)
    return dest

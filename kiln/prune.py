"""Keeping what builds leave in kiln's cache within a size and an age, never under a build.

Three parts of the cache grow with every build and are only ever a shortcut: zig's object
caches (``tools/zigcache-*/<chain>``: an ``o/<digest>`` folder per compiled object and an
``h/<name>.txt`` manifest that finds it), finished builds (``builds/<key>``) and built C
libraries (``libraries/<chain>/<entry>``). Pruning removes the least recently used of them
until the rest fits ``KILN_CACHE_MAX_SIZE`` and nothing is older than ``KILN_CACHE_MAX_AGE``;
a removed entry is built again the next time it is needed. The pinned inputs (downloads,
sdists, the toolchain, sysroots, crates) are checked by hash, small beside the objects, and
needed offline: they stay.

Safe under concurrent builds: every ``kiln build`` holds a shared lock on the cache for as
long as it runs, and pruning takes it exclusively. ``kiln cache prune`` waits for running
builds; the prune a build does when it ends is skipped while another build runs.

zig trusts a manifest: a manifest whose object folder is gone is a cache hit whose object is
missing, and the compile or link fails. A manifest is read whenever its object is used, and
the object is read right after, so the two are last used within moments of each other. The
file system keeps access times (``relatime``: at most a day stale): manifests are removed
with a cutoff two days later than objects', so every manifest that stays finds its object.
Where access times are not kept (``noatime``), a whole compile chain is one entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiln.errors import UsageError

DAY = 86400.0
GIB = 1024 ** 3
DEFAULT_MAX_SIZE = 10 * GIB
DEFAULT_MAX_AGE = 30 * DAY
# How much later than objects' the manifests' cutoff is: relatime's day, and a day to spare.
MANIFEST_MARGIN = 2 * DAY
# A staging or work folder, a half-written entry or a zig temporary file a day old is left
# over from a kiln that was killed (``kiln lock`` and ``kiln test`` use ``work/`` too).
LEFTOVER_AGE = DAY
LOCK_NAME = ".in-use.lock"
AREAS = ("objects", "builds", "libraries", "leftovers")

_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$")
_AGE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": GIB, "t": 1024 ** 4}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_OFF = {"none", "off", "unlimited"}


@dataclass(frozen=True)
class Bound:
    max_size: int | None = DEFAULT_MAX_SIZE  # bytes; None: no limit
    max_age: float | None = DEFAULT_MAX_AGE  # seconds since last use; None: no limit

    def describe(self) -> str:
        size = "no size limit" if self.max_size is None else f"at most {human_size(self.max_size)}"
        age = ("no age limit" if self.max_age is None
               else f"used in the last {human_age(self.max_age)}")
        return f"{size}, {age}"


def parse_size(text: str, what: str) -> int | None:
    """``10G``, ``500M``, ``2GiB``, ``1048576`` (bytes); ``none`` for no limit."""
    if text.strip().lower() in _OFF:
        return None
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{what}: {text!r} is not a size",
                         hint="give a number with K, M, G or T (10G, 500M), or none")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_age(text: str, what: str) -> float | None:
    """``30d``, ``12h``, ``2w``, ``90m``, ``3600s``; ``none`` for no limit."""
    if text.strip().lower() in _OFF:
        return None
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"{what}: {text!r} is not an age",
                         hint="give a number with s, m, h, d or w (30d, 12h), or none")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def parse_bound(size: str | None, age: str | None, *, size_name: str = "KILN_CACHE_MAX_SIZE",
                age_name: str = "KILN_CACHE_MAX_AGE") -> Bound:
    """A bound from its two texts (None: the default); errors name ``size_name``/``age_name``."""
    return Bound(max_size=DEFAULT_MAX_SIZE if size is None else parse_size(size, size_name),
                 max_age=DEFAULT_MAX_AGE if age is None else parse_age(age, age_name))


def bound_from_env(environ: Mapping[str, str] | None = None) -> Bound:
    env = os.environ if environ is None else environ
    return parse_bound(env.get("KILN_CACHE_MAX_SIZE"), env.get("KILN_CACHE_MAX_AGE"))


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # unreachable; mypy wants a return


def human_age(seconds: float) -> str:
    for unit, size in (("days", DAY), ("hours", 3600.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 60:.0f} minutes"


@dataclass
class Entry:
    area: str  # one of AREAS
    path: Path
    size: int
    used: float  # when it was last used (seconds since the epoch)
    manifest: bool = False  # a zig manifest: goes with the objects' cutoff plus the margin


@dataclass
class AreaTotals:
    entries: int = 0
    size: int = 0
    oldest: float | None = None

    def add(self, entry: Entry) -> None:
        self.entries += 1
        self.size += entry.size
        self.oldest = entry.used if self.oldest is None else min(self.oldest, entry.used)


@dataclass
class PruneReport:
    bound: Bound
    kept: dict[str, AreaTotals] = field(default_factory=dict)
    removed: dict[str, AreaTotals] = field(default_factory=dict)
    access_times: bool = True  # False: the file system keeps none (whole chains are entries)

    @property
    def removed_size(self) -> int:
        return sum(t.size for t in self.removed.values())

    @property
    def removed_entries(self) -> int:
        return sum(t.entries for t in self.removed.values())

    def to_json(self) -> dict[str, object]:
        def totals(t: AreaTotals) -> dict[str, object]:
            return {"entries": t.entries, "bytes": t.size, "oldest_use": t.oldest}
        return {"max_size": self.bound.max_size, "max_age_seconds": self.bound.max_age,
                "access_times": self.access_times,
                "kept": {a: totals(t) for a, t in self.kept.items()},
                "removed": {a: totals(t) for a, t in self.removed.items()}}


@contextlib.contextmanager
def in_use(cache: Path, *, if_exists: bool = False) -> Iterator[None]:
    """Hold the cache for a build: pruning waits (or is skipped) until it is let go.
    ``if_exists``: hold it only if it is there already (a refused build makes no cache)."""
    if if_exists and not cache.is_dir():
        yield
        return
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / LOCK_NAME).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tree(path: Path) -> tuple[int, float]:
    """(bytes, last use) of a file or folder: its files' sizes, their newest access or change."""
    try:
        st = path.lstat()
    except OSError:
        return 0, 0.0
    if not path.is_dir() or path.is_symlink():
        return st.st_size, max(st.st_atime, st.st_mtime)
    # Its files' times, not the folder's: a folder's changes when a file is added or removed.
    size, used = 0, None
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                fst = (Path(root) / name).lstat()
            except OSError:
                continue
            size += fst.st_size
            used = max(used or 0.0, fst.st_atime, fst.st_mtime)
    return size, st.st_mtime if used is None else used


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def access_times_kept(cache: Path) -> bool:
    """Whether reading a file moves its access time here (not under ``noatime``)."""
    cache.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".atime-probe.", dir=cache)
    probe = Path(name)
    try:
        os.write(fd, b"kiln")
        os.close(fd)
        old = time.time() - 3 * DAY
        os.utime(probe, (old, old))
        probe.read_bytes()
        return probe.stat().st_atime > old + DAY
    finally:
        probe.unlink()


def scan(cache: Path, *, access_times: bool = True, now: float | None = None) -> list[Entry]:
    """Every prunable entry in ``cache``, with its size and last use."""
    now = time.time() if now is None else now
    entries: list[Entry] = []
    for root in _children(cache / "tools"):
        if not root.name.startswith("zigcache-") or not root.is_dir():
            continue
        for chain in _children(root):
            if not chain.is_dir():
                continue
            if not access_times:
                size, _ = _tree(chain)
                manifests = [_tree(h)[1] for h in _children(chain / "h")]
                used = max(manifests, default=chain.stat().st_mtime)
                entries.append(Entry("objects", chain, size, used))
                continue
            for obj in _children(chain / "o"):
                size, used = _tree(obj)
                entries.append(Entry("objects", obj, size, used))
            for manifest in _children(chain / "h"):
                if manifest.suffix == ".txt":
                    size, used = _tree(manifest)
                    entries.append(Entry("objects", manifest, size, used, manifest=True))
            for tmp in _children(chain / "tmp"):
                entries.append(Entry("leftovers", tmp, *_tree(tmp)))
    for build in _children(cache / "builds"):
        if build.name.startswith("."):  # a put() that was cut off
            entries.append(Entry("leftovers", build, *_tree(build)))
        elif build.is_dir():
            size, _ = _tree(build)
            entries.append(Entry("builds", build, size, _used(build / "record.json")))
    for chain in _children(cache / "libraries"):
        for lib in _children(chain):
            if lib.name == "logs":
                for log in _children(lib):
                    size, used = _tree(log)
                    entries.append(Entry("libraries", log, size, used))
            elif lib.name.startswith("."):  # a library build that was cut off
                entries.append(Entry("leftovers", lib, *_tree(lib)))
            elif lib.is_dir():
                size, _ = _tree(lib)
                entries.append(Entry("libraries", lib, size, _used(lib / "kiln-library.json")))
    for left in [*_children(cache / "work"), *cache.glob("kiln-staging-*")]:
        entries.append(Entry("leftovers", left, *_tree(left)))
    return [e for e in entries if e.area != "leftovers" or e.used < now - LEFTOVER_AGE]


def _used(marker: Path) -> float:
    """An entry's last use: when its marker file was last touched (kiln touches it on a hit)."""
    try:
        st = marker.stat()
    except OSError:
        return 0.0
    return max(st.st_mtime, st.st_atime)


def touch(marker: Path) -> None:
    """Mark a cache entry used now (its age counts from here)."""
    with contextlib.suppress(OSError):
        os.utime(marker)


def plan(entries: list[Entry], bound: Bound, now: float) -> list[Entry]:
    """The entries to remove: everything used before one cutoff, the same for every area
    (least recently used first across them), manifests ``MANIFEST_MARGIN`` later."""
    cutoff = now - bound.max_age if bound.max_age is not None else float("-inf")
    if bound.max_size is not None:
        total = sum(e.size for e in entries if e.area != "leftovers")
        over = total - sum(e.size for e in entries if e.area != "leftovers"
                           and not e.manifest and e.used < cutoff) - bound.max_size
        for entry in sorted((e for e in entries if e.area != "leftovers" and not e.manifest
                             and e.used >= cutoff), key=lambda e: e.used):
            if over <= 0:
                break
            cutoff = max(cutoff, entry.used + 1e-6)
            over -= entry.size
    doomed = []
    for entry in entries:
        limit = cutoff + MANIFEST_MARGIN if entry.manifest else cutoff
        if entry.area == "leftovers" or entry.used < limit:
            doomed.append(entry)
    return doomed


class Busy(Exception):
    """A build holds the cache."""


def prune(cache: Path, bound: Bound, *, wait: bool, dry_run: bool = False,
          now: float | None = None) -> PruneReport:
    """Remove what ``bound`` does not keep. Raises ``Busy`` when ``wait`` is false and a
    build holds the cache."""
    now = time.time() if now is None else now
    cache.mkdir(parents=True, exist_ok=True)
    if dry_run:  # reads only: running builds need not wait
        return _prune_locked(cache, bound, dry_run=True, now=now)
    with (cache / LOCK_NAME).open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(str(cache)) from None
        try:
            return _prune_locked(cache, bound, dry_run=False, now=now)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _prune_locked(cache: Path, bound: Bound, *, dry_run: bool, now: float) -> PruneReport:
    atimes = access_times_kept(cache)
    entries = scan(cache, access_times=atimes, now=now)
    doomed = plan(entries, bound, now)
    gone = {id(e) for e in doomed}
    report = PruneReport(bound=bound, access_times=atimes,
                         kept={a: AreaTotals() for a in AREAS},
                         removed={a: AreaTotals() for a in AREAS})
    # Manifests first: an object never outlives less than the manifests that find it.
    for entry in sorted(doomed, key=lambda e: not e.manifest):
        if not dry_run:
            _remove(entry)
        report.removed[entry.area].add(entry)
    for entry in entries:
        if id(entry) not in gone:
            report.kept[entry.area].add(entry)
    if not dry_run:
        for lock in (cache / "libraries").glob("*/*.lock"):
            if not lock.with_suffix("").exists():  # no entry left for it to guard
                lock.unlink(missing_ok=True)
    return report


def _remove(entry: Entry) -> None:
    if entry.path.is_dir() and not entry.path.is_symlink():
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)


def status(cache: Path, bound: Bound) -> PruneReport:
    """What the cache holds, and what a prune would remove now (nothing is removed)."""
    return prune(cache, bound, wait=False, dry_run=True)

"""A build command asked again, answered from what it delivered last time.

``kiln build`` served entirely from kiln's cache still pays for the pipeline: reading the
recipe and its locks into models, finding the interpreter, describing the toolchain to
compute each build id. When a build command ends with every wheel built or served, and
every one hermetic, kiln also remembers the command's answer under the digest of all it
depends on (:func:`request_key`): the recipe files' bytes and their locks' bytes, the
Pythons, targets and tests asked for, every ``KILN_*`` variable, and kiln's own code
(each module's size and modification time). The same command later, with nothing in
that list changed, is answered by :func:`replay` without the pipeline: each wheel and
log in the build cache is checked against its sha256, then the wheelhouse gets the
wheel, its record (the one a cache hit through the pipeline writes) and its log, and
the status files, each written whole.

Only hermetic builds are remembered: their bytes do not depend on the host, so nothing
outside that list can change the answer. Anything the replay cannot vouch for (no
memo, a changed file, a cache entry pruned or altered, a different wheel of the same
name in the wheelhouse) returns None before anything is written, and the pipeline
answers instead; so does every command line the replay does not know
(``kiln.cli.quickbuild``). ``KILN_NO_MEMO`` turns it off.

This module imports no pydantic, typer or rich: it is the whole of a cached build.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.files import copy_atomic, sha256_bytes, sha256_file, write_atomic
from kiln.prune import in_use, touch

if TYPE_CHECKING:
    from kiln.pipeline import JobResult

MEMO_VERSION = 1
KEPT = 200  # memos kept, the most recently written (each a few kilobytes)
# Variables that make a build command do more than build (sign, audit, install packages)
# or say more: such a command always goes through the pipeline.
NOT_REPLAYED = ("KILN_SIGN_KEY", "KILN_AUDIT", "KILN_VERBOSE", "KILN_INSTALL_SYSTEM_DEPS",
                "KILN_NO_MEMO")
_KILN = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BuildRequest:
    """What a plain ``kiln build`` was asked: the rest of its options at their defaults."""

    recipes: tuple[Path, ...]  # absolute
    pythons: tuple[str, ...]
    targets: tuple[str, ...]
    tests: bool
    cache: Path  # absolute
    output: Path  # absolute; where it is delivered does not change what is delivered


@dataclass(frozen=True)
class Replayed:
    """One wheel delivered again: the row ``kiln build`` prints for it, and its note."""

    label: str
    key: str  # the build cache entry's key
    row: tuple[str, str, str, str]  # wheel, tag, sha256[:12], tests


def replay_allowed(environ: dict[str, str] | os._Environ[str]) -> bool:
    return not any(environ.get(name) for name in NOT_REPLAYED)


def _kiln_code() -> list[list[object]]:
    """Every module of kiln, by size and modification time: an edit to kiln (an editable
    install, a new version) is a new key."""
    found: list[list[object]] = []
    for root, dirs, files in os.walk(_KILN):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        folder = Path(root)
        for name in sorted(files):
            if name.endswith(".py"):
                st = (folder / name).stat()
                found.append([str((folder / name).relative_to(_KILN)), st.st_size,
                              st.st_mtime_ns])
    return found


def _file_digest(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Inputs:
    """The files a build's answer comes from, as read at one moment."""

    # Each recipe's path and the digests of the recipe, its lock and its test lock
    # (kiln.recipe.Recipe.lock_path and kiln.lockfile.test_lock_path; None: missing).
    recipes: list[list[str | None]]
    kiln: list[list[object]]  # _kiln_code()

    def still(self, now: Inputs) -> bool:
        """Nothing read before has changed since: a file that was missing may have been
        written (the lock a build makes for itself), no other."""
        return self.kiln == now.kiln and len(self.recipes) == len(now.recipes) and all(
            was is None or was == found
            for old, new in zip(self.recipes, now.recipes, strict=True)
            for was, found in zip(old, new, strict=True))


def read_inputs(request: BuildRequest) -> Inputs:
    return Inputs(recipes=[[str(path), *(_file_digest(p) for p in (
        path, path.with_suffix(".lock"), path.with_suffix(".test.lock")))]
        for path in request.recipes], kiln=_kiln_code())


def request_key(request: BuildRequest, inputs: Inputs | None = None) -> str:
    """The digest of everything the answer to ``request`` depends on: ``inputs``, or the
    files read now."""
    inputs = inputs or read_inputs(request)
    blob = {
        "memo": MEMO_VERSION,
        "recipes": inputs.recipes,
        "pythons": list(request.pythons),
        "targets": list(request.targets),
        "tests": request.tests,
        "cache": str(request.cache),
        "env": sorted((k, v) for k, v in os.environ.items() if k.startswith("KILN_")),
        "kiln": inputs.kiln,
    }
    return sha256_bytes(json.dumps(blob, sort_keys=True).encode())


def _memo_path(request: BuildRequest, key: str) -> Path:
    return request.cache / "replay" / f"{key}.json"


def remember(request: BuildRequest, results: Sequence[JobResult], before: Inputs) -> None:
    """Keep the answer to ``request``: only when every result is a hermetic wheel that a
    cache hit would deliver again (not skipped, not failed, not served by another Python's
    abi3 wheel), and no recipe, lock or module of kiln changed while it built (``before``:
    read_inputs from before the build read them). A recipe edited meanwhile is not the
    recipe these wheels were built from; a lock the build wrote itself, where there was
    none, is the one it built with."""
    from kiln.outcomes import outcome_of, outcome_path
    from kiln.record import record_path

    if not replay_allowed(os.environ) or not results:
        return
    now = read_inputs(request)
    if not before.still(now):
        return
    entries = []
    for result in results:
        rec = result.record
        if (not result.ok or result.skipped or result.covered_by or rec is None
                or result.wheel is None or result.cache_entry is None or not rec.hermetic):
            return
        served = rec.model_copy(update={"cached": True})
        outcome = outcome_of(result, request.output).model_dump(mode="json")
        outcome.update(cached=True)
        log = rec.log
        entries.append({
            "label": result.label,
            "entry": str(result.cache_entry),
            "wheel": rec.wheel.filename,
            "sha256": rec.wheel.sha256,
            # The log as the wheelhouse holds it (logs/NAME), and its digest.
            "log": None if log is None else {"name": log.name, "sha256": log.sha256},
            "record": served.model_dump_json(indent=2) + "\n",
            "record_name": record_path(Path(rec.wheel.filename)).name,
            "row": [rec.wheel.filename, rec.repair.policy or rec.wheel.platform_tags[-1],
                    rec.wheel.sha256[:12], rec.test.summary() if rec.test and rec.test.ran
                    else "—"],
            "outcome": outcome,
            # Relative to the wheelhouse, which may be another one next time.
            "status": str(outcome_path(Path(), result.recipe.stem, result.python,
                                       result.target)),
        })
    key = request_key(request, now)
    path = _memo_path(request, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"memo": MEMO_VERSION, "results": entries}, indent=1))
    _keep_newest(path.parent)


def _keep_newest(folder: Path) -> None:
    """At most ``KEPT`` memos: every edit of kiln, recipe or lock makes new keys."""
    memos = []
    for path in folder.glob("*.json"):
        try:
            memos.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(memos, reverse=True)[KEPT:]:
        path.unlink(missing_ok=True)


def replay(request: BuildRequest, started: float) -> list[Replayed] | None:
    """Deliver the remembered answer to ``request`` again, or None (nothing written) when
    there is none this can vouch for."""
    if not replay_allowed(os.environ):
        return None
    key = request_key(request)
    try:
        memo = json.loads(_memo_path(request, key).read_bytes())
        if memo.get("memo") != MEMO_VERSION:
            return None
        with in_use(request.cache):  # no prune removes an entry while it is copied
            return _deliver(request, memo["results"], started)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _deliver(request: BuildRequest, entries: list[dict[str, Any]],
             started: float) -> list[Replayed] | None:
    output = request.output
    # Everything is checked before anything is written.
    for item in entries:
        entry = Path(item["entry"])
        if sha256_file(entry / item["wheel"]) != item["sha256"]:
            return None
        if item["log"] is not None and sha256_file(entry / "build.log") != item["log"]["sha256"]:
            return None
        there = output / item["wheel"]
        if there.exists() and sha256_file(there) != item["sha256"]:
            return None  # the pipeline says what to do about it (--overwrite)
    done = []
    for item in entries:
        entry = Path(item["entry"])
        if item["log"] is not None:
            log = output / item["log"]["name"]
            if not log.exists() or sha256_file(log) != item["log"]["sha256"]:
                copy_atomic(entry / "build.log", log)
        wheel = output / item["wheel"]
        if not wheel.exists():
            copy_atomic(entry / item["wheel"], wheel)
        write_atomic(output / item["record_name"], item["record"])
        touch(entry / "record.json")  # its age for pruning counts from its last use
        outcome = dict(item["outcome"])
        outcome["seconds"] = round(time.monotonic() - started, 3)
        outcome["finished"] = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        status = output / item["status"]
        status.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(status, json.dumps(outcome, indent=2) + "\n")
        done.append(Replayed(label=item["label"], key=entry.name,
                             row=tuple(item["row"])))
    return done

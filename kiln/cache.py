"""Finished builds, kept by the digest of everything that went into them."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiln import record as record_module
from kiln.files import sha256_bytes, sha256_file
from kiln.prune import touch
from kiln.record import BuildRecord


@functools.cache
def record_schema() -> str:
    """The digest of the code that defines a build record. A cached build is served only to
    the kiln whose records it holds: a record written before a field was added would still
    parse (the field has a default) and say less than a new build's."""
    return sha256_file(Path(record_module.__file__))


@dataclass(frozen=True)
class CachedBuild:
    record: BuildRecord
    wheel: Path
    log: Path | None


class BuildCache:
    """``<cache>/builds/<key>/``: the wheel, its record and its log, written all at once."""

    def __init__(self, root: Path) -> None:
        self.root = root / "builds"

    @staticmethod
    def key(build_id: str, *, tests: object) -> str:
        return sha256_bytes(json.dumps([build_id, tests, record_schema()],
                                       sort_keys=True).encode())

    def get(self, key: str) -> CachedBuild | None:
        entry = self.root / key
        meta = entry / "record.json"
        if not meta.exists():
            return None
        try:
            record = BuildRecord.model_validate_json(meta.read_bytes())
        except ValueError:
            return None  # written by another kiln version: build again
        wheel = entry / record.wheel.filename
        # A cached wheel is an input to everything after it: check it like a download.
        if not wheel.exists() or sha256_file(wheel) != record.wheel.sha256:
            return None
        touch(meta)  # its age for pruning counts from its last use
        log = entry / "build.log"
        return CachedBuild(record=record, wheel=wheel, log=log if log.exists() else None)

    def put(self, key: str, record: BuildRecord, wheel: Path, log: Path | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=self.root))
        try:
            shutil.copyfile(wheel, tmp / wheel.name)
            if log is not None and log.exists():
                shutil.copyfile(log, tmp / "build.log")
            (tmp / "record.json").write_text(record.model_dump_json(indent=2))
            try:
                os.rename(tmp, self.root / key)
            except OSError:
                # Another build of the same inputs may get there first; theirs is as good.
                # An entry that fails its check (a wheel changed behind kiln's back) is not.
                if self.get(key) is None:
                    shutil.rmtree(self.root / key, ignore_errors=True)
                    with contextlib.suppress(OSError):
                        os.rename(tmp, self.root / key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

"""Answers about files that only change when the files do (tool versions, digests).

Keyed by each file's path, size and modification time, so a replaced compiler or
interpreter is asked again; kept in one small JSON file in kiln's cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from kiln.files import cache_home, write_atomic

_lock = threading.Lock()


def _stamp(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        st = path.stat()
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


class StatMemo:
    def __init__(self, name: str) -> None:
        self.path = cache_home() / "memo" / f"{name}.json"
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, key: str) -> Any:
        """The remembered value, if every file it depends on is unchanged."""
        with _lock:
            entry = self._load().get(key)
        if not entry:
            return None
        try:
            if entry["stamp"] != _stamp([Path(p) for p in entry["paths"]]):
                return None
        except OSError:
            return None
        return entry["value"]

    def put(self, key: str, paths: list[Path], value: Any) -> None:
        try:
            stamp = _stamp(paths)
        except OSError:
            return
        with _lock:
            data = self._load()
            data[key] = {"paths": [str(p) for p in paths], "stamp": stamp, "value": value}
            with contextlib.suppress(OSError):  # a read-only cache only costs time
                write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True))


def enabled() -> bool:
    return not os.environ.get("KILN_NO_MEMO")

"""What the last ``kiln index`` run saw, so the next one only reads what changed.

A SQLite file inside the output's ``.kiln/`` folder: one row per indexed wheel (its
size and mtime when read, its digest and page fields), the files left out and why,
upstream's last answer per project, each project's current page folder, every file
path ever published with its digest (a path is never reused for other bytes, so a
CDN can cache files forever), and what is waiting to be deleted. A run changes it in
one transaction that commits only after the new index is in place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from kiln.errors import IndexBuildError
from kiln.index.model import ProjectUpstream, Rejected, WheelEntry

SCHEMA_VERSION = "4"  # 2: wheels.hermetic; 3: wheels.record_file, .builders; 4: .tests
_WHEEL_COLUMNS = list(WheelEntry._fields)
_SELECT = ", ".join(_WHEEL_COLUMNS)


class WheelStat(NamedTuple):
    size: int
    mtime_ns: int
    record_sig: str
    attestation_sig: str

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wheels ({", ".join(
    c + (" TEXT PRIMARY KEY" if c == "filename" else "") for c in _WHEEL_COLUMNS)});
CREATE INDEX IF NOT EXISTS wheels_by_project ON wheels (project);
CREATE TABLE IF NOT EXISTS rejected (filename TEXT PRIMARY KEY, reason TEXT, size INTEGER,
                                     mtime_ns INTEGER);
CREATE TABLE IF NOT EXISTS upstream (project TEXT PRIMARY KEY, etag TEXT, body TEXT);
CREATE TABLE IF NOT EXISTS pages (project TEXT PRIMARY KEY, dir TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (slot INTEGER, project TEXT, dir TEXT NOT NULL,
                                  PRIMARY KEY (slot, project));
CREATE TABLE IF NOT EXISTS paths (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS garbage (path TEXT PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS listing (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
"""


class IndexState:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise IndexBuildError(f"{path}: cannot read the index state ({exc})",
                                  hint="delete it and run `kiln index` again; it rebuilds "
                                       "the state by reading every wheel") from exc
        version = self.get("schema")
        if version == "1":
            # Version 2 keeps each wheel's hermetic flag: add the column and read every
            # build record again, so the next run fills it in.
            self.db.execute("ALTER TABLE wheels ADD COLUMN hermetic")
            self.db.execute("UPDATE wheels SET record_sig = ''")
            self.put("schema", "2")
            version = "2"
        if version == "2":
            # Version 3 publishes each build record beside its wheel and keeps the wheel's
            # builders: add the columns and read every build record again.
            self.db.execute("ALTER TABLE wheels ADD COLUMN record_file")
            self.db.execute("ALTER TABLE wheels ADD COLUMN builders")
            self.db.execute("UPDATE wheels SET record_sig = '', record_file = 0, "
                            "builders = ''")
            self.put("schema", "3")
            version = "3"
        if version == "3":
            # Version 4 keeps what each wheel's tests found: read every build record again.
            self.db.execute("ALTER TABLE wheels ADD COLUMN tests")
            self.db.execute("UPDATE wheels SET record_sig = '', tests = ''")
            self.put("schema", SCHEMA_VERSION)
            version = SCHEMA_VERSION
        if version not in (None, SCHEMA_VERSION):
            raise IndexBuildError(f"{path}: index state version {version} is not "
                                  f"{SCHEMA_VERSION}", hint="delete it and run again")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # meta
    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # the wheelhouse as the last run saw it
    def listing(self) -> dict[str, str] | None:
        """File name -> ``"size:mtime_ns"`` of every wheel and sidecar the last run saw.

        One blob of tab-separated pairs rather than 200,000 rows: it loads in a tenth of
        the time. A blob that does not split into pairs is treated as absent.
        """
        row = self.db.execute("SELECT data FROM listing WHERE id = 1").fetchone()
        if row is None or not isinstance(row[0], str):
            return None
        parts = row[0].split("\t") if row[0] else []
        if len(parts) % 2:
            return None
        return dict(zip(parts[::2], parts[1::2], strict=True))

    def set_listing(self, files: dict[str, str]) -> None:
        # names are wheelhouse file names: a tab in one would not survive the split
        data = "\t".join(f"{name}\t{sig}" for name, sig in files.items() if "\t" not in name)
        self.db.execute("INSERT OR REPLACE INTO listing VALUES (1, ?)", (data,))

    # wheels
    def wheel_stats(self, only: Iterable[str] | None = None) -> dict[str, WheelStat]:
        """Per wheel (all, or ``only`` these), what tells whether it or its sidecars changed."""
        columns = "filename, size, mtime_ns, record_sig, attestation_sig"
        if only is None:
            rows: Iterable[Any] = self.db.execute(f"SELECT {columns} FROM wheels")  # noqa: S608
        else:
            rows = (row for name in only for row in self.db.execute(
                f"SELECT {columns} FROM wheels WHERE filename = ?", (name,)))  # noqa: S608
        return {row[0]: WheelStat._make(row[1:]) for row in rows}

    def wheel(self, filename: str) -> WheelEntry:
        row = self.db.execute(f"SELECT {_SELECT} FROM wheels WHERE filename = ?",  # noqa: S608
                              (filename,)).fetchone()
        return WheelEntry._make(row)

    def builders(self) -> dict[str, str]:
        """Each wheel's builders as stored ("" where not checked)."""
        rows = self.db.execute("SELECT filename, builders FROM wheels")
        return {str(r[0]): str(r[1] or "") for r in rows}

    def projects(self) -> set[str]:
        return {str(r[0]) for r in self.db.execute("SELECT DISTINCT project FROM wheels")}

    def wheels_of(self, projects: set[str]) -> dict[str, list[WheelEntry]]:
        """Every wheel of these projects, grouped by project (in sorted project order)."""
        found: dict[str, list[WheelEntry]] = {p: [] for p in sorted(projects)}
        if len(projects) > 200:  # one pass over the table beats thousands of lookups
            rows = self.db.execute(f"SELECT {_SELECT} FROM wheels")  # noqa: S608
        else:
            marks = ", ".join("?" * len(projects))
            rows = self.db.execute(f"SELECT {_SELECT} FROM wheels "  # noqa: S608
                                   f"WHERE project IN ({marks})", sorted(projects))
        for row in rows:
            entry = WheelEntry._make(row)
            if entry.project in found:
                found[entry.project].append(entry)
        return found

    def wheels(self) -> dict[str, WheelEntry]:
        # the column names are this module's constants, never input
        rows = self.db.execute(f"SELECT {', '.join(_WHEEL_COLUMNS)} FROM wheels")  # noqa: S608
        # SQLite gives booleans back as 0/1, which compare equal to False/True; the pages
        # convert them (render.py), so 100,000 rows load without touching each one
        return {row[0]: WheelEntry._make(row) for row in rows}

    def put_wheels(self, entries: Iterable[WheelEntry]) -> None:
        marks = ", ".join("?" * len(_WHEEL_COLUMNS))
        self.db.executemany(f"INSERT OR REPLACE INTO wheels VALUES ({marks})",  # noqa: S608
                            entries)

    def drop_wheels(self, filenames: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM wheels WHERE filename = ?", ((f,) for f in filenames))

    # rejected
    def rejected(self) -> dict[str, Rejected]:
        rows = self.db.execute("SELECT filename, reason, size, mtime_ns FROM rejected")
        return {r[0]: Rejected(*r) for r in rows}

    def set_rejected(self, rejected: Iterable[Rejected]) -> None:
        self.db.execute("DELETE FROM rejected")
        self.db.executemany("INSERT INTO rejected VALUES (?, ?, ?, ?)",
                            ((r.filename, r.reason, r.size, r.mtime_ns) for r in rejected))

    # upstream
    def upstream(self) -> dict[str, ProjectUpstream]:
        out = {}
        for project, etag, body in self.db.execute("SELECT project, etag, body FROM upstream"):
            data = json.loads(body)
            out[project] = ProjectUpstream(tuple(data["files"]), tuple(data["versions"]), etag)
        return out

    def put_upstream(self, project: str, value: ProjectUpstream) -> None:
        body = json.dumps({"files": list(value.files), "versions": list(value.versions)})
        self.db.execute("INSERT OR REPLACE INTO upstream VALUES (?, ?, ?)",
                        (project, value.etag, body))

    def drop_upstream(self, project: str) -> None:
        self.db.execute("DELETE FROM upstream WHERE project = ?", (project,))

    def clear_upstream(self) -> None:
        self.db.execute("DELETE FROM upstream")

    # pages
    def pages(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT project, dir FROM pages").fetchall())

    def put_pages(self, pages: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO pages VALUES (?, ?)", pages.items())

    def drop_pages(self, projects: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM pages WHERE project = ?", ((p,) for p in projects))

    # generation slots (see tree.py)
    def slot(self, slot: int) -> dict[str, str] | None:
        """What a slot holds (project -> page folder), or None when that is not known."""
        if self.get(f"slot{slot}") is None:
            return None
        rows = self.db.execute("SELECT project, dir FROM slots WHERE slot = ?", (slot,))
        return {str(p): str(d) for p, d in rows}

    def set_slot(self, slot: int, pages: dict[str, str], holds: dict[str, str] | None) -> None:
        if holds is None:
            self.db.execute("DELETE FROM slots WHERE slot = ?", (slot,))
            holds = {}
        self.db.executemany("INSERT OR REPLACE INTO slots VALUES (?, ?, ?)",
                            ((slot, p, d) for p, d in pages.items() if holds.get(p) != d))
        self.db.executemany("DELETE FROM slots WHERE slot = ? AND project = ?",
                            ((slot, p) for p in holds.keys() - pages.keys()))
        self.put(f"slot{slot}", "1")

    # paths and garbage
    def path_digest(self, path: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM paths WHERE path = ?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def paths(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, sha256 FROM paths").fetchall())

    def claim_paths(self, claims: dict[str, str]) -> None:
        """Record that each path holds these bytes, and that it (and its companions) stays."""
        self.db.executemany("INSERT OR REPLACE INTO paths VALUES (?, ?)", claims.items())
        self.keep(p + suffix for p in claims for suffix in ("", ".metadata", ".provenance"))

    def keep(self, paths: Iterable[str]) -> None:
        """Take paths that are in use again off the garbage list."""
        pending = {str(r[0]) for r in self.db.execute("SELECT path FROM garbage")}
        if pending:  # usually a handful, while a run keeps thousands of paths
            self.db.executemany("DELETE FROM garbage WHERE path = ?",
                                ((p,) for p in paths if p in pending))

    def add_garbage(self, paths: Iterable[str], generation: int) -> None:
        self.db.executemany("INSERT OR REPLACE INTO garbage VALUES (?, ?)",
                            ((p, generation) for p in paths))

    def take_garbage(self, up_to_generation: int) -> list[str]:
        rows = self.db.execute("SELECT path FROM garbage WHERE generation <= ?",
                               (up_to_generation,)).fetchall()
        self.db.execute("DELETE FROM garbage WHERE generation <= ?", (up_to_generation,))
        return [str(r[0]) for r in rows]


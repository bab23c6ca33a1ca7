"""How ``kiln recipe update`` shows what it found and what it changed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text

from kiln.cli.console import out, table
from kiln.errors import KilnError
from kiln.update import Applied, Update


@dataclass
class UpdateRow:
    path: Path
    update: Update | None = None
    applied: Applied | None = None
    error: KilnError | None = None

    def status(self, *, check: bool) -> str:
        if self.error is not None:
            return "error"
        assert self.update is not None
        if not self.update.changes:
            return "up to date"
        if check:
            return "behind"
        return "updated" if self.applied else "behind"


def update_json(row: UpdateRow, *, check: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"recipe": str(row.path), "status": row.status(check=check)}
    u = row.update
    if u is not None:
        data.update({
            "name": u.name, "latest": u.latest,
            "version": {"old": u.old_version, "new": u.new_version},
            "url": {"old": u.old_url, "new": u.new_url},
            "sha256": {"old": u.old_sha256, "new": u.new_sha256},
            "requires_python": u.requires_python,
            "unsupported_pythons": list(u.unsupported_pythons),
        })
    if row.applied is not None:
        data["lock"] = {"path": str(row.applied.lock.path), "sha256": row.applied.lock.sha256,
                        "changes": list(row.applied.lock_changes)}
        data["stale_comment_lines"] = list(row.applied.stale_comments)
    if row.error is not None:
        data["error"] = {"message": row.error.message, "hint": row.error.hint,
                         "exit_code": row.error.exit_code}
    return data


def print_update_rows(rows: list[UpdateRow], *, check: bool) -> None:
    cells = []
    for row in rows:
        u = row.update
        version = u.old_version if u else ""
        new = u.new_version if u and u.changes else ""
        detail = ""
        if row.error is not None:
            detail = row.error.message
        elif u is not None and u.unsupported_pythons:
            detail = (f"{u.name} {u.new_version} requires Python {u.requires_python}; the recipe "
                      f"lists {', '.join(u.unsupported_pythons)}")
        elif u is not None and not u.changes and u.latest != u.old_version:
            detail = f"the index's newest release is {u.latest}"
        cells.append([str(row.path), version, new, row.status(check=check), detail])
    table(None, ["recipe", "version", "new", "status", "detail"], cells)
    for row in rows:
        u = row.update
        if u is None or not u.changes or (row.applied is None and not check):
            continue
        out.print(Text(f"{row.path}: {u.name} {u.old_version} → {u.new_version}", style="bold"))
        if u.new_url != u.old_url:
            out.print(Text(f"  url     {u.old_url}\n       →  {u.new_url}"))
        out.print(Text(f"  sha256  {u.old_sha256}\n       →  {u.new_sha256}"))
        if row.applied is not None:
            lock = row.applied.lock
            changes = "; ".join(row.applied.lock_changes) or "same pins"
            out.print(Text(f"  lock    {lock.path}: {len(lock.pins)} pins ({changes})"))
            if row.applied.stale_comments:
                lines = ", ".join(map(str, row.applied.stale_comments))
                out.print(Text(f"  note    comments on line(s) {lines} still name "
                               f"{u.old_version}; kiln leaves comments as they are",
                               style="yellow"))

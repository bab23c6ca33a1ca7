"""The output folder, laid out so that readers never see half an index.

::

    public/
      simple -> .kiln/gen/1/simple               the one symlink a run swaps
      files/<project>/<wheel>                    wheels, .metadata, .provenance
      .kiln/gen/{0,1,2}/simple/index.{html,json} the project list, per slot
      .kiln/gen/1/simple/<project> -> ../../../../.kiln/pages/<project>/<digest>
      .kiln/pages/<project>/<digest>/index.{html,json}   immutable page pairs
      .kiln/state.sqlite3, .kiln/lock

Why this shape: a generation is only a folder of symlinks (one per project, plus the
project list), and switching ``simple`` to it is one ``rename`` — atomic on POSIX. A
reader resolves each request against one generation: the old index or the new one,
never a mix. Generations live in three slots used in turn: the current one, the one
before it (for readers still at work), and the one being written, which is brought up
to date from what it held two runs ago by replacing only the links that differ — so a
run costs what changed, not one link per project (creating and deleting 5,000 links
took seconds on a busy disk). Files are
copied (from the very bytes that were hashed; never hard-linked, as a wheelhouse file
changed in place must not change a published one) before any page links to them, and
a path never holds two different contents (a rebuilt wheel with a new digest goes to
``files/<project>/<digest>/<wheel>``), so a page served a moment before the swap still
links to bytes with its hashes. Pages
and files that no generation in the three slots uses are deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import IndexBuildError

SLOTS = 3  # the current generation, the one before, and the one being written


class OutputTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.private = root / ".kiln"
        self.simple = root / "simple"
        self.state_path = self.private / "state.sqlite3"

    @contextmanager
    def locked(self) -> Iterator[OutputTree]:
        """Hold the output for one run; a second ``kiln index`` on it waits or fails."""
        if self.root.exists() and not self.root.is_dir():
            raise IndexBuildError(f"{self.root}: exists and is not a folder",
                                  hint="give -o a folder for the index")
        if self.simple.exists() and not self.simple.is_symlink():
            raise IndexBuildError(
                f"{self.simple}: a folder kiln did not make is in the way",
                hint="give -o an empty folder, or one an earlier `kiln index` wrote")
        self.private.mkdir(parents=True, exist_ok=True)
        with (self.private / "lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexBuildError(f"{self.root}: another `kiln index` is writing it",
                                      hint="wait for it to finish") from exc
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # generations
    def current_slot(self) -> int | None:
        """Which slot ``simple`` points at, if it points at one."""
        try:
            name = self.simple.readlink().parent.name
        except OSError:
            return None
        return int(name) if name.isdigit() and int(name) < SLOTS else None

    def slot_dir(self, slot: int) -> Path:
        return self.private / "gen" / str(slot) / "simple"

    def write_slot(self, slot: int, pages: dict[str, str], holds: dict[str, str] | None,
                   root_html: bytes, root_json: bytes) -> None:
        """Make a slot hold ``pages`` (project -> page folder) and this project list.

        ``holds`` is what the slot held when it was last written (from the state): then
        only the links that differ are replaced, each by a rename. The slot being written
        is never the one ``simple`` points at, nor the one before it.
        """
        simple = self.slot_dir(slot)
        if holds is None or not simple.is_dir():
            if simple.exists():
                shutil.rmtree(simple)
            simple.mkdir(parents=True)
            holds = {}
        for project, page_dir in pages.items():
            if holds.get(project) != page_dir:
                link = simple / f".{project}.tmp"
                link.unlink(missing_ok=True)
                link.symlink_to(f"../../../../{page_dir}")
                link.replace(simple / project)
        for project in holds.keys() - pages.keys():
            (simple / project).unlink(missing_ok=True)
        _replace_with(simple / "index.json", root_json)
        _replace_with(simple / "index.html", root_html)

    def swap(self, slot: int) -> None:
        """Point ``simple`` at a slot in one atomic rename."""
        link = self.root / f".simple.{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(f".kiln/gen/{slot}/simple")
        link.replace(self.simple)

    # pages
    def write_pages(self, project: str, html: bytes, json_body: bytes) -> str:
        """Store a project's page pair in its own immutable folder; return it (root-relative)."""
        digest = hashlib.sha256(json_body + b"\0" + html).hexdigest()[:20]
        rel = f".kiln/pages/{project}/{digest}"
        folder = self.root / rel
        if not (folder / "index.html").exists():  # written last, so it marks a whole pair
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "index.json").write_bytes(json_body)
            _replace_with(folder / "index.html", html)
        return rel

    # files
    def replace_file(self, rel: str, data: bytes) -> None:
        """Replace a file pages may already link to (a provenance file), whole."""
        _replace_with(self.root / rel, data)

    def delete(self, rel: str) -> None:
        path = self.root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        # drop the folders that emptied, up to files/ or .kiln/pages/
        parent = path.parent
        while parent != self.root and parent.name not in ("files", "pages"):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _replace_with(target: Path, data: bytes) -> None:
    # Atomic for readers (rename); not fsynced: a crash loses the run, never a page's
    # consistency, and 100,000 fsyncs would make a large index take minutes.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)

"""The output folder, laid out so that readers never see half an index.

::

    public/
      simple -> .kiln/gen/000007/simple          the one symlink a run swaps
      files/<project>/<wheel>                    wheels, .metadata, .provenance
      .kiln/gen/000007/simple/index.{html,json}  the project list of generation 7
      .kiln/gen/000007/simple/<project> -> ../../../../.kiln/pages/<project>/<digest>
      .kiln/pages/<project>/<digest>/index.{html,json}   immutable page pairs
      .kiln/state.sqlite3, .kiln/lock

Why this shape: a generation is only a folder of symlinks (one per project, plus the
project list), so making one costs a few milliseconds even with 5,000 projects, and
switching ``simple`` to it is one ``rename`` — atomic on POSIX. A reader resolves each
request against one generation: the old index or the new one, never a mix. Files are
copied (from the very bytes that were hashed; never hard-linked, as a wheelhouse file
changed in place must not change a published one) before any page links to them, and
a path never holds two different contents (a rebuilt wheel with a new digest goes to
``files/<project>/<digest>/<wheel>``), so a page served a moment before the swap still
links to bytes with its hashes. Old
generations, pages and files are deleted one run later, after readers have moved on.
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

GEN_DIGITS = 6


class OutputTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.private = root / ".kiln"
        self.simple = root / "simple"
        self.state_path = self.private / "state.sqlite3"
        self.incoming = self.private / "incoming"
        self._root, self._incoming = os.fspath(root), os.fspath(self.incoming)

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
    def current_generation(self) -> int:
        try:
            target = self.simple.readlink()
        except OSError:
            return 0
        name = target.parent.name
        return int(name) if name.isdigit() else 0

    def gen_dir(self, generation: int) -> Path:
        return self.private / "gen" / f"{generation:0{GEN_DIGITS}d}"

    def write_generation(self, generation: int, pages: dict[str, str], root_html: bytes,
                         root_json: bytes) -> None:
        """A new generation: the project list, and one symlink per project to its pages."""
        simple = self.gen_dir(generation) / "simple"
        if simple.parent.exists():  # left by a run that died before its swap
            shutil.rmtree(simple.parent)
        simple.mkdir(parents=True)
        for project, page_dir in pages.items():
            (simple / project).symlink_to(f"../../../../{page_dir}")
        (simple / "index.html").write_bytes(root_html)
        (simple / "index.json").write_bytes(root_json)

    def swap(self, generation: int) -> None:
        """Point ``simple`` at a generation in one atomic rename."""
        link = self.root / f".simple.{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(f".kiln/gen/{generation:0{GEN_DIGITS}d}/simple")
        link.replace(self.simple)

    def prune_generations(self, keep_from: int) -> None:
        gens = self.private / "gen"
        if not gens.is_dir():
            return
        for entry in os.scandir(gens):
            if entry.name.isdigit() and int(entry.name) < keep_from:
                shutil.rmtree(entry.path, ignore_errors=True)

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
    def fresh_incoming(self) -> Path:
        """An empty folder for the copies readers make (inside the output: same file system)."""
        if self.incoming.exists():  # left by a run that died
            shutil.rmtree(self.incoming)
        self.incoming.mkdir(parents=True)
        return self.incoming

    def adopt(self, filename: str, rel: str, *, claimed: bool) -> None:
        """Move a wheel copy (and its ``.metadata``) from incoming to ``rel``.

        ``rel`` is either new — no page links to it yet, so it is simply renamed into
        place — or already ``claimed`` for exactly these bytes, and then left alone.
        No fsync: a run that dies before its swap left nothing a page links to.
        """
        # os and strings, not pathlib: this runs once per new wheel, 100,000 times in a
        # full index of a large wheelhouse, and Path objects cost more than the renames
        source = f"{self._incoming}/{filename}"
        target = f"{self._root}/{rel}"
        if claimed and os.path.exists(target):  # noqa: PTH110
            os.unlink(source)  # noqa: PTH108
        else:
            try:
                os.replace(source, target)  # noqa: PTH105
            except FileNotFoundError:
                os.makedirs(os.path.dirname(target), exist_ok=True)  # noqa: PTH103, PTH120
                os.replace(source, target)  # noqa: PTH105
        os.replace(source + ".metadata", target + ".metadata")  # noqa: PTH105

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

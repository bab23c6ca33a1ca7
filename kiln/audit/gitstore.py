"""Git plumbing for the audit branch: objects and refs only, never the work tree.

Every command runs with an explicit ``--git-dir`` and no work tree, so nothing here can
touch the user's checkout, index or HEAD: blobs come from ``hash-object -w``, trees from
``mktree``, commits from ``commit-tree``, and the branch moves only through
``update-ref NEW OLD``, which git applies as a compare-and-swap.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln import proc
from kiln.errors import AuditError

# Variables a git hook or a wrapper may have set that would point our commands at another
# repository, index or work tree than the one we resolved.
_FOREIGN_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX",
                    "GIT_COMMON_DIR", "GIT_NAMESPACE")
_DEFAULT_NAME = "kiln"
_DEFAULT_EMAIL = "kiln@localhost"
_BATCH = 400  # objects per `cat-file --batch` call, so a long branch is never read at once


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    oid: str
    name: str

    def line(self) -> bytes:
        return f"{self.mode} {self.type} {self.oid}\t{self.name}".encode() + b"\0"


@dataclass(frozen=True)
class Identity:
    """Who a commit names, and when (seconds since the epoch, always written as UTC)."""

    name: str
    email: str
    when: int

    def env(self, role: str) -> dict[str, str]:
        return {f"GIT_{role}_NAME": self.name, f"GIT_{role}_EMAIL": self.email,
                f"GIT_{role}_DATE": f"@{self.when} +0000"}


@dataclass(frozen=True)
class Commit:
    oid: str
    tree: str
    parents: tuple[str, ...]
    author: Identity
    committer: Identity
    message: str

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class Change:
    """One path a commit changed against its parent: ``A``dded, ``M``odified, ``D``eleted …"""

    status: str
    path: str
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str


class GitStore:
    """One repository's object database and refs, addressed through its git directory."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._env = _clean_env(os.environ)
        self._zero: str | None = None
        self._who: tuple[str, str] | None = None

    @classmethod
    def discover(cls, start: Path) -> GitStore:
        """The repository that ``start`` lies in (like git itself finds it)."""
        if not start.exists():
            raise AuditError(f"{start}: no such folder")
        result = proc.capture(["git", "-C", str(start), "rev-parse", "--absolute-git-dir"],
                              what="git rev-parse", error=AuditError,
                              env=_clean_env(os.environ), check=False)
        if result.returncode != 0:
            why = result.stderr.decode(errors="replace").strip().splitlines()
            raise AuditError(f"{start} is not in a git repository"
                             + (f" ({why[-1]})" if why else ""),
                             hint="run kiln inside the repository that keeps the audit branch "
                                  "(or `git init` one), or pass --repo DIR")
        return cls(Path(result.stdout.decode().strip()))

    # -- running git -------------------------------------------------------------------

    def git(self, *args: str, stdin: bytes | None = None, check: bool = True,
            env: Mapping[str, str] | None = None,
            what: str = "") -> subprocess.CompletedProcess[bytes]:
        argv = ["git", f"--git-dir={self.git_dir}", *args]
        return proc.capture(argv, what=what or f"git {args[0]}", error=AuditError,
                            env={**self._env, **(env or {})}, stdin=stdin, check=check)

    def text(self, *args: str, stdin: bytes | None = None) -> str:
        return self.git(*args, stdin=stdin).stdout.decode().strip()

    @property
    def zero(self) -> str:
        """The all-zero object id of this repository's hash (sha1 or sha256)."""
        if self._zero is None:
            fmt = self.git("rev-parse", "--show-object-format", check=False).stdout.decode()
            self._zero = "0" * (64 if fmt.strip() == "sha256" else 40)
        return self._zero

    def who(self) -> tuple[str, str]:
        """(name, email): the user's git identity if they have one, else kiln's."""
        if self._who is None:
            def config(key: str, env_name: str, default: str) -> str:
                if os.environ.get(env_name):
                    return os.environ[env_name]
                result = self.git("config", "--get", key, check=False)
                return result.stdout.decode().strip() or default

            self._who = (config("user.name", "GIT_AUTHOR_NAME", _DEFAULT_NAME),
                         config("user.email", "GIT_AUTHOR_EMAIL", _DEFAULT_EMAIL))
        return self._who

    # -- refs ----------------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """The commit ``rev`` names, or None when it names none."""
        result = self.git("rev-parse", "--verify", "--quiet", "--end-of-options",
                          f"{rev}^{{commit}}", check=False)
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    def compare_and_swap(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Move ``ref`` from ``old`` (None: it must not exist) to ``new``; False if it moved."""
        result = self.git("update-ref", "-m", reason, ref, new, old or self.zero, check=False)
        if result.returncode == 0:
            return True
        if self.resolve(ref) != old:
            return False  # someone else moved it first
        why = result.stderr.decode(errors="replace")
        if ".lock" in why or "File exists" in why or "unable to lock" in why.lower():
            return False  # another writer held the ref's lock file for a moment
        raise AuditError(f"git update-ref {ref} failed: {why.strip() or 'no output'}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        result = self.git("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        if result.returncode not in (0, 1):
            why = result.stderr.decode(errors="replace").strip()
            raise AuditError(f"git merge-base --is-ancestor {ancestor} {descendant}: {why}")
        return result.returncode == 0

    # -- objects -------------------------------------------------------------------------

    def write_blob(self, data: bytes) -> str:
        return self.text("hash-object", "-w", "--no-filters", "--stdin", stdin=data)

    def ls_tree(self, tree: str | None) -> list[TreeEntry]:
        if tree is None:
            return []
        raw = self.git("ls-tree", "-z", "--full-tree", tree).stdout
        entries = []
        for item in raw.split(b"\0"):
            if not item:
                continue
            meta, _, name = item.decode().partition("\t")
            mode, kind, oid = meta.split(" ")
            entries.append(TreeEntry(mode, kind, oid, name))
        return entries

    def make_tree(self, entries: Iterable[TreeEntry]) -> str:
        return self.text("mktree", "-z", stdin=b"".join(e.line() for e in entries))

    def commit_tree(self, tree: str, parent: str | None, message: str, author: Identity,
                    committer: Identity) -> str:
        args = ["commit-tree", "--no-gpg-sign", tree, "-m", message]
        if parent:
            args += ["-p", parent]
        return self.git(*args, env={**author.env("AUTHOR"), **committer.env("COMMITTER")}
                        ).stdout.decode().strip()

    def read_objects(self, oids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """Object id → (type, content) through ``cat-file --batch``; missing ones are left out."""
        found: dict[str, tuple[str, bytes]] = {}
        for start in range(0, len(oids), _BATCH):
            chunk = oids[start:start + _BATCH]
            raw = self.git("cat-file", "--batch", stdin="".join(f"{o}\n" for o in chunk).encode(),
                           what="git cat-file").stdout
            found.update(_parse_batch(raw))
        return found

    def read_blob(self, oid: str) -> bytes:
        kind, data = self.read_objects([oid]).get(oid, ("missing", b""))
        if kind != "blob":
            raise AuditError(f"object {oid} is not a blob in {self.git_dir}")
        return data

    def commits(self, tip: str) -> list[Commit]:
        """Every commit reachable from ``tip``, oldest first (parents before children)."""
        ids = self.text("rev-list", "--reverse", "--topo-order", tip).split()
        objects = self.read_objects(ids)
        return [parse_commit(oid, objects[oid][1]) for oid in ids]

    def range_commits(self, exclude: str | None, tip: str) -> list[Commit]:
        """Commits reachable from ``tip`` but not from ``exclude``, oldest first."""
        if exclude is None:
            return self.commits(tip)
        ids = self.text("rev-list", "--reverse", "--topo-order", tip, f"^{exclude}").split()
        objects = self.read_objects(ids)
        return [parse_commit(oid, objects[oid][1]) for oid in ids]

    def changes(self, commits: Sequence[str]) -> dict[str, list[Change]]:
        """What each commit changed against its first parent (roots: against nothing)."""
        if not commits:
            return {}
        raw = self.git("diff-tree", "--stdin", "-r", "--root", "--always", "--no-renames",
                       "--no-abbrev", "-z", stdin="".join(f"{c}\n" for c in commits).encode(),
                       what="git diff-tree").stdout
        return parse_diff_tree(raw)


def _clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in _FOREIGN_GIT_ENV}
    env["LC_ALL"] = "C"  # git's messages are matched (lock contention) and quoted in English
    return env


def identity(store: GitStore, when: float | None = None) -> Identity:
    """Who writes the commit (see ``GitStore.who``), dated now, always in UTC."""
    name, email = store.who()
    return Identity(name=name, email=email, when=int(time.time() if when is None else when))


def _parse_batch(raw: bytes) -> Iterator[tuple[str, tuple[str, bytes]]]:
    pos = 0
    while pos < len(raw):
        end = raw.index(b"\n", pos)
        header = raw[pos:end].decode().split(" ")
        pos = end + 1
        if len(header) == 2 and header[1] == "missing":
            continue
        oid, kind, size = header[0], header[1], int(header[2])
        yield oid, (kind, raw[pos:pos + size])
        pos += size + 1  # the content is followed by a newline


def _parse_ident(value: str) -> Identity:
    # "Name <email> 1700000000 +0000"
    name, _, rest = value.partition(" <")
    email, _, stamp = rest.partition("> ")
    seconds = stamp.split(" ")[0]
    return Identity(name=name, email=email, when=int(seconds) if seconds.isdigit() else 0)


def parse_commit(oid: str, raw: bytes) -> Commit:
    """A raw commit object (as ``cat-file`` gives it) → ``Commit``."""
    text = raw.decode(errors="replace")
    head, _, message = text.partition("\n\n")
    tree = ""
    parents: list[str] = []
    author = committer = Identity("", "", 0)
    for line in head.split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author":
            author = _parse_ident(value)
        elif key == "committer":
            committer = _parse_ident(value)
    return Commit(oid=oid, tree=tree, parents=tuple(parents), author=author,
                  committer=committer, message=message)


def parse_diff_tree(raw: bytes) -> dict[str, list[Change]]:
    """``git diff-tree --stdin -r -z --always`` output → commit → its changes."""
    out: dict[str, list[Change]] = {}
    current: list[Change] | None = None
    items = raw.split(b"\0")
    i = 0
    while i < len(items):
        item = items[i].decode(errors="replace").strip("\n")
        i += 1
        if not item:
            continue
        if item.startswith(":"):
            old_mode, new_mode, old_oid, new_oid, status = item[1:].split(" ")
            path = items[i].decode(errors="replace")
            i += 1
            if current is not None:
                current.append(Change(status[:1], path, old_mode, new_mode, old_oid, new_oid))
        else:
            current = out.setdefault(item, [])
    return out

"""``kiln recipe update``: move a recipe to a newer release, keeping its author's text.

Only three values change: ``[package] version`` and ``[source] url`` and ``sha256``. They
are replaced where they stand in the file, so comments, order and layout stay as the
author wrote them; the result is parsed again and must equal the old recipe with exactly
those three values changed, or nothing is written. The lock is then resolved for the new
sdist (whose bytes are checked against the index's sha256) and both files are written
atomically.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from kiln import toml
from kiln.errors import RecipeError, UsageError
from kiln.files import write_atomic
from kiln.installer import IndexOptions
from kiln.lock import resolve_lock
from kiln.lockfile import Lock, read_lock
from kiln.pypi import ProjectPage, project_page
from kiln.recipe import Recipe, parse_recipe

# The values an update rewrites: (table, key).
_FIELDS = (("package", "version"), ("source", "url"), ("source", "sha256"))
_HEADER = re.compile(r"^\s*\[\s*(?P<name>[A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?$")
_KEY_VALUE = re.compile(
    r"""^(?P<lead>\s*(?P<key>[A-Za-z0-9_-]+|"[A-Za-z0-9_-]+")\s*=\s*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*')(?P<rest>.*)$""")


@dataclass(frozen=True)
class Update:
    """What an update of one recipe changes (nothing, when it is current)."""

    path: Path
    name: str
    old_version: str
    new_version: str
    old_url: str
    new_url: str
    old_sha256: str
    new_sha256: str
    latest: str  # the index's newest release with an sdist
    requires_python: str | None = None
    unsupported_pythons: tuple[str, ...] = ()  # the recipe's Pythons the new release refuses

    @property
    def changes(self) -> bool:
        return (self.old_version, self.old_url, self.old_sha256) != (
            self.new_version, self.new_url, self.new_sha256)


@dataclass(frozen=True)
class Applied:
    update: Update
    lock: Lock
    lock_changes: tuple[str, ...] = ()  # "setuptools 75.1.0 → 80.9.0", "+ cython 3.1.2"
    stale_comments: tuple[int, ...] = field(default=())  # lines whose comments name the old version


def plan_update(recipe: Recipe, *, to: str | None = None, index_url: str | None = None,
                page: ProjectPage | None = None) -> Update:
    """Where ``recipe`` would move: to ``to``, or to the newest release if that is newer."""
    if to is not None:
        try:
            Version(to)
        except InvalidVersion as exc:
            raise UsageError(f"--to {to!r} is not a version",
                             hint="for example --to 1.2.3, as the index lists it") from exc
    page = page or project_page(recipe.name, index_url)
    latest = page.latest()
    if to is not None:
        target = to
    elif Version(latest) > Version(recipe.version):
        target = latest
    else:
        target = recipe.version  # current (or ahead of the index's newest final release)
    if Version(target) == Version(recipe.version):
        return Update(path=recipe.path, name=recipe.name, old_version=recipe.version,
                      new_version=recipe.version, old_url=recipe.url, new_url=recipe.url,
                      old_sha256=recipe.source_sha256, new_sha256=recipe.source_sha256,
                      latest=latest)
    sdist = page.sdist(target)
    if sdist.yanked:
        raise RecipeError(f"{recipe.path}: {sdist.filename} is yanked on the index",
                          hint="pick another version with --to")
    if not sdist.sha256:
        raise RecipeError(f"{recipe.path}: the index gives no sha256 for {sdist.filename}",
                          hint="update the recipe by hand with a hash you trust")
    return Update(path=recipe.path, name=recipe.name, old_version=recipe.version,
                  new_version=target, old_url=recipe.url, new_url=sdist.url,
                  old_sha256=recipe.source_sha256, new_sha256=sdist.sha256, latest=latest,
                  requires_python=sdist.requires_python,
                  unsupported_pythons=unsupported_pythons(recipe.pythons, sdist.requires_python))


def unsupported_pythons(pythons: tuple[str, ...], requires_python: str | None) -> tuple[str, ...]:
    try:
        spec = SpecifierSet(requires_python or "")
    except InvalidSpecifier:
        return ()  # an index that lists nonsense does not get to block the update
    return tuple(py for py in pythons
                 if not (spec.contains(f"{py}.0", prereleases=True)
                         or spec.contains(f"{py}.99", prereleases=True)))


def _toml_string(value: str, like: str) -> str:
    """``value`` as a TOML string, in the quotes the author used where it fits in them."""
    if like.startswith("'") and "'" not in value and "\n" not in value:
        return f"'{value}'"
    return toml.dumps({"v": value})[4:].strip()


class _Scanner:
    """Tracks, line by line, whether the next line starts inside a multi-line string or a
    multi-line array, where a ``[table]`` or ``key =`` look-alike is not one."""

    def __init__(self) -> None:
        self.string: str | None = None  # the open multi-line delimiter, ''' or \"\"\"
        self.depth = 0  # open [ and { of a value

    @property
    def at_top(self) -> bool:
        return self.string is None and self.depth == 0

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        while i < n:
            if self.string is not None:
                end = line.find(self.string, i)
                if end < 0:
                    return
                i = end + 3
                self.string = None
                continue
            ch = line[i]
            if ch == "#":
                return
            if line.startswith(('"""', "'''"), i):
                self.string = line[i:i + 3]
                i += 3
            elif ch == '"':
                i += 1
                while i < n and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
            elif ch == "'":
                end = line.find("'", i + 1)
                i = n if end < 0 else end + 1
            elif ch in "[{":
                self.depth += 1
                i += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
                i += 1
            else:
                i += 1


def rewrite_recipe_text(text: str, path: Path, *, version: str, url: str, sha256: str) -> str:
    """``text`` with ``[package] version`` and ``[source] url``/``sha256`` replaced in place."""
    wanted = {("package", "version"): version, ("source", "url"): url,
              ("source", "sha256"): sha256}
    found: set[tuple[str, str]] = set()
    lines = text.splitlines(keepends=True)
    scanner = _Scanner()
    table = ""
    for number, line in enumerate(lines):
        if scanner.at_top:
            header = _HEADER.match(line)
            if header:
                table = header.group("name")
                continue
            match = _KEY_VALUE.match(line.rstrip("\r\n"))
            if match:
                key = (table, match.group("key").strip('"'))
                if key in wanted and key not in found:
                    ending = line[len(line.rstrip("\r\n")):]
                    lines[number] = (match.group("lead")
                                     + _toml_string(wanted[key], match.group("value"))
                                     + match.group("rest") + ending)
                    found.add(key)
                    continue
        scanner.feed(line)
    missing = [f"[{t}] {k}" for t, k in _FIELDS if (t, k) not in found]
    if missing:
        raise RecipeError(f"{path}: cannot find {', '.join(missing)} as a plain "
                          "`key = \"value\"` line to rewrite",
                          hint="write them that way under their [table] headers, or edit the "
                               "recipe by hand")
    new_text = "".join(lines)
    _check_only_those_changed(text, new_text, path, wanted)
    return new_text


def _check_only_those_changed(old: str, new: str, path: Path,
                              wanted: dict[tuple[str, str], str]) -> None:
    try:
        before, after = toml.loads(old), toml.loads(new)
    except toml.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: the rewritten recipe is not valid TOML ({exc})",
                          hint="edit the recipe by hand") from exc
    expected = copy.deepcopy(before)
    for (table, key), value in wanted.items():
        expected.setdefault(table, {})[key] = value
    if after != expected:
        raise RecipeError(f"{path}: rewriting the version, url and sha256 would change "
                          "something else too; nothing was written",
                          hint="edit the recipe by hand")


def stale_comment_lines(text: str, old_version: str) -> tuple[int, ...]:
    """1-based numbers of lines whose comment names ``old_version`` (left for a person)."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(old_version)}(?![\w]|\.\d)")
    return tuple(i for i, line in enumerate(text.splitlines(), 1)
                 if "#" in line and pattern.search(line[line.index("#"):]))


def lock_changes(old: Lock | None, new: Lock) -> tuple[str, ...]:
    before = {(p.name, p.marker): p.version for p in old.pins} if old else {}
    after = {(p.name, p.marker): p.version for p in new.pins}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        name = key[0] + (f" ; {key[1]}" if key[1] else "")
        if key not in after:
            changes.append(f"- {name} {before[key]}")
        elif key not in before:
            changes.append(f"+ {name} {after[key]}")
        elif before[key] != after[key]:
            changes.append(f"{name} {before[key]} → {after[key]}")
    return tuple(changes)


def apply_update(update: Update, recipe: Recipe, *, cache: Path, index: IndexOptions,
                 python_paths: dict[str, Path] | None = None) -> Applied:
    """Rewrite the recipe and re-lock it: both files change, or neither does."""
    if update.unsupported_pythons:
        raise RecipeError(
            f"{recipe.path}: {recipe.name} {update.new_version} requires Python "
            f"{update.requires_python}; the recipe builds for "
            f"{', '.join(update.unsupported_pythons)}",
            hint="remove those from [build] python first, or pass --to an older version")
    text = recipe.path.read_text(encoding="utf-8")
    new_text = rewrite_recipe_text(text, recipe.path, version=update.new_version,
                                   url=update.new_url, sha256=update.new_sha256)
    new_recipe = parse_recipe(new_text, recipe.path)  # what we write must load
    try:
        old_lock = read_lock(recipe)
    except RecipeError:
        old_lock = None  # a broken lock is what an update replaces anyway
    old_lock_bytes = recipe.lock_path.read_bytes() if recipe.lock_path.exists() else None
    # resolve_lock fetches the new sdist (hash checked) and writes the lock only on success.
    lock = resolve_lock(new_recipe, cache=cache, index=index, python_paths=python_paths)
    try:
        write_atomic(recipe.path, new_text)
    except OSError:
        if old_lock_bytes is not None:
            write_atomic(recipe.lock_path, old_lock_bytes)
        raise
    return Applied(update=update, lock=lock, lock_changes=lock_changes(old_lock, lock),
                   stale_comments=stale_comment_lines(new_text, update.old_version))

"""The lock file: its format, reading it, and whether it still fits its recipe.

Reading a lock needs none of what resolving one does (build environments, the sdist, the
interpreters), so ``kiln recipe check`` and the cached build import only this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kiln.errors import LockError, RecipeError
from kiln.files import sha256_bytes
from kiln.recipe import Recipe, canonical_name

LOCK_FORMAT = "kiln lock v1"
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
    r"\s*(?:;\s*(?P<marker>[^-][^\\]*?))?\s*(?P<hashes>(?:--hash=\S+\s*)*)$"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]  # sha256 hex digests (any one of them may be installed)
    marker: str = ""


@dataclass(frozen=True)
class Lock:
    path: Path
    sha256: str
    sdist_sha256: str
    pythons: tuple[str, ...]
    declared: tuple[str, ...]
    pins: tuple[Pin, ...]
    resolver: str
    text: str = field(default="", compare=False, repr=False)  # the file as read (sha256 is of it)

    def pins_for(self, python: str) -> tuple[Pin, ...]:
        """The pins whose markers hold for CPython ``python`` on this platform."""
        from packaging.markers import Marker

        env = {"python_version": python, "python_full_version": f"{python}.0",
               "implementation_name": "cpython", "platform_python_implementation": "CPython"}
        chosen = []
        for pin in self.pins:
            if not pin.marker or Marker(pin.marker).evaluate(env):
                chosen.append(pin)
        return tuple(chosen)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_lock(text: str, path: Path) -> Lock:
    header: dict[str, str] = {}
    first = text.splitlines()[0] if text else ""
    if not first.startswith(f"# {LOCK_FORMAT}"):
        raise RecipeError(f"{path}: not a kiln lock (first line must start with "
                          f"'# {LOCK_FORMAT}')", hint="regenerate it with `kiln lock`")
    for line in text.splitlines():
        if line.startswith("# ") and ": " in line:
            key, _, value = line[2:].partition(": ")
            header.setdefault(key.strip(), value.strip())
    for key in ("sdist-sha256", "pythons"):
        if key not in header:
            raise RecipeError(f"{path}: header line '# {key}: …' is missing",
                              hint="regenerate it with `kiln lock`")
    pins = []
    for line in _logical_lines(text):
        match = _PIN.match(line)
        if not match:
            raise RecipeError(f"{path}: '{line[:80]}' is not a pinned requirement with hashes",
                              hint="regenerate it with `kiln lock`")
        hashes = tuple(h.split(":", 1)[1] for h in match.group("hashes").split()
                       if h.startswith("--hash=sha256:"))
        if not hashes:
            raise RecipeError(f"{path}: {match.group('name')} has no sha256 hash",
                              hint="regenerate it with `kiln lock`")
        pins.append(Pin(canonical_name(match.group("name")), match.group("version"), hashes,
                        (match.group("marker") or "").strip()))
    declared = tuple(x.strip() for x in header.get("requires", "").split(" | ") if x.strip())
    return Lock(path=path, text=text, sha256=sha256_bytes(text.encode()),
                sdist_sha256=header["sdist-sha256"], pythons=tuple(header["pythons"].split()),
                declared=declared, pins=tuple(pins), resolver=header.get("resolver", ""))


def read_lock(recipe: Recipe) -> Lock | None:
    path = recipe.lock_path
    if not path.exists():
        return None
    return parse_lock(path.read_text(encoding="utf-8"), path)


def check_lock(recipe: Recipe, lock: Lock, pythons: tuple[str, ...]) -> None:
    """Refuse a lock made for another sdist or for fewer Pythons than the build needs."""
    if lock.sdist_sha256 != recipe.source_sha256:
        raise LockError(f"{lock.path}: made for an sdist with sha256 {lock.sdist_sha256[:12]}…, "
                        f"but {recipe.path} now names {recipe.source_sha256[:12]}…",
                        hint=f"run `kiln lock {recipe.path}` to lock the new sdist's requirements")
    undeclared = [r for r in recipe.build_requires if r not in lock.declared]
    if undeclared:
        raise LockError(f"{lock.path}: made before the recipe asked for {', '.join(undeclared)} "
                        "([build] requires)",
                        hint=f"run `kiln lock {recipe.path}` to lock them too")
    missing = [py for py in pythons if py not in lock.pythons]
    if missing:
        raise LockError(f"{lock.path}: resolved for Python {', '.join(lock.pythons)}, "
                        f"not for {', '.join(missing)}",
                        hint=f"run `kiln lock {recipe.path}` after changing [build] python")


# Locked like the build requirements, in their own file (`NAME.test.lock`): a test
# requirement never enters a build environment, and the build lock (whose digest is part
# of the build id) does not change when only the tests do.

def test_lock_path(recipe: Recipe) -> Path:
    return recipe.path.with_suffix(".test.lock")


def read_test_lock(recipe: Recipe) -> Lock | None:
    path = test_lock_path(recipe)
    if not path.exists():
        return None
    return parse_lock(path.read_text(encoding="utf-8"), path)


def test_lock_is_current(recipe: Recipe, lock: Lock, pythons: tuple[str, ...]) -> bool:
    """Made for this sdist, these [test] requires and (at least) these Pythons."""
    return (lock.sdist_sha256 == recipe.source_sha256
            and set(lock.declared) == set(recipe.test.requires)
            and all(py in lock.pythons for py in pythons))

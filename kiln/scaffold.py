"""``kiln recipe new``: a recipe written from what the index says about a release."""

from __future__ import annotations

import sys
import tarfile
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from kiln import http, toml
from kiln.archive import read_members
from kiln.errors import EnvironmentSetupError, RecipeError, UsageError
from kiln.files import write_atomic, write_new
from kiln.pep517 import backend_of, sdist_pyproject
from kiln.pypi import IndexFile, project_page
from kiln.recipe import parse_recipe, render_recipe
from kiln.toolchain.interpreters import find_interpreter
from kiln.toolchain.targets import host_target

_NOT_PACKAGES = {"test", "tests", "testing", "doc", "docs", "example", "examples", "benchmark",
                 "benchmarks", "bench", "scripts", "tools", "build", "ci", "src", "third_party",
                 # top-level helper scripts of a source tree, never what a wheel installs
                 "setup", "noxfile", "conftest", "fabfile", "tasks", "versioneer", "dodo",
                 "pavement", "runtests", "run_tests", "bootstrap", "configure", "setupext"}


@dataclass(frozen=True)
class NewRecipe:
    path: Path
    name: str
    version: str
    sdist: IndexFile
    pythons: tuple[str, ...]
    imports: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what to expect from this sdist's build, also in the recipe


def build_notes(archive: Path) -> tuple[str, ...]:
    """What a maintainer should know before building this sdist with kiln, from its files.

    Two things fail or surprise on packages kiln has never seen: Rust crates that the sdist
    does not carry (builds have no network), and meson-python's generated files that
    record the build's own paths.
    """
    try:
        with read_members(archive) as (names, read):
            backend = backend_of(sdist_pyproject(names, read))
            rust = backend == "maturin" or any(n.endswith("/Cargo.toml") for n in names)
            vendored = any("/vendor/" in n and n.endswith("/Cargo.toml") for n in names) or any(
                n.endswith(".cargo/config.toml") and b"vendored-sources" in read(n)
                for n in names)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, KeyError):
        return ()
    notes = []
    if rust and not vendored:
        notes.append("Rust: the sdist does not vendor its crates, and kiln's builds have no "
                     "network, so cargo will not find them; an sdist with vendored crates "
                     "(`cargo vendor`) builds")
    if backend == "mesonpy":
        notes.append("meson-python: kiln builds in build/ (config setting build-dir); if "
                     "--check-repro finds the build's paths in a generated file "
                     "(_build_config.py, __config__.py), add [repro] skip-variations = "
                     '["build_path"]')
    return tuple(notes)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME==VERSION`` (or just ``NAME`` for the newest release)."""
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise UsageError(f"'{spec}' is not NAME==VERSION: {exc}",
                         hint="for example: kiln recipe new markupsafe==2.1.5") from exc
    specs = list(req.specifier)
    if not specs:
        return req.name, None
    if len(specs) != 1 or specs[0].operator not in ("==", "==="):
        raise UsageError(f"'{spec}' must pin one version with ==",
                         hint="for example: kiln recipe new markupsafe==2.1.5")
    return req.name, specs[0].version


def guess_imports(archive: Path, project: str) -> tuple[str, ...]:
    """Top-level import names, read from the sdist's file list (nothing is extracted)."""
    with read_members(archive) as (names, read):
        top_level = [n for n in names if n.endswith(".egg-info/top_level.txt")]
        text = read(top_level[0]).decode("utf-8", "replace") if top_level else ""
        rust_module = _maturin_module(names, read)
    declared = [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("_")]
    if declared:
        return tuple(dict.fromkeys(declared))
    if rust_module:
        return (rust_module,)
    found: list[str] = []
    for name in names:
        parts = name.split("/")
        if parts[-1] != "__init__.py" or len(parts) < 3:
            continue
        inner = parts[1:-1]
        if inner and inner[0] == "src":
            inner = inner[1:]
        if len(inner) == 1 and inner[0] not in _NOT_PACKAGES and inner[0].isidentifier():
            found.append(inner[0])
    if not found:
        modules = [n.split("/")[1].rsplit(".", 1)[0] for n in names
                   if n.count("/") == 1 and n.endswith((".py", ".pyi"))]
        found = [m for m in modules if m.isidentifier() and m not in _NOT_PACKAGES]
    wanted = canonicalize_name(project).replace("-", "_")
    found = sorted(dict.fromkeys(found), key=lambda m: (m.lower() != wanted, m))
    return tuple(found[:1]) or (wanted,)


def _maturin_module(names: list[str], read: Callable[[str], bytes]) -> str:
    """A maturin project's import name: [tool.maturin] module-name, else the Rust library's."""
    pyproject = sdist_pyproject(names, read)
    if backend_of(pyproject) != "maturin":
        return ""
    tool = pyproject.get("tool")
    maturin = tool.get("maturin") if isinstance(tool, dict) else None
    module = maturin.get("module-name") if isinstance(maturin, dict) else None
    if isinstance(module, str) and module:
        return module.split(".", 1)[0]
    top = {n.split("/", 1)[1]: n for n in names if n.count("/") == 1}
    try:
        cargo = toml.loads(read(top["Cargo.toml"]).decode("utf-8", "replace"))
    except (KeyError, toml.TOMLDecodeError):
        return ""
    for table in ("lib", "package"):
        value = cargo.get(table)
        name = value.get("name") if isinstance(value, dict) else None
        if isinstance(name, str) and name.replace("-", "_").isidentifier():
            return name.replace("-", "_")
    return ""


def _choose_pythons(requires_python: str | None) -> tuple[str, ...]:
    spec = SpecifierSet(requires_python or "")
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [own] + [f"3.{m}" for m in range(14, 7, -1) if f"3.{m}" != own]
    for minor in candidates:
        if spec.contains(f"{minor}.0", prereleases=True) or spec.contains(f"{minor}.99"):
            try:
                find_interpreter(minor)
            except EnvironmentSetupError:
                continue
            return (minor,)
    raise UsageError(f"no CPython on this machine satisfies requires-python {requires_python}",
                     hint="install one, or pass --python")


def new_recipe(spec: str, *, directory: Path, cache: Path, pythons: tuple[str, ...] = (),
               targets: tuple[str, ...] = (), output: Path | None = None,
               force: bool = False, url: str | None = None,
               environment: tuple[tuple[str, str], ...] = ()) -> NewRecipe:
    name, version = parse_spec(spec)
    page = project_page(name)
    version = version or page.latest()
    sdist = page.sdist(version)
    if not sdist.sha256:
        raise UsageError(f"the index gives no sha256 for {sdist.filename}",
                         hint="write the recipe by hand with a hash you trust")
    if url is not None and url != sdist.url:
        # Another address (a mirror) is fine only if it serves exactly the index's bytes.
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kiln-url-", dir=cache) as scratch:
            http.download(url, Path(scratch) / sdist.filename, sha256=sdist.sha256,
                          what=f"--url (checked against the index's sha256 of {sdist.filename})")
    archive = http.download(sdist.url, cache / "sdists" / sdist.sha256 / sdist.filename,
                            sha256=sdist.sha256, what=f"downloading {sdist.filename}")
    imports = guess_imports(archive, name)
    notes = build_notes(archive)
    chosen = pythons or _choose_pythons(sdist.requires_python)
    project = canonicalize_name(page.name)
    path = output or directory / f"{project}.toml"
    checks = tuple(f"python -c 'import {m}'" for m in imports)
    text = render_recipe(name=page.name, version=version, url=url or sdist.url,
                         sha256=sdist.sha256, pythons=chosen,
                         targets=targets or (host_target().name,), test_commands=checks,
                         environment=dict(environment))
    text = (f"# kiln recipe for {page.name} {version}, written by `kiln recipe new {spec}`.\n"
            "# [test] commands run against each built wheel: make them exercise the compiled\n"
            "# code, not just import it.\n"
            + "".join(f"# note: {line}\n" for note in notes
                      for line in textwrap.wrap(note, 80)) + text)
    parse_recipe(text, path)  # what we write must load
    try:
        if force:
            write_atomic(path, text)
        else:
            write_new(path, text)
    except FileExistsError as exc:
        raise RecipeError(f"{path} already exists", hint="pass --force to replace it, or -o "
                          "to write elsewhere") from exc
    return NewRecipe(path=path, name=page.name, version=version, sdist=sdist, pythons=chosen,
                     imports=imports, notes=notes)



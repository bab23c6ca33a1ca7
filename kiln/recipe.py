"""Recipes: one TOML file per package and version, validated by hand into frozen records.

A recipe is data only. Every value is literal: environment values are handed to the
build as they are, test commands are split like a shell would split them but never run
through one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.version import InvalidVersion, Version

from kiln import toml
from kiln.errors import NothingToDoError, RecipeError
from kiln.files import sha256_bytes
from kiln.toolchain.targets import TARGETS, Target, host_target

_SEPARATORS = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """A project name as PEP 503 compares it (packaging's canonicalize_name, without the
    import of packaging.tags that comes with it)."""
    return _SEPARATORS.sub("-", name).lower()

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PROJECT_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
PYTHON_VERSION = re.compile(r"3\.(\d{1,2})\Z")
GLIBC_VERSION = re.compile(r"2\.(\d{1,2})\Z")

BACKENDS = ("hermetic", "host", "cibuildwheel")
# Earlier names, still accepted: zig was the hermetic toolchain before it was the default,
# native the host's compilers.
BACKEND_ALIASES = {"zig": "hermetic", "native": "host"}
# The surroundings a second build varies (see kiln.repro); a recipe may opt out of some.
VARIATIONS = (
    "interpreter",
    "tools",
    "build_path",
    "umask",
    "time",
    "timezone",
    "locale",
    "hostname",
    "environment_order",
    "num_cpus",
    "home",
    "hash_seed",
)
# Variables kiln sets itself; a recipe that sets them would break the pinned environment.
RESERVED_ENV = frozenset(
    {"PATH", "HOME", "SOURCE_DATE_EPOCH", "PYTHONHASHSEED", "TZ", "LC_ALL", "LANG", "PYTHONPATH"}
)

# table -> key -> (type, required)
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "package": {"name": (str, True), "version": (str, True)},
    "source": {"url": (str, True), "sha256": (str, True)},
    "build": {
        "python": (list, False),
        "targets": (list, False),
        "backend": (str, False),
        "environment": (dict, False),
        "config-settings": (dict, False),
        "glibc": (str, False),
        "system-requires": (dict, False),
        "source-date-epoch": (int, False),
        "timeout": (int, False),
        "requires": (list, False),
        "crates-url": (str, False),
    },
    "test": {"requires": (list, False), "commands": (list, False), "files": (list, False),
             "smoke": (bool, False)},
    "repro": {"expected": (bool, False), "skip-variations": (list, False), "reason": (str, False)},
    "library": {},  # a table of tables, one per library: checked by _libraries with _LIBRARY
}
# [library.NAME]: a C or C++ library the build needs, built by kiln from a pinned source.
_LIBRARY: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "version": (str, True),
    "url": (str, False),
    "debian": (str, False),
    "suite": (str, False),
    "sha256": (str, True),
    "build": (str, True),
    "options": (list, False),
    "target-options": (dict, False),
    "link": (str, False),
    "requires": (list, False),
    "environment": (dict, False),
    "subdir": (str, False),
}
# autotools: a GNU configure script, then make; configure: a package's own configure
# script that takes only --prefix (zlib's), then make; cmake; make: a Makefile alone;
# openssl: OpenSSL's Perl Configure for the target, then make and make install_sw.
LIBRARY_BUILDS = ("autotools", "configure", "cmake", "make", "openssl")
LIBRARY_LINKS = ("static", "shared")
LIBRARY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*\Z")
DEBIAN_SUITE = "trixie"
_REQUIRED_TABLES = ("package", "source")
_SYSTEM_MANAGERS = ("debian", "brew")
DEFAULT_PYTHONS = ("3.11",)


@dataclass(frozen=True)
class TestSpec:
    requires: tuple[str, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()  # each already split into argv
    files: tuple[str, ...] = ()  # from the sdist, copied to where the commands run
    smoke: bool = False  # also import the built wheel's compiled modules


@dataclass(frozen=True)
class ReproSpec:
    expected: bool = True
    skip_variations: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class LibrarySpec:
    """One ``[library.NAME]`` table: a library built from a pinned source before the wheel."""

    name: str
    version: str
    sha256: str  # of the source archive (for a Debian package: its .orig tarball)
    build: str  # one of LIBRARY_BUILDS
    url: str = ""  # https:// or file://; or, with ``debian``, found through the signed index
    debian: str = ""  # a Debian source package
    suite: str = DEBIAN_SUITE
    options: tuple[str, ...] = ()  # configure / cmake / make arguments, each one word
    # More options for one target, after ``options``: (target name, options), sorted
    target_options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    link: str = "static"
    requires: tuple[str, ...] = ()  # other [library] tables it builds against
    environment: tuple[tuple[str, str], ...] = ()  # for the wheel's build; {prefix} expands
    subdir: str = ""  # the folder in the archive that holds the build files

    @property
    def source(self) -> str:
        return self.url or f"debian:{self.suite}/{self.debian}"

    def for_target(self, target: str) -> LibrarySpec:
        """The library as it builds for ``target``: its options, then that target's."""
        extra = dict(self.target_options).get(target, ())
        return replace(self, options=(*self.options, *extra), target_options=())


@dataclass(frozen=True)
class Recipe:
    path: Path
    sha256: str  # of the recipe file's bytes
    name: str
    version: str
    url: str
    source_sha256: str
    pythons: tuple[str, ...]
    targets: tuple[str, ...]
    backend: str | None  # None: not named, kiln picks (see default_backend)
    environment: tuple[tuple[str, str], ...]  # sorted (name, value)
    config_settings: tuple[tuple[str, str], ...]
    glibc: str
    system_requires: tuple[tuple[str, tuple[str, ...]], ...]
    source_date_epoch: int | None
    timeout: int
    build_requires: tuple[str, ...] = ()  # more build requirements than the sdist declares
    # Where the crates of the sdist's Cargo.lock come from: a URL template in crates.io's
    # layout ({name}, {version}); None: KILN_CRATES_URL, else crates.io.
    crates_url: str | None = None
    test: TestSpec = field(default_factory=TestSpec)
    repro: ReproSpec = field(default_factory=ReproSpec)
    libraries: tuple[LibrarySpec, ...] = ()  # in build order: each after what it requires
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    text: str = field(default="", compare=False, repr=False)  # the file as read (sha256 is of it)

    @property
    def project(self) -> str:
        """The normalised project name (PEP 503)."""
        return canonical_name(self.name)

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def system_packages(self, manager: str) -> tuple[str, ...]:
        return dict(self.system_requires).get(manager, ())


def canonical_backend(name: str) -> str:
    """A backend's current name (``zig`` → ``hermetic``, ``native`` → ``host``)."""
    return BACKEND_ALIASES.get(name, name)


def default_backend(recipe: Recipe, host: Target | None = None) -> tuple[str, str]:
    """The backend of a recipe that names none, and why: hermetic on Linux, unless the
    recipe builds against the host's system packages; the host's compilers on macOS."""
    host = host or host_target()
    if not host.is_linux:
        return "host", "kiln's hermetic toolchain builds Linux wheels; this host is not Linux"
    needs = recipe.system_packages("debian")
    if needs:
        return "host", (f"the recipe builds against the host's system packages "
                        f"({', '.join(needs)}), which a hermetic build cannot see")
    return "hermetic", ""


def _suggest(word: str, choices: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


class _Checker:
    """Raises RecipeError naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str, hint: str | None = None) -> RecipeError:
        return RecipeError(f"{self.path}: {where}: {problem}", hint=hint)

    def tables(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key not in _SCHEMA:
                raise self.fail(f"[{key}]", f"unknown table{_suggest(key, _SCHEMA)}",
                                hint=f"valid tables: {', '.join(_SCHEMA)}")
            if not isinstance(value, dict):
                raise self.fail(key, "must be a table", hint=f"write it as [{key}]")
        for table in _REQUIRED_TABLES:
            if table not in data:
                raise self.fail(f"[{table}]", "missing table",
                                hint=f"add a [{table}] table (see `kiln recipe new`)")
        for table, values in data.items():
            if table == "library":
                continue
            schema = _SCHEMA[table]
            for key, value in values.items():
                if key not in schema:
                    raise self.fail(f"[{table}] {key}", f"unknown key{_suggest(key, schema)}",
                                    hint=f"valid keys in [{table}]: {', '.join(schema)}")
                kind, _ = schema[key]
                # bool is an int in Python; a flag where a number belongs is still wrong.
                wrong_bool = isinstance(value, bool) and kind is int
                if not isinstance(value, kind) or wrong_bool:
                    raise self.fail(f"[{table}] {key}", f"must be {_type_name(kind)}, "
                                    f"not {type(value).__name__}")
            for key, (_, required) in schema.items():
                if required and key not in values:
                    raise self.fail(f"[{table}] {key}", "missing required key")

    def strings(self, where: str, values: list[Any]) -> tuple[str, ...]:
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.fail(f"{where}[{i}]", f"must be a string, not {type(value).__name__}")
        return tuple(values)


def parse_recipe(text: str, path: Path) -> Recipe:
    """Validate recipe ``text`` (read from ``path``) into a Recipe."""
    check = _Checker(path)
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise check.fail("TOML", str(exc),
                         hint="fix the syntax; README.md (Recipes) shows the format") from exc
    check.tables(data)
    package, source = data["package"], data["source"]
    build = data.get("build", {})
    test = data.get("test", {})
    repro = data.get("repro", {})

    name = package["name"]
    if not PROJECT_NAME.match(name):
        raise check.fail("[package] name", f"'{name}' is not a valid project name (PEP 508)")
    version = package["version"]
    try:
        Version(version)
    except InvalidVersion as exc:
        raise check.fail("[package] version", f"'{version}' is not a valid version (PEP 440)",
                         hint="use the version exactly as PyPI lists it") from exc

    url = source["url"]
    if not url.startswith(("https://", "file://")):
        raise check.fail("[source] url", f"'{url}' must start with https:// or file://",
                         hint="plain http:// is refused; use the https address")
    digest = source["sha256"]
    if not SHA256.match(digest):
        raise check.fail("[source] sha256", f"'{digest}' is not 64 lowercase hex digits",
                         hint="copy the sha256 from PyPI, or run `kiln recipe new NAME==VERSION`")

    pythons = check.strings("[build] python", build.get("python", list(DEFAULT_PYTHONS)))
    if not pythons:
        raise check.fail("[build] python", "is empty", hint='list at least one, e.g. ["3.11"]')
    for py in pythons:
        match = PYTHON_VERSION.match(py)
        if not match or int(match.group(1)) < 6:
            raise check.fail("[build] python", f"'{py}' is not a CPython version like \"3.11\"")
    if len(set(pythons)) != len(pythons):
        raise check.fail("[build] python", "lists a version twice")

    targets = check.strings("[build] targets", build.get("targets", [host_target().name]))
    for target in targets:
        if target not in TARGETS:
            raise check.fail("[build] targets",
                             f"unknown target '{target}'{_suggest(target, TARGETS)}",
                             hint=f"targets: {', '.join(TARGETS)}")
    if not targets:
        raise check.fail("[build] targets", "is empty")

    backend = build.get("backend")
    if backend is not None:
        backend = BACKEND_ALIASES.get(backend, backend)
        if backend not in BACKENDS:
            raise check.fail("[build] backend",
                             f"unknown backend '{backend}'"
                             f"{_suggest(backend, (*BACKENDS, *BACKEND_ALIASES))}",
                             hint=f"backends: {', '.join(BACKENDS)}")

    environment = _env_table(check, "[build] environment", build.get("environment", {}))
    for name_ in dict(environment):
        if name_ in RESERVED_ENV:
            raise check.fail(f"[build] environment {name_}", "is set by kiln itself",
                             hint="remove it; kiln pins it for every build")
    config_settings = _string_table(check, "[build] config-settings",
                                    build.get("config-settings", {}))

    glibc = build.get("glibc", "2.17")
    if not GLIBC_VERSION.match(glibc):
        raise check.fail("[build] glibc", f"'{glibc}' is not a glibc version like \"2.17\"")

    system_requires = []
    for manager, packages in build.get("system-requires", {}).items():
        if manager not in _SYSTEM_MANAGERS:
            raise check.fail(f"[build] system-requires {manager}",
                             f"unknown package manager{_suggest(manager, _SYSTEM_MANAGERS)}",
                             hint=f"known: {', '.join(_SYSTEM_MANAGERS)}")
        if not isinstance(packages, list):
            raise check.fail(f"[build] system-requires {manager}", "must be a list of packages")
        listed = check.strings(f"[build] system-requires {manager}", packages)
        for pkg in listed:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+@_-]*", pkg):
                raise check.fail(f"[build] system-requires {manager}",
                                 f"'{pkg}' is not a package name")
        system_requires.append((manager, listed))

    sde = build.get("source-date-epoch")
    if sde is not None and sde < 315532800:  # zip cannot store times before 1980
        raise check.fail("[build] source-date-epoch", "must be 315532800 (1980-01-01) or later")
    build_requires = check.strings("[build] requires", build.get("requires", []))
    if build_requires:
        # packaging.requirements is a fifth of `kiln recipe check`'s start-up: only when asked.
        from packaging.requirements import InvalidRequirement, Requirement
    for i, requirement in enumerate(build_requires):
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise check.fail(f"[build] requires[{i}]", f"'{requirement}' is not a requirement: "
                             f"{exc}", hint='write it as PyPI would take it: "cmake>=3.20"') \
                from exc
    crates_url = build.get("crates-url")
    if crates_url is not None:
        _check_crates_url(check, crates_url)
    timeout = build.get("timeout", 3600)
    if timeout <= 0:
        raise check.fail("[build] timeout", "must be a positive number of seconds")

    commands = []
    for i, command in enumerate(check.strings("[test] commands", test.get("commands", []))):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise check.fail(f"[test] commands[{i}]", f"cannot be split into words: {exc}",
                             hint="balance the quotes") from exc
        if not argv:
            raise check.fail(f"[test] commands[{i}]", "is empty")
        commands.append(argv)
    files = check.strings("[test] files", test.get("files", []))
    for i, file in enumerate(files):
        parts = PurePosixPath(file).parts
        if not file or file.startswith("/") or "\\" in file or ".." in parts:
            raise check.fail(f"[test] files[{i}]", f"'{file}' is not a path inside the sdist",
                             hint='give paths relative to the sdist\'s top folder: "tests", '
                                  '"conftest.py"')
    test_spec = TestSpec(requires=check.strings("[test] requires", test.get("requires", [])),
                         commands=tuple(commands), files=files,
                         smoke=bool(test.get("smoke", False)))

    skips = check.strings("[repro] skip-variations", repro.get("skip-variations", []))
    for skip in skips:
        if skip not in VARIATIONS:
            raise check.fail("[repro] skip-variations",
                             f"unknown variation '{skip}'{_suggest(skip, VARIATIONS)}",
                             hint=f"variations: {', '.join(VARIATIONS)}")
    repro_spec = ReproSpec(expected=repro.get("expected", True), skip_variations=skips,
                           reason=repro.get("reason", ""))
    if not repro_spec.expected and not repro_spec.reason:
        raise check.fail("[repro] reason", "is required when expected = false",
                         hint="say why the package does not rebuild identically")

    libraries = _libraries(check, data.get("library", {}))

    return Recipe(
        path=path,
        text=text,
        sha256=sha256_bytes(text.encode()),
        name=name,
        version=version,
        url=url,
        source_sha256=digest,
        pythons=pythons,
        targets=targets,
        backend=backend,
        environment=environment,
        config_settings=config_settings,
        glibc=glibc,
        system_requires=tuple(sorted(system_requires)),
        source_date_epoch=sde,
        timeout=timeout,
        build_requires=build_requires,
        crates_url=crates_url,
        test=test_spec,
        repro=repro_spec,
        libraries=libraries,
        raw=data,
    )


def _libraries(check: _Checker, tables: dict[str, Any]) -> tuple[LibrarySpec, ...]:
    """Every [library.NAME] table, checked, in an order where each follows its requires."""
    specs: dict[str, LibrarySpec] = {}
    for name, table in tables.items():
        where = f"[library.{name}]"
        if not LIBRARY_NAME.match(name):
            raise check.fail(where, f"'{name}' is not a library name",
                             hint="letters, digits and + . _ -, e.g. [library.libyaml]")
        if not isinstance(table, dict):
            raise check.fail(where, "must be a table", hint=f"write it as [library.{name}]")
        for key, value in table.items():
            if key not in _LIBRARY:
                raise check.fail(f"{where} {key}", f"unknown key{_suggest(key, _LIBRARY)}",
                                 hint=f"valid keys: {', '.join(_LIBRARY)}")
            kind, _ = _LIBRARY[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise check.fail(f"{where} {key}",
                                 f"must be {_type_name(kind)}, not {type(value).__name__}")
        for key, (_, required) in _LIBRARY.items():
            if required and key not in table:
                raise check.fail(f"{where} {key}", "missing required key",
                                 hint="README.md (Libraries) shows a [library] table")
        specs[name] = _library(check, name, where, table)
    for spec in specs.values():
        for dep in spec.requires:
            if dep not in specs:
                raise check.fail(f"[library.{spec.name}] requires",
                                 f"'{dep}' is not a [library] table of this recipe"
                                 f"{_suggest(dep, specs)}",
                                 hint=f"add [library.{dep}], or remove it from requires")
    ordered: list[LibrarySpec] = []
    visiting: list[str] = []

    def visit(spec: LibrarySpec) -> None:
        if spec in ordered:
            return
        if spec.name in visiting:
            cycle = " -> ".join((*visiting[visiting.index(spec.name):], spec.name))
            raise check.fail(f"[library.{spec.name}] requires", f"is a cycle: {cycle}",
                             hint="a library cannot need itself, even through another")
        visiting.append(spec.name)
        for dep in spec.requires:
            visit(specs[dep])
        visiting.pop()
        ordered.append(spec)

    for spec in specs.values():
        visit(spec)
    return tuple(ordered)


def _library(check: _Checker, name: str, where: str, table: dict[str, Any]) -> LibrarySpec:
    url, package = table.get("url", ""), table.get("debian", "")
    if bool(url) == bool(package):
        raise check.fail(where, "needs exactly one of url and debian",
                         hint='url = "https://…/x.tar.gz", or debian = "libyaml" for Debian\'s '
                              "source package (its .orig tarball, checked through the signed "
                              "Sources index)")
    if url and not url.startswith(("https://", "file://")):
        raise check.fail(f"{where} url", f"'{url}' must start with https:// or file://",
                         hint="plain http:// is refused; use the https address")
    if package and not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package):
        raise check.fail(f"{where} debian", f"'{package}' is not a Debian source package name")
    suite = table.get("suite", DEBIAN_SUITE)
    if "suite" in table and not package:
        raise check.fail(f"{where} suite", "only means something with debian = …")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
        raise check.fail(f"{where} suite", f"'{suite}' is not a Debian suite like \"trixie\"")
    digest = table["sha256"]
    if not SHA256.match(digest):
        raise check.fail(f"{where} sha256", f"'{digest}' is not 64 lowercase hex digits",
                         hint="the sha256 of the source archive (Debian's Sources index lists "
                              "it for an .orig tarball)")
    build = table["build"]
    if build not in LIBRARY_BUILDS:
        hint = (f"builds: {', '.join(LIBRARY_BUILDS)}" if build != "meson" else
                "kiln does not build meson libraries yet; use the library's autotools or "
                "CMake build if it has one")
        raise check.fail(f"{where} build", f"unknown build '{build}'"
                         f"{_suggest(build, LIBRARY_BUILDS)}", hint=hint)
    link = table.get("link", "static")
    if link not in LIBRARY_LINKS:
        raise check.fail(f"{where} link", f"must be one of {', '.join(LIBRARY_LINKS)}, not "
                         f"'{link}'", hint="static links it into the extension; shared is "
                                           "grafted into the wheel by auditwheel")
    options = check.strings(f"{where} options", table.get("options", []))
    target_options = []
    for target, more in sorted(table.get("target-options", {}).items()):
        if target not in TARGETS:
            raise check.fail(f"{where} target-options", f"unknown target '{target}'"
                             f"{_suggest(target, tuple(TARGETS))}",
                             hint=f"targets: {', '.join(TARGETS)}")
        if not isinstance(more, list):
            raise check.fail(f"{where} target-options {target}", "must be a list of options",
                             hint=f'"{target}" = ["TARGET=ARMV8"]')
        target_options.append((target, check.strings(f"{where} target-options {target}",
                                                     more)))
    requires = check.strings(f"{where} requires", table.get("requires", []))
    environment = _env_table(check, f"{where} environment", table.get("environment", {}))
    for var, value in environment:
        if var in RESERVED_ENV:
            raise check.fail(f"{where} environment {var}", "is set by kiln itself")
        rest = value.replace("{prefix}", "")
        if "{" in rest or "}" in rest:
            raise check.fail(f"{where} environment {var}",
                             f"'{value}': only {{prefix}} may be written in braces",
                             hint='e.g. XML2_CONFIG = "{prefix}/bin/xml2-config"')
    subdir = table.get("subdir", "")
    parts = PurePosixPath(subdir).parts
    if subdir.startswith("/") or ".." in parts or "\\" in subdir:
        raise check.fail(f"{where} subdir", f"'{subdir}' is not a folder inside the archive")
    return LibrarySpec(name=name, version=table["version"], sha256=digest, build=build,
                       url=url, debian=package, suite=suite, options=options,
                       target_options=tuple(target_options), link=link,
                       requires=requires, environment=environment, subdir=subdir)
def _check_crates_url(check: _Checker, url: str) -> None:
    example = "https://static.crates.io/crates/{name}/{name}-{version}.crate"
    if not url.startswith(("https://", "file://")):
        raise check.fail("[build] crates-url", f"'{url}' must start with https:// or file://",
                         hint=f"crates.io's layout: {example}")
    if "{name}" not in url or "{version}" not in url:
        raise check.fail("[build] crates-url", f"'{url}' must name {{name}} and {{version}}",
                         hint=f"crates.io's layout: {example}")


def _string_table(check: _Checker, where: str,
                  table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    for key, value in table.items():
        if not isinstance(value, str):
            raise check.fail(f"{where} {key}", f"must be a string, not {type(value).__name__}",
                             hint=f'quote it: {key} = "{value}"')
    return tuple(sorted(table.items()))


def _env_table(check: _Checker, where: str, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    for key in table:
        if not ENV_NAME.match(key):
            raise check.fail(f"{where} {key!r}", "is not a valid variable name",
                             hint="names are letters, digits and _, not starting with a digit")
    return _string_table(check, where, table)


def recipe_files(paths: Sequence[Path], *, hint: str = "kiln status recipes/") -> list[Path]:
    """Recipe files from files and folders (a folder: its ``*.toml``, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            found.append(path)
        else:
            raise NothingToDoError(f"{path}: no such recipe or folder", hint=hint)
    if not found:
        raise NothingToDoError(f"no recipes in {', '.join(map(str, paths))}",
                               hint="recipes are *.toml files; kiln recipe new NAME==VERSION")
    return found


def load_recipe(path: Path) -> Recipe:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        # `kiln recipe new` names a recipe by the project's normalized name
        named = path.with_name(f"{canonical_name(path.stem)}{path.suffix}")
        hint = (f"did you mean {named}? (recipes are named by the normalized project name)"
                if named != path and named.is_file() else
                "check the path, or run `kiln recipe new NAME==VERSION` to write one")
        raise RecipeError(f"{path}: no such recipe", hint=hint) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read: {exc}") from exc
    return parse_recipe(text, path)


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return toml.dumps({"v": value})[4:].strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} into a recipe")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def render_tables(data: Mapping[str, Mapping[str, object]]) -> str:
    """Recipe TOML the way people write it: short arrays and tables on one line."""
    blocks = []
    for table, values in data.items():
        lines = [f"[{table}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_recipe(
    *,
    name: str,
    version: str,
    url: str,
    sha256: str,
    pythons: tuple[str, ...],
    targets: tuple[str, ...],
    test_commands: tuple[str, ...] = (),
    test_requires: tuple[str, ...] = (),
    test_files: tuple[str, ...] = (),
    smoke: bool = False,
    environment: Mapping[str, str] | None = None,
) -> str:
    """The TOML text of a new recipe, in the canonical key order."""
    build: dict[str, object] = {"python": list(pythons), "targets": list(targets)}
    if environment:
        build["environment"] = dict(environment)
    data: dict[str, dict[str, object]] = {
        "package": {"name": name, "version": version},
        "source": {"url": url, "sha256": sha256},
        "build": build,
    }
    if test_commands or test_requires or test_files or smoke:
        test: dict[str, object] = {}
        if test_requires or test_commands:
            test["requires"] = list(test_requires)
        if test_files:
            test["files"] = list(test_files)
        if test_commands or test_requires:
            test["commands"] = list(test_commands)
        if smoke:
            test["smoke"] = True
        data["test"] = test
    return render_tables(data)

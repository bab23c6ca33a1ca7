"""``kiln recipe new``: a recipe written from what the index says about a release."""

from __future__ import annotations

import configparser
import posixpath
import re
import shlex
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Suite:
    """A project's own test suite, found in its sdist."""

    folder: str  # "tests", or "pkg/tests" for tests the package itself installs
    test_files: int  # test_*.py / *_test.py files in it
    files: tuple[str, ...]  # what to copy out of the sdist: the folder, conftest.py, config
    requires: tuple[str, ...]  # pytest, and the project's declared test requirements
    package: str = ""  # "pkg.tests": the tests ship inside the wheel (pytest --pyargs)

    @property
    def command(self) -> str:
        if self.package:
            return f"python -m pytest --pyargs {self.package}"
        return f"python -m pytest {self.folder}"


@dataclass(frozen=True)
class NewRecipe:
    path: Path
    name: str
    version: str
    sdist: IndexFile
    pythons: tuple[str, ...]
    suite: Suite | None
    notes: tuple[str, ...] = ()  # what to expect from this sdist's build, also in the recipe


def build_notes(archive: Path) -> tuple[str, ...]:
    """What a maintainer should know before building this sdist with kiln, from its files.

    Two things fail or surprise on packages kiln has never seen: Rust crates that the sdist
    does not carry (kiln fetches what Cargo.lock pins; builds have no network), and
    meson-python's generated files that record the build's own paths.
    """
    try:
        with read_members(archive) as (names, read):
            backend = backend_of(sdist_pyproject(names, read))
            rust = backend == "maturin" or any(n.endswith("/Cargo.toml") for n in names)
            locked = any(n.endswith("/Cargo.lock") for n in names)
            vendored = any("/vendor/" in n and n.endswith("/Cargo.toml") for n in names) or any(
                n.endswith(".cargo/config.toml") and b"vendored-sources" in read(n)
                for n in names)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, KeyError):
        return ()
    notes = []
    if rust and not vendored and not locked:
        notes.append("Rust: the sdist has neither vendored crates nor a Cargo.lock, so kiln "
                     "cannot fetch its crates by checksum, and builds have no network")
    elif rust and not vendored:
        notes.append("Rust: the sdist does not vendor its crates; kiln fetches the ones its "
                     "Cargo.lock pins, by checksum, before the build (from crates.io, or "
                     "[build] crates-url / KILN_CRATES_URL); crates from git are refused")
    if backend == "mesonpy":
        notes.append("meson-python: kiln builds in build/ (config setting build-dir); if "
                     "--check-repro finds the build's paths in a generated file "
                     "(_build_config.py, __config__.py), add [repro] skip-variations = "
                     '["build_path"]')
    return tuple(notes)


_SUITE_FOLDERS = ("tests", "test", "testing")
# pytest's configuration files and the section each must hold to be pytest's.
_PYTEST_CONFIG = {"pytest.ini": "", "tox.ini": "[pytest]", "setup.cfg": "[tool:pytest]",
                  "pyproject.toml": "[tool.pytest.ini_options]"}
_TEST_EXTRAS = ("test", "tests", "testing")
_REQUIREMENT_FILES = ("requirements-test.txt", "requirements-tests.txt", "test-requirements.txt",
                      "requirements_test.txt", "test_requirements.txt",
                      "requirements-testing.txt", "requirements/test.txt",
                      "requirements/tests.txt", "requirements/testing.txt",
                      "requirements/pytest.txt", "tests/requirements.txt",
                      "test/requirements.txt")
# Folders of test data beside the tests (../data from tests/), copied with them.
_DATA_FOLDERS = ("data", "testdata", "test_data", "fixtures")
# What a pytest option in the configuration's addopts needs installed.
_OPTION_PLUGINS = {"--cov": "pytest-cov", "-n": "pytest-xdist", "--numprocesses": "pytest-xdist",
                   "--dist": "pytest-xdist", "--timeout": "pytest-timeout",
                   "--asyncio-mode": "pytest-asyncio", "--benchmark": "pytest-benchmark",
                   "--hypothesis": "hypothesis", "--reruns": "pytest-rerunfailures",
                   "--mypy": "pytest-mypy"}


def find_suite(archive: Path, project: str) -> Suite | None:
    """The sdist's own test suite: a top-level tests/ (or test/) folder with test modules,
    the conftest.py and pytest configuration beside it, and the test requirements the
    project declares (extras named test/tests/testing, dependency groups, requirement
    files). None when the sdist ships no tests."""
    with read_members(archive) as (names, read):
        top = {n.split("/", 1)[1]: n for n in names if "/" in n and n.split("/", 1)[1]}
        folder, count, package = "", 0, ""
        for candidate in _SUITE_FOLDERS:
            count = _test_modules(top, candidate)
            if count:
                folder = candidate
                break
        if not folder:  # tests the package installs itself: pkg/tests, src/pkg/tests
            folder, count, package = _package_tests(top)
        if not folder:  # a suite one folder down, beside the bindings: py/tests
            folder, count = _nested_tests(top)
        if not folder:
            return None
        files = [] if package else [folder]
        if "conftest.py" in top:
            files.append("conftest.py")
        plugins: list[str] = []
        for config, section in _PYTEST_CONFIG.items():
            if config in top and (not section or section.encode() in read(top[config])):
                files.append(config)
                plugins = _plugins(read(top[config]).decode("utf-8", "replace"), config)
                break  # pytest reads the first it finds; one is enough
        if not package:
            files += [d for d in _DATA_FOLDERS if any(rel.startswith(d + "/") for rel in top)]
        requires = _test_requirements(top, read, project, plugins)
    return Suite(folder, count, tuple(files), requires, package)


def _test_modules(top: dict[str, str], folder: str) -> int:
    return sum(1 for rel in top if rel.startswith(folder + "/")
               and _is_test_module(rel.rpartition("/")[2]))


def _package_tests(top: dict[str, str]) -> tuple[str, int, str]:
    """("pkg/tests", modules, "pkg.tests") for a tests package inside the project's package."""
    for rel in sorted(top):
        parts = rel.split("/")
        if parts[-1] != "__init__.py" or len(parts) < 3 or parts[-2] not in ("tests", "test"):
            continue
        inner = parts[1:-1] if parts[0] == "src" else parts[:-1]
        if len(inner) == 2 and all(p.isidentifier() for p in inner):
            folder = "/".join(parts[:-1])
            count = _test_modules(top, folder)
            if count:
                return folder, count, ".".join(inner)
    return "", 0, ""


def _nested_tests(top: dict[str, str]) -> tuple[str, int]:
    """("py/tests", modules) for a tests folder one level down that no package holds."""
    found = sorted({"/".join(rel.split("/")[:2]) for rel in top
                    if rel.count("/") >= 2 and rel.split("/")[1] in ("tests", "test")})
    for folder in found:
        parent = folder.split("/")[0]
        if parent in ("src", "docs", "doc") or f"{parent}/__init__.py" in top:
            continue
        count = _test_modules(top, folder)
        if count:
            return folder, count
    return "", 0


def _plugins(config: str, name: str) -> list[str]:
    """The pytest plugins the configuration file ``name`` asks for: ``-p pytest_x`` and the
    options of known plugins in its addopts, and its required_plugins."""
    addopts, required = _pytest_options(config, name)
    needed: list[str] = list(required)
    words = shlex.split(addopts, comments=True) if addopts else []
    for i, word in enumerate(words):
        option = word.split("=", 1)[0]
        if word == "-p" and i + 1 < len(words) and words[i + 1].startswith("pytest_"):
            needed.append(words[i + 1].replace("_", "-"))
        for prefix, plugin in _OPTION_PLUGINS.items():
            if option == prefix or option.startswith(prefix + "-"):
                needed.append(plugin)
    return needed


def _pytest_options(config: str, name: str) -> tuple[str, list[str]]:
    """(addopts, required_plugins) as the file gives them; ("", []) when it cannot be read."""
    if name == "pyproject.toml":
        try:
            tool = toml.loads(config).get("tool")
        except toml.TOMLDecodeError:
            return "", []
        pytest = tool.get("pytest") if isinstance(tool, dict) else None
        options = pytest.get("ini_options") if isinstance(pytest, dict) else None
        if not isinstance(options, dict):
            return "", []
        addopts, required = options.get("addopts", ""), options.get("required_plugins", [])
        if isinstance(addopts, list):
            addopts = " ".join(shlex.quote(str(a)) for a in addopts)
        if isinstance(required, str):
            required = required.split()
        return (addopts if isinstance(addopts, str) else "",
                [str(r) for r in required] if isinstance(required, list) else [])
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(config)
    except configparser.Error:
        return "", []
    section = "tool:pytest" if name == "setup.cfg" else "pytest"
    if not parser.has_section(section):
        return "", []
    return (parser.get(section, "addopts", fallback=""),
            parser.get(section, "required_plugins", fallback="").split())


def _is_test_module(leaf: str) -> bool:
    return leaf.endswith(".py") and (leaf.startswith("test_") or leaf.endswith("_test.py"))


def _test_requirements(top: dict[str, str], read: Callable[[str], bytes],
                       project: str, plugins: Sequence[str] = ()) -> tuple[str, ...]:
    found: list[str] = list(plugins)
    pkg_info = read(top["PKG-INFO"]).decode("utf-8", "replace") if "PKG-INFO" in top else ""
    for line in pkg_info.splitlines():
        if line.startswith("Requires-Dist:"):
            found += _extra_requirement(line.partition(":")[2].strip())
    if "pyproject.toml" in top:
        try:
            pyproject = toml.loads(read(top["pyproject.toml"]).decode("utf-8", "replace"))
        except toml.TOMLDecodeError:
            pyproject = {}
        project_table = pyproject.get("project")
        optional = project_table.get("optional-dependencies") if isinstance(
            project_table, dict) else None
        groups = pyproject.get("dependency-groups")
        for table in (optional, groups):
            if isinstance(table, dict):
                for extra in _TEST_EXTRAS:
                    values = table.get(extra)
                    if isinstance(values, list):
                        found += [v for v in values if isinstance(v, str)]
    for name in _REQUIREMENT_FILES:
        found += _requirement_file(top, read, name, set())
    if "setup.py" in top:  # setuptools' tests_require = [...], when written as literals
        setup = read(top["setup.py"]).decode("utf-8", "replace")
        listed = re.search(r"tests_require\s*=\s*\[([^\]]*)\]", setup)
        if listed:
            found += re.findall(r"[\"']([^\"']+)[\"']", listed.group(1))
    own = canonicalize_name(project)
    wanted: dict[str, str] = {}
    for text in ["pytest", *found]:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if name != own and (name not in wanted or text != "pytest"):
            wanted[name] = str(req)  # the project's own pin of pytest wins over ours
    return tuple(wanted.values())


def _requirement_file(top: dict[str, str], read: Callable[[str], bytes], name: str,
                      seen: set[str]) -> list[str]:
    """The requirements a file in the sdist lists, following its ``-r`` includes."""
    if name not in top or name in seen:
        return []
    seen.add(name)
    found: list[str] = []
    for line in read(top[name]).decode("utf-8", "replace").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            included = posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                         line.split(None, 1)[1].strip()))
            found += _requirement_file(top, read, included, seen)
        elif line and not line.startswith(("#", "-")) and "://" not in line:
            found.append(line)
    return found


def _extra_requirement(text: str) -> list[str]:
    """A Requires-Dist of a test extra, without its ``extra == …`` marker."""
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return []
    marker = str(req.marker) if req.marker else ""
    if not any(f'extra == "{e}"' in marker for e in _TEST_EXTRAS):
        return []
    req.marker = None
    return [str(req)]


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
    suite = find_suite(archive, name)
    notes = build_notes(archive)
    chosen = pythons or _choose_pythons(sdist.requires_python)
    project = canonicalize_name(page.name)
    path = output or directory / f"{project}.toml"
    text = render_recipe(name=page.name, version=version, url=url or sdist.url,
                         sha256=sdist.sha256, pythons=chosen,
                         targets=targets or (host_target().name,),
                         test_commands=(suite.command,) if suite else (),
                         test_requires=suite.requires if suite else (),
                         test_files=suite.files if suite else (), smoke=True,
                         environment=dict(environment))
    if suite is not None and suite.package:
        about = (f"# [test] runs the project's own suite ({suite.test_files} test files in "
                 f"{suite.folder}/), which the wheel\n# installs, from the installed wheel "
                 "(pytest --pyargs); smoke also imports its compiled modules.\n")
    elif suite is not None:
        about = (f"# [test] runs the project's own suite ({suite.test_files} test files in "
                 f"{suite.folder}/) against each built\n# wheel, copied out of the sdist "
                 "([test] files) so it imports the wheel, not the source; smoke\n# also "
                 "imports the wheel's compiled modules.\n")
    else:
        about = ("# The sdist ships no test suite: [test] smoke imports the built wheel's "
                 "compiled\n# modules. Add [test] commands that exercise them.\n")
    text = (f"# kiln recipe for {page.name} {version}, written by `kiln recipe new {spec}`.\n"
            + about + "".join(f"# note: {line}\n" for note in notes
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
                     suite=suite, notes=notes)



"""System packages a recipe builds against (C libraries and their headers).

A recipe names them per package manager (``[build] system-requires = { debian = [...],
brew = [...] }``). Before anything is built, kiln asks the host's package database which
are installed and at what version; with ``--install-system-deps`` (as root, for CI) it
installs the missing ones, otherwise it stops and prints the exact command to run. The
installed versions go into the build record and the build id: a new libxml2 makes a
different lxml wheel, because auditwheel grafts the library into it.

Package names were validated by the recipe loader; they still only ever travel as argv.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kiln import proc
from kiln.errors import EnvironmentSetupError
from kiln.progress import reporter
from kiln.recipe import Recipe

# Runs a short query command; returns (exit status, stdout). Swapped out in unit tests.
Query = Callable[[Sequence[str]], tuple[int, str]]

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass(frozen=True)
class SystemPackage:
    manager: str  # "debian" or "brew"
    name: str
    version: str  # as the package database reports it: "2.9.14+dfsg-1.3~deb12u1"


@dataclass(frozen=True)
class SystemCheck:
    manager: str
    installed: tuple[SystemPackage, ...]
    missing: tuple[str, ...]


def host_manager() -> str | None:
    """The package manager whose names this host understands: debian, brew, or None."""
    if sys.platform == "darwin":
        return "brew" if shutil.which("brew") else None
    if shutil.which("dpkg-query"):
        return "debian"
    return None


def query_argv(manager: str, name: str) -> list[str]:
    """The command that asks whether ``name`` is installed, and at what version."""
    if manager == "debian":
        return ["dpkg-query", "-W", "-f", "${Status} ${Version}", name]
    if manager == "brew":
        return ["brew", "list", "--versions", name]
    raise ValueError(f"unknown package manager {manager!r}")


def parse_query(manager: str, returncode: int, output: str) -> str | None:
    """The installed version from a query's answer, or None when it is not installed."""
    if returncode != 0:
        return None
    words = output.split()
    if manager == "debian":
        # "install ok installed 2.9.14+dfsg-1.3": the third word is the state; a package
        # removed but not purged says "deinstall ok config-files".
        if len(words) >= 4 and words[2] == "installed":
            return words[3]
        return None
    # brew: "libxml2 2.13.5_1" (several versions when several are kept: the last is newest)
    return words[-1] if len(words) >= 2 else None


def install_argv(manager: str, names: Sequence[str], *, as_root: bool) -> list[str]:
    """The command that installs ``names``; ``sudo`` in front when not root (for people)."""
    if manager == "debian":
        argv = ["apt-get", "install", "-y", "--no-install-recommends", *names]
        return argv if as_root else ["sudo", *argv]
    if manager == "brew":
        return ["brew", "install", *names]  # Homebrew refuses to run as root
    raise ValueError(f"unknown package manager {manager!r}")


def _run_query(argv: Sequence[str]) -> tuple[int, str]:
    done = proc.capture(argv, what=f"asking {argv[0]} about {argv[-1]}", check=False, quiet=True)
    return done.returncode, done.stdout.decode(errors="replace")


def check_packages(manager: str, names: Sequence[str], query: Query = _run_query) -> SystemCheck:
    installed, missing = [], []
    for name in names:
        version = parse_query(manager, *query(query_argv(manager, name)))
        if version is None:
            missing.append(name)
        else:
            installed.append(SystemPackage(manager, name, version))
    return SystemCheck(manager, tuple(installed), tuple(missing))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def missing_error(recipe: Recipe, check: SystemCheck, *, asked_to_install: bool,
                  as_root: bool) -> EnvironmentSetupError:
    command = proc.render(install_argv(check.manager, check.missing, as_root=as_root))
    if asked_to_install and check.manager == "debian" and not as_root:
        hint = f"kiln installs system packages only as root; run: {command}"
    elif check.manager == "debian":
        hint = f"run: {command} (or, as root in CI: kiln build --install-system-deps)"
    else:
        hint = f"run: {command}"
    return EnvironmentSetupError(
        f"{recipe.path}: [build] system-requires: {recipe.name} needs {check.manager} "
        f"packages that are not installed: {', '.join(check.missing)}", hint=hint)


def ensure_system_packages(recipe: Recipe, *, install: bool = False,
                           manager: str | None = None,
                           query: Query = _run_query) -> tuple[SystemPackage, ...]:
    """The recipe's system packages for this host, installed; raise if some are missing.

    ``manager`` defaults to the host's. A host kiln cannot ask (not Debian, no Homebrew)
    gets a note and an empty result: the build then shows whether the libraries are there.
    """
    if not recipe.system_requires:
        return ()
    manager = manager or host_manager()
    if manager is None:
        wanted = "; ".join(f"{m}: {' '.join(names)}" for m, names in recipe.system_requires)
        reporter().note(f"{recipe.label}: cannot check system packages on this host (neither "
                        f"dpkg nor Homebrew); make sure the equivalents of these are "
                        f"installed: {wanted}")
        return ()
    names = recipe.system_packages(manager)
    if not names:
        reporter().note(f"{recipe.label}: the recipe names no {manager} system packages; "
                        f"building without checking")
        return ()
    check = check_packages(manager, names, query)
    if not check.missing:
        return check.installed
    as_root = _is_root()
    may_install = install and (as_root if manager == "debian" else not as_root)
    if not may_install:
        raise missing_error(recipe, check, asked_to_install=install, as_root=as_root)
    _install(recipe, check, as_root=as_root)
    after = check_packages(manager, names, query)
    if after.missing:
        raise missing_error(recipe, after, asked_to_install=True, as_root=as_root)
    return after.installed


def _install(recipe: Recipe, check: SystemCheck, *, as_root: bool) -> None:
    argv = install_argv(check.manager, check.missing, as_root=as_root)
    reporter().stage("system", f"{recipe.label}: installing {' '.join(check.missing)}")
    what = f"{recipe.label}: installing system packages"
    if check.manager == "brew":
        proc.run(argv, what=what, error=EnvironmentSetupError)
        return
    try:
        proc.run(argv, what=what, error=EnvironmentSetupError, env=_APT_ENV)
    except EnvironmentSetupError:
        # A fresh CI machine often has no package lists yet: fetch them once, try again.
        proc.run(["apt-get", "update"], what="apt-get update", error=EnvironmentSetupError,
                 env=_APT_ENV)
        proc.run(argv, what=what, error=EnvironmentSetupError, env=_APT_ENV,
                 hint="check the package names in [build] system-requires debian")

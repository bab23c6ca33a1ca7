"""System packages: the commands kiln would run, and what it does with their answers.

No program runs here: the package database is a dictionary and proc.run is recorded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kiln.backends import BuildJob, Tool, Toolchain
from kiln.build import build_id, build_inputs
from kiln.buildenv import CANONICAL
from kiln.errors import EnvironmentSetupError
from kiln.fetch import FetchedSource
from kiln.installer import IndexOptions
from kiln.lockfile import Lock
from kiln.recipe import parse_recipe
from kiln.toolchain import sysdeps
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.sysdeps import SystemPackage
from kiln.toolchain.targets import TARGETS

SHA = "a" * 64


def make_recipe(system: str = 'debian = ["libxml2-dev", "libxslt1-dev"], brew = ["libxml2"]'):
    text = f"""
[package]
name = "lxml"
version = "6.1.3"

[source]
url = "https://example.org/lxml-6.1.3.tar.gz"
sha256 = "{SHA}"

[build]
system-requires = {{ {system} }}
"""
    return parse_recipe(text, Path("recipes/lxml.toml"))


class FakeDpkg:
    """dpkg-query over a dictionary of installed packages; records every question."""

    def __init__(self, installed: dict[str, str]) -> None:
        self.installed = installed
        self.asked: list[list[str]] = []

    def __call__(self, argv):
        self.asked.append(list(argv))
        name = argv[-1]
        if name not in self.installed:
            return 1, ""
        return 0, f"install ok installed {self.installed[name]}"


@pytest.fixture
def runs(monkeypatch):
    """proc.run replaced: the argv of each call, and (optionally) a side effect."""
    calls: list[list[str]] = []

    def fake_run(argv, **kwargs):
        calls.append([str(a) for a in argv])
        if fake_run.effect:
            fake_run.effect(argv)

    fake_run.effect = None
    monkeypatch.setattr(sysdeps.proc, "run", fake_run)
    return fake_run, calls


def test_query_command_is_plain_argv():
    assert sysdeps.query_argv("debian", "libxml2-dev") == [
        "dpkg-query", "-W", "-f", "${Status} ${Version}", "libxml2-dev"]
    assert sysdeps.query_argv("brew", "libxml2") == ["brew", "list", "--versions", "libxml2"]


@pytest.mark.parametrize(("code", "text", "version"), [
    (0, "install ok installed 2.9.14+dfsg-1.3~deb12u1", "2.9.14+dfsg-1.3~deb12u1"),
    (0, "deinstall ok config-files 2.9.14+dfsg-1.3", None),  # removed, not purged
    (0, "install ok half-installed 1.0", None),
    (1, "", None),  # dpkg-query: no packages found matching …
])
def test_dpkg_answers(code, text, version):
    assert sysdeps.parse_query("debian", code, text) == version


def test_brew_answer_takes_the_newest_listed_version():
    assert sysdeps.parse_query("brew", 0, "libxml2 2.12.0 2.13.5_1\n") == "2.13.5_1"
    assert sysdeps.parse_query("brew", 1, "") is None


def test_install_command_for_root_and_for_people():
    names = ["libxml2-dev", "libxslt1-dev"]
    assert sysdeps.install_argv("debian", names, as_root=True) == [
        "apt-get", "install", "-y", "--no-install-recommends", "libxml2-dev", "libxslt1-dev"]
    assert sysdeps.install_argv("debian", names, as_root=False)[:2] == ["sudo", "apt-get"]
    assert sysdeps.install_argv("brew", ["libxml2"], as_root=False) == ["brew", "install",
                                                                         "libxml2"]


def test_installed_packages_come_back_with_versions():
    dpkg = FakeDpkg({"libxml2-dev": "2.9.14", "libxslt1-dev": "1.1.35"})
    found = sysdeps.ensure_system_packages(make_recipe(), manager="debian", query=dpkg)
    assert found == (SystemPackage("debian", "libxml2-dev", "2.9.14"),
                     SystemPackage("debian", "libxslt1-dev", "1.1.35"))
    assert [a[-1] for a in dpkg.asked] == ["libxml2-dev", "libxslt1-dev"]


def test_missing_packages_stop_the_build_with_the_exact_command(monkeypatch, runs):
    monkeypatch.setattr(sysdeps, "_is_root", lambda: False)
    dpkg = FakeDpkg({"libxml2-dev": "2.9.14"})
    with pytest.raises(EnvironmentSetupError) as caught:
        sysdeps.ensure_system_packages(make_recipe(), manager="debian", query=dpkg)
    error = caught.value
    assert "recipes/lxml.toml" in error.message and "libxslt1-dev" in error.message
    assert "libxml2-dev" not in error.message  # only what is missing
    assert "sudo apt-get install -y --no-install-recommends libxslt1-dev" in error.hint
    assert runs[1] == []  # nothing was installed


def test_install_is_refused_without_root(monkeypatch, runs):
    monkeypatch.setattr(sysdeps, "_is_root", lambda: False)
    with pytest.raises(EnvironmentSetupError) as caught:
        sysdeps.ensure_system_packages(make_recipe(), install=True, manager="debian",
                                       query=FakeDpkg({}))
    assert "only as root" in caught.value.hint
    assert "sudo apt-get install -y --no-install-recommends libxml2-dev libxslt1-dev" \
        in caught.value.hint
    assert runs[1] == []


def test_root_installs_the_missing_ones_then_reads_their_versions(monkeypatch, runs):
    monkeypatch.setattr(sysdeps, "_is_root", lambda: True)
    dpkg = FakeDpkg({"libxml2-dev": "2.9.14"})
    fake_run, calls = runs
    fake_run.effect = lambda argv: dpkg.installed.update({"libxslt1-dev": "1.1.35"})
    found = sysdeps.ensure_system_packages(make_recipe(), install=True, manager="debian",
                                           query=dpkg)
    assert calls == [["apt-get", "install", "-y", "--no-install-recommends", "libxslt1-dev"]]
    assert [p.version for p in found] == ["2.9.14", "1.1.35"]


def test_failed_install_updates_the_package_lists_and_tries_once_more(monkeypatch, runs):
    monkeypatch.setattr(sysdeps, "_is_root", lambda: True)
    dpkg = FakeDpkg({"libxml2-dev": "2.9.14"})
    fake_run, calls = runs

    def effect(argv):
        if len(calls) == 1:
            raise EnvironmentSetupError("E: Unable to locate package libxslt1-dev")
        if argv[:2] == ["apt-get", "install"]:
            dpkg.installed["libxslt1-dev"] = "1.1.35"

    fake_run.effect = effect
    sysdeps.ensure_system_packages(make_recipe(), install=True, manager="debian", query=dpkg)
    assert [c[:2] for c in calls] == [["apt-get", "install"], ["apt-get", "update"],
                                      ["apt-get", "install"]]


def test_install_that_leaves_a_package_missing_is_an_error(monkeypatch, runs):
    monkeypatch.setattr(sysdeps, "_is_root", lambda: True)
    with pytest.raises(EnvironmentSetupError, match="libxslt1-dev"):
        sysdeps.ensure_system_packages(make_recipe(), install=True, manager="debian",
                                       query=FakeDpkg({"libxml2-dev": "2.9.14"}))


def test_brew_says_brew_install():
    with pytest.raises(EnvironmentSetupError) as caught:
        sysdeps.ensure_system_packages(make_recipe(), manager="brew", query=FakeDpkg({}))
    assert caught.value.hint == "run: brew install libxml2"


def test_package_names_reach_no_shell(monkeypatch, runs):
    """A name is one argv word even if it looked like shell; the loader refuses such names."""
    monkeypatch.setattr(sysdeps, "_is_root", lambda: True)
    dpkg = FakeDpkg({})
    fake_run, calls = runs
    fake_run.effect = lambda argv: dpkg.installed.update({"libfoo+1.0": "1"})
    sysdeps.ensure_system_packages(make_recipe('debian = ["libfoo+1.0"]'), install=True,
                                   manager="debian", query=dpkg)
    assert calls[0][-1] == "libfoo+1.0"
    with pytest.raises(Exception, match="not a package name"):
        make_recipe('debian = ["libfoo; rm -rf /"]')


def test_recipe_without_system_packages_asks_nothing():
    recipe = parse_recipe(f'[package]\nname = "x"\nversion = "1"\n[source]\n'
                          f'url = "https://e.org/x-1.tar.gz"\nsha256 = "{SHA}"\n',
                          Path("x.toml"))
    dpkg = FakeDpkg({})
    assert sysdeps.ensure_system_packages(recipe, manager="debian", query=dpkg) == ()
    assert dpkg.asked == []


def test_a_host_without_a_known_package_manager_builds_with_a_note(monkeypatch):
    monkeypatch.setattr(sysdeps, "host_manager", lambda: None)
    notes: list[str] = []

    class Catch:
        def note(self, message):
            notes.append(message)

    monkeypatch.setattr(sysdeps, "reporter", lambda: Catch())
    assert sysdeps.ensure_system_packages(make_recipe(), query=FakeDpkg({})) == ()
    assert "libxml2-dev" in notes[0]


def _job(packages: tuple[SystemPackage, ...]) -> BuildJob:
    interp = Interpreter(path=Path("/usr/bin/python3.11"), version="3.11.7",
                         implementation="cpython", soabi="cpython-311-x86_64-linux-gnu",
                         ext_suffix=".so", platform="linux-x86_64", zlib="1.2.13", sha256=SHA,
                         cc="gcc", cxx="g++")
    lock = Lock(path=Path("recipes/lxml.lock"), sha256=SHA, sdist_sha256=SHA, pythons=("3.11",),
                declared=(), pins=(), resolver="uv")
    return BuildJob(recipe=make_recipe(), interpreter=interp, target=TARGETS["linux-x86_64"],
                    source=FetchedSource("https://e.org/x.tar.gz", Path("x.tar.gz"), SHA, 1),
                    lock=lock, source_date_epoch=1700000000, index=IndexOptions(),
                    surroundings=CANONICAL, cache=Path("/tmp"), system_packages=packages)


def test_installed_versions_are_part_of_the_build_id(monkeypatch):
    import kiln.build

    monkeypatch.setattr(kiln.build, "bwrap_version", lambda: "bubblewrap 0.8.0")
    backend = dataclasses.make_dataclass("B", [("name", str)])("native")
    toolchain = Toolchain(tools=(Tool("cc", "gcc 12"),))
    old = _job((SystemPackage("debian", "libxml2-dev", "2.9.14+dfsg-1.3~deb12u1"),))
    new = _job((SystemPackage("debian", "libxml2-dev", "2.9.14+dfsg-1.3~deb12u2"),))
    assert build_inputs(old, backend, toolchain)["system_packages"] == [
        ["debian", "libxml2-dev", "2.9.14+dfsg-1.3~deb12u1"]]
    assert build_id(old, backend, toolchain) != build_id(new, backend, toolchain)
    # builds without system packages keep the ids they had before kiln recorded them
    assert "system_packages" not in build_inputs(_job(()), backend, toolchain)

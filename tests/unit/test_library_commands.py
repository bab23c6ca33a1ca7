"""The steps kiln runs to build a [library]: argv lists, recipe options one word each."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.installer import IndexOptions
from kiln.recipe import parse_recipe
from kiln.toolchain.libraries import LibraryToolchain, _commands
from kiln.toolchain.targets import TARGETS

SHA = "a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8"
RECIPE = f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{"0" * 64}"
[library.openssl]
version = "3.5.7"
debian = "openssl"
sha256 = "{SHA}"
build = "openssl"
options = ["no-tests", "--openssldir=/usr/local/ssl"]
"""


def _toolchain(target: str) -> LibraryToolchain:
    return LibraryToolchain(triple="x", target=TARGETS[target], identity=(), binds=(),
                            bin_inside="/kiln/toolchain/bin", hidden=(), chain="build",
                            cache=Path("/nowhere"), index=IndexOptions())


@pytest.mark.parametrize(("target", "platform"), [("linux-x86_64", "linux-x86_64"),
                                                  ("linux-aarch64", "linux-aarch64")])
def test_openssl_is_configured_for_the_wheels_target_and_installs_without_manuals(
        target, platform):
    spec = parse_recipe(RECIPE, Path("demo.toml")).libraries[0]
    steps = _commands(spec, _toolchain(target), "/kiln/lib/src", "/kiln/libs/openssl", (), "2")
    (configure, _), (make, _), (install, _) = steps
    assert configure == ["perl", "/kiln/lib/src/Configure", platform,
                         "--prefix=/kiln/libs/openssl", "--libdir=lib", "no-shared",
                         "no-tests", "--openssldir=/usr/local/ssl"]
    assert make == ["make", "-j2"] and install == ["make", "install_sw"]


def test_a_shared_openssl_is_asked_for_shared():
    spec = parse_recipe(RECIPE.replace('build = "openssl"', 'build = "openssl"\nlink = "shared"'),
                        Path("demo.toml")).libraries[0]
    (configure, _), *_ = _commands(spec, _toolchain("linux-x86_64"), "/s", "/p", (), "2")
    assert "shared" in configure and "no-shared" not in configure


def test_an_index_entry_the_mirror_lacks_says_so_and_names_the_others(monkeypatch, tmp_path):
    from kiln.errors import FetchError
    from kiln.toolchain import debian, libraries

    listed = [debian.SourcePackage("openssl", version, "pool/main/o/openssl",
                                   ((sha, 1, f"openssl_{version[:5]}.orig.tar.gz"),))
              for version, sha in (("3.5.7-1~deb13u2", SHA), ("3.5.9-1~deb13u1", "9" * 64))]
    monkeypatch.setattr(debian, "load_sources",
                        lambda suite, downloads: {"openssl": listed})

    def missing(url, target, **kwargs):
        raise FetchError(f"{kwargs['what']}: {url}: HTTP 404 Not Found",
                         hint="check the name and version")

    monkeypatch.setattr(libraries.http, "download", missing)
    spec = parse_recipe(RECIPE.replace(SHA, "9" * 64), Path("demo.toml")).libraries[0]
    with pytest.raises(FetchError) as info:
        libraries.fetch_source(spec, tmp_path)
    assert "HTTP 404" in info.value.message
    assert "lists openssl 3.5.9-1~deb13u1 (trixie), but the mirror has no such file" in \
        info.value.hint
    assert f"3.5.7-1~deb13u2: openssl_3.5.7.orig.tar.gz {SHA}" in info.value.hint

"""[library.NAME] tables: C libraries a recipe builds from pinned sources, checked like the
rest of a recipe (the file, the field, what to do), and put in an order where each library
follows the ones it builds against; the steps a build kind runs, and where its source comes
from."""

from __future__ import annotations

from pathlib import Path

import pytest

import kiln.http
from kiln.errors import FetchError, RecipeError
from kiln.installer import IndexOptions
from kiln.recipe import parse_recipe
from kiln.toolchain import debian, libraries
from kiln.toolchain.debian import parse_sources
from kiln.toolchain.libraries import LibraryToolchain, _commands
from kiln.toolchain.targets import TARGETS

BASE = """
[package]
name = "lxml"
version = "6.1.3"

[source]
url = "https://files.pythonhosted.org/packages/x/lxml-6.1.3.tar.gz"
sha256 = "45222d94ddd511536f3b2f7d9deae3b2339b4ce0f075f1ca25703b07cad9dd21"
"""
SHA = "4fe913dec8b1ab89d13b489b419a8203176ea39e931eaa0d25b17eafb9c279e9"
LIBXSLT = f"""
[library.libxslt]
version = "1.1.35"
debian = "libxslt"
sha256 = "{SHA}"
build = "autotools"
requires = ["libxml2"]
options = ["--without-python", "--with-libxml-prefix=/kiln/libs/libxml2"]
environment = {{ XSLT_CONFIG = "{{prefix}}/bin/xslt-config" }}
"""
LIBXML2 = f"""
[library.libxml2]
version = "2.9.14"
url = "https://example.org/libxml2-2.9.14.tar.xz"
sha256 = "{SHA}"
build = "cmake"
link = "shared"
"""
PATH = Path("recipes/lxml.toml")


def fails(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        parse_recipe(BASE + text, PATH)
    assert str(PATH) in info.value.message
    return info.value


def test_libraries_load_in_build_order_with_literal_options():
    recipe = parse_recipe(BASE + LIBXSLT + LIBXML2, PATH)  # written dependent-first
    assert [lib.name for lib in recipe.libraries] == ["libxml2", "libxslt"]
    xml2, xslt = recipe.libraries
    assert xml2.url.startswith("https://") and xml2.link == "shared" and xml2.build == "cmake"
    assert xslt.debian == "libxslt" and xslt.suite == "trixie" and xslt.link == "static"
    assert xslt.options == ("--without-python", "--with-libxml-prefix=/kiln/libs/libxml2")
    assert dict(xslt.environment) == {"XSLT_CONFIG": "{prefix}/bin/xslt-config"}
    assert xslt.source == "debian:trixie/libxslt"


def test_a_targets_own_options_follow_the_common_ones_for_that_target_only():
    recipe = parse_recipe(BASE + LIBXSLT + 'target-options = { "linux-aarch64" = '
                          '["--host-extra"], "linux-x86_64" = ["--x86"] }\n' + LIBXML2, PATH)
    xslt = recipe.libraries[1]
    common = ("--without-python", "--with-libxml-prefix=/kiln/libs/libxml2")
    assert xslt.for_target("linux-aarch64").options == (*common, "--host-extra")
    assert xslt.for_target("linux-x86_64").options == (*common, "--x86")
    assert xslt.for_target("linux-ppc64le").options == common
    assert xslt.for_target("linux-aarch64").target_options == ()


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda t: t.replace('debian = "libxslt"\n', ""), "[library.libxslt]",
     "exactly one of url and debian"),
    (lambda t: t.replace('debian = "libxslt"', 'debian = "libxslt"\nurl = "https://x/y.tgz"'),
     "[library.libxslt]", "exactly one of url and debian"),
    (lambda t: t.replace('build = "autotools"', 'build = "autotool"'),
     "[library.libxslt] build", "did you mean 'autotools'"),
    (lambda t: t.replace('build = "autotools"', 'build = "meson"'),
     "[library.libxslt] build", "unknown build 'meson'"),
    (lambda t: t.replace(SHA, "abc"), "[library.libxslt] sha256", "64 lowercase hex"),
    (lambda t: t.replace('requires = ["libxml2"]', 'requires = ["libxml"]'),
     "[library.libxslt] requires", "did you mean 'libxml2'"),
    (lambda t: t.replace('version = "1.1.35"\n', ""), "[library.libxslt] version",
     "missing required key"),
    (lambda t: t.replace("options =", "option ="), "[library.libxslt] option",
     "did you mean 'options'"),
    (lambda t: t.replace('{prefix}/bin', '{prefx}/bin'), "[library.libxslt] environment",
     "only {prefix}"),
    (lambda t: t.replace('build = "autotools"', 'build = "autotools"\nlink = "dynamic"'),
     "[library.libxslt] link", "must be one of static, shared"),
    (lambda t: t.replace('debian = "libxslt"', 'debian = "libxslt"\nsuite = "Trixie!"'),
     "[library.libxslt] suite", "not a Debian suite"),
    (lambda t: t.replace('options = [', 'options = [1, '), "[library.libxslt] options[0]",
     "must be a string"),
    (lambda t: t + 'target-options = { "linux-arm64" = ["--x"] }\n',
     "[library.libxslt] target-options", "did you mean 'linux-aarch64'"),
    (lambda t: t + 'target-options = { "linux-aarch64" = "--x" }\n',
     "[library.libxslt] target-options linux-aarch64", "must be a list"),
])
def test_bad_library_tables_name_the_field(edit, field, words):
    error = fails(edit(LIBXSLT) + LIBXML2)
    assert field in error.message and words in f"{error.message} {error.hint}", error.message


def test_plain_http_and_odd_subdirs_are_refused():
    error = fails(LIBXML2.replace("https://example.org", "http://example.org"))
    assert "[library.libxml2] url" in error.message and "https://" in error.message
    error = fails(LIBXML2 + 'subdir = "../elsewhere"\n')
    assert "[library.libxml2] subdir" in error.message


def test_a_cycle_of_requires_is_named():
    text = LIBXSLT + LIBXML2.replace('link = "shared"', 'link = "shared"\nrequires = ["libxslt"]')
    error = fails(text)
    assert "is a cycle" in error.message
    assert "libxslt -> libxml2 -> libxslt" in error.message


def test_the_sources_index_gives_each_version_with_its_files_sha256():
    index = parse_sources("""\
Package: libyaml
Version: 0.2.5-2
Directory: pool/main/liby/libyaml
Checksums-Sha256:
 1111111111111111111111111111111111111111111111111111111111111111 2076 libyaml_0.2.5-2.dsc
 fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e 85055 libyaml_0.2.5.orig.tar.gz

Package: evil
Version: 1
Directory: pool/../../etc
Checksums-Sha256:
 2222222222222222222222222222222222222222222222222222222222222222 1 evil.orig.tar.gz
""".splitlines(keepends=True))
    assert list(index) == ["libyaml"]  # a directory that leaves the pool is dropped
    (package,) = index["libyaml"]
    assert package.version == "0.2.5-2" and package.directory == "pool/main/liby/libyaml"
    assert package.files[1] == ("fa240dbf262be053f3898006d502d514936c818e422afdcf33921c63bed9bf2e",
                                85055, "libyaml_0.2.5.orig.tar.gz")


OPENSSL_SHA = "a8c0d28a529ca480f9f36cf5792e2cd21984552a3c8e4aa11a24aa31aeac98e8"
OPENSSL = f"""
[library.openssl]
version = "3.5.7"
debian = "openssl"
sha256 = "{OPENSSL_SHA}"
build = "openssl"
options = ["no-tests", "--openssldir=/usr/local/ssl"]
"""


def _toolchain(target: str) -> LibraryToolchain:
    return LibraryToolchain(triple="x", target=TARGETS[target], identity=(), binds=(),
                            bin_inside="/kiln/toolchain/bin", hidden=(), chain="build",
                            cache=Path("/nowhere"), index=IndexOptions())


@pytest.mark.parametrize("target", ["linux-x86_64", "linux-aarch64"])
def test_openssl_is_configured_for_the_wheels_target_and_installs_without_manuals(target):
    spec = parse_recipe(BASE + OPENSSL, PATH).libraries[0]
    steps = _commands(spec, _toolchain(target), "/kiln/lib/src", "/kiln/libs/openssl", (), "2")
    (configure, _), (make, _), (install, _) = steps
    # OpenSSL's own platform names happen to be kiln's target names
    assert configure == ["perl", "/kiln/lib/src/Configure", target,
                         "--prefix=/kiln/libs/openssl", "--libdir=lib", "no-shared",
                         "no-tests", "--openssldir=/usr/local/ssl"]
    assert make == ["make", "-j2"] and install == ["make", "install_sw"]


def test_a_shared_openssl_is_asked_for_shared():
    text = OPENSSL.replace('build = "openssl"', 'build = "openssl"\nlink = "shared"')
    spec = parse_recipe(BASE + text, PATH).libraries[0]
    (configure, _), *_ = _commands(spec, _toolchain("linux-x86_64"), "/s", "/p", (), "2")
    assert "shared" in configure and "no-shared" not in configure


def test_an_index_entry_the_mirror_lacks_says_so_and_names_the_others(monkeypatch, tmp_path):
    import urllib.error

    listed = [debian.SourcePackage("openssl", version, "pool/main/o/openssl",
                                   ((sha, 1, f"openssl_{version[:5]}.orig.tar.gz"),))
              for version, sha in (("3.5.7-1~deb13u2", OPENSSL_SHA),
                                   ("3.5.9-1~deb13u1", "9" * 64))]
    monkeypatch.setattr(debian, "load_sources", lambda suite, downloads: {"openssl": listed})

    def missing(url, target, **kwargs):
        error = urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        raise kiln.http._fetch_error(url, error, kwargs["what"]) from error

    monkeypatch.setattr(libraries.http, "download", missing)
    spec = parse_recipe(BASE + OPENSSL.replace(OPENSSL_SHA, "9" * 64), PATH).libraries[0]
    with pytest.raises(FetchError) as info:
        libraries.fetch_source(spec, tmp_path)
    assert "HTTP 404" in info.value.message
    assert "lists openssl 3.5.9-1~deb13u1 (trixie), but the mirror has no such file" in \
        info.value.hint
    assert f"3.5.7-1~deb13u2: openssl_3.5.7.orig.tar.gz {OPENSSL_SHA}" in info.value.hint

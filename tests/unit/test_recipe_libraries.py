"""[library.NAME] tables: C libraries a recipe builds from pinned sources, checked like the
rest of a recipe (the file, the field, what to do), and put in an order where each library
follows the ones it builds against."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import RecipeError
from kiln.recipe import parse_recipe
from kiln.toolchain.debian import parse_sources

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

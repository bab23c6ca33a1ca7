"""Recipe validation: each kind of bad input names the file, the field and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import RecipeError
from kiln.recipe import default_backend, load_recipe, parse_recipe
from kiln.toolchain.targets import TARGETS

GOOD = """
[package]
name = "markupsafe"
version = "2.1.5"

[source]
url = "https://files.pythonhosted.org/packages/x/MarkupSafe-2.1.5.tar.gz"
sha256 = "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b"

[build]
python = ["3.10", "3.11"]
targets = ["linux-x86_64", "linux-aarch64"]
environment = { MARKUPSAFE_SPEEDUPS = "1", "_X9" = "$(rm -rf /)" }

[test]
requires = ["pytest"]
commands = ["python -c 'import markupsafe'"]
"""

PATH = Path("recipes/markupsafe.toml")


def parse(text: str):
    return parse_recipe(text, PATH)


def fails(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        parse(text)
    assert str(PATH) in info.value.message
    return info.value


def test_good_recipe_loads_with_literal_values():
    recipe = parse(GOOD)
    assert recipe.project == "markupsafe"
    assert recipe.pythons == ("3.10", "3.11")
    assert dict(recipe.environment)["_X9"] == "$(rm -rf /)"  # kept literally, never expanded
    assert recipe.test.commands == (("python", "-c", "import markupsafe"),)
    assert recipe.lock_path == Path("recipes/markupsafe.lock")
    assert len(recipe.sha256) == 64


def test_misspelled_key_suggests_the_closest():
    error = fails(GOOD.replace("python = [", "pyton = ["))
    assert "[build] pyton" in error.message
    assert "did you mean 'python'" in error.message


def test_unknown_table_suggests_the_closest():
    error = fails(GOOD.replace("[test]", "[tests]"))
    assert "[tests]" in error.message and "did you mean 'test'" in error.message


@pytest.mark.parametrize("missing", ["name", "version"])
def test_missing_package_field(missing):
    lines = [line for line in GOOD.splitlines() if not line.startswith(f"{missing} =")]
    error = fails("\n".join(lines))
    assert f"[package] {missing}" in error.message and "missing" in error.message


def test_missing_source_table():
    text = GOOD.split("[source]")[0] + "[build]" + GOOD.split("[build]")[1]
    assert "[source]" in fails(text).message


@pytest.mark.parametrize("digest", [
    "abc", "D283D37A890BA4C1AE73FFADF8046435C76E7BC2247BBB63C00BD1A709C6544B", "z" * 64])
def test_bad_hash(digest):
    error = fails(GOOD.replace("d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b",
                               digest))
    assert "[source] sha256" in error.message
    assert error.hint


@pytest.mark.parametrize("version", ["not a version", "1.0-beta-gamma-x", ""])
def test_bad_version(version):
    error = fails(GOOD.replace('version = "2.1.5"', f'version = "{version}"'))
    assert "[package] version" in error.message


@pytest.mark.parametrize("name", ["1BAD", "has space", "a-b=c", "X-Y.Z"])
def test_environment_variable_names(name):
    error = fails(GOOD.replace('"_X9" = "$(rm -rf /)"', f'"{name}" = "1"'))
    assert "[build] environment" in error.message and "variable name" in error.message


def test_environment_values_must_be_strings():
    error = fails(GOOD.replace('MARKUPSAFE_SPEEDUPS = "1"', "MARKUPSAFE_SPEEDUPS = 1"))
    assert "must be a string" in error.message and "quote it" in (error.hint or "")


def test_reserved_environment_variable():
    error = fails(GOOD.replace('MARKUPSAFE_SPEEDUPS = "1"', 'SOURCE_DATE_EPOCH = "1"'))
    assert "set by kiln" in error.message


def test_plain_http_is_refused():
    error = fails(GOOD.replace("https://files", "http://files"))
    assert "[source] url" in error.message


def test_unknown_target():
    error = fails(GOOD.replace('"linux-aarch64"', '"linux-arm64"'))
    assert "unknown target 'linux-arm64'" in error.message
    assert "did you mean 'linux-aarch64'" in error.message


def test_backend_typo_in_build_table():
    text = GOOD.replace('targets = ["linux-x86_64", "linux-aarch64"]',
                        'targets = ["linux-x86_64"]\nbackend = "zgi"')
    error = fails(text)
    assert "[build] backend" in error.message and "did you mean 'zig'" in error.message
    error = fails(text.replace('"zgi"', '"hermtic"'))
    assert "did you mean 'hermetic'" in error.message
    assert "hermetic, host, cibuildwheel" in (error.hint or "")


def test_earlier_backend_names_are_read_as_todays():
    for old, new in (("zig", "hermetic"), ("native", "host")):
        text = GOOD.replace('targets = ["linux-x86_64", "linux-aarch64"]',
                            f'targets = ["linux-x86_64"]\nbackend = "{old}"')
        assert parse_recipe(text, Path("r.toml")).backend == new


def test_a_recipe_that_names_no_backend_is_hermetic_unless_it_needs_system_packages():
    plain = parse_recipe(GOOD, Path("r.toml"))
    assert plain.backend is None
    assert default_backend(plain, TARGETS["linux-x86_64"]) == ("hermetic", "")
    needs = parse_recipe(GOOD.replace("[build]\n", '[build]\nsystem-requires = '
                                      '{ debian = ["libxml2-dev"] }\n'), Path("r.toml"))
    backend, why = default_backend(needs, TARGETS["linux-x86_64"])
    assert backend == "host" and "libxml2-dev" in why
    assert default_backend(plain, TARGETS["macos-arm64"])[0] == "host"


def test_python_versions():
    assert "[build] python" in fails(GOOD.replace('"3.10", "3.11"', '"3.10", "3"')).message
    assert "twice" in fails(GOOD.replace('"3.10", "3.11"', '"3.11", "3.11"')).message
    assert "is empty" in fails(GOOD.replace('"3.10", "3.11"', "")).message


def test_wrong_types():
    assert "must be a list" in fails(GOOD.replace('python = ["3.10", "3.11"]',
                                                  'python = "3.11"')).message
    assert "must be true or false" in fails(GOOD + '\n[repro]\nexpected = "no"\n').message


def test_unbalanced_test_command():
    error = fails(GOOD.replace("import markupsafe'", "import markupsafe"))
    assert "[test] commands[0]" in error.message


def test_unreproducible_needs_a_reason():
    error = fails(GOOD + "\n[repro]\nexpected = false\n")
    assert "[repro] reason" in error.message
    recipe = parse(GOOD + '\n[repro]\nexpected = false\nreason = "embeds build time"\n')
    assert recipe.repro.expected is False


def test_unknown_variation():
    error = fails(GOOD + '\n[repro]\nskip-variations = ["buildpath"]\n')
    assert "did you mean 'build_path'" in error.message


def test_toml_syntax_error_names_the_file():
    error = fails("[package\nname = 1")
    assert "TOML" in error.message


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "nope.toml")
    assert "no such recipe" in info.value.message
    assert "kiln recipe new" in (info.value.hint or "")


def test_a_recipe_asked_for_by_its_unnormalized_name_points_at_the_real_file(tmp_path):
    (tmp_path / "ruamel-yaml-clib.toml").write_text("")
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "ruamel.yaml.clib.toml")
    assert "no such recipe" in info.value.message
    assert f"did you mean {tmp_path / 'ruamel-yaml-clib.toml'}?" in (info.value.hint or "")

"""``kiln recipe update``'s logic: which version, and rewriting the file without losing a word.

The index is a ProjectPage made here; nothing is fetched and nothing runs.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kiln import toml
from kiln.errors import RecipeError, UsageError
from kiln.lockfile import Lock, Pin
from kiln.pypi import IndexFile, ProjectPage
from kiln.recipe import parse_recipe
from kiln.update import (
    lock_changes,
    plan_update,
    rewrite_recipe_text,
    stale_comment_lines,
    unsupported_pythons,
)

OLD_SHA = "1" * 64
NEW_SHA = "2" * 64
OLD_URL = "https://files.pythonhosted.org/packages/aa/demo-1.0.tar.gz"
NEW_URL = "https://files.pythonhosted.org/packages/bb/demo-2.0.tar.gz"

RECIPE = textwrap.dedent(f"""\
    # demo 1.0: a recipe with comments everywhere (kept by updates).
    [test]  # first, so that the look-alikes in its string come before the real keys
    commands = [
        '''python -c '
    [package]
    version = "9.9"
    print("not a table")
    ' ''',
    ]

    [package]   # the project
    name = "demo"
    version = "1.0"          # pinned: 1.1 broke the tests

    [source]
    # the sdist; the build refuses other bytes
    url = "{OLD_URL}"
    sha256 = '{OLD_SHA}'

    [build]
    python = [
        "3.11",  # the one CI has
        "3.12",
    ]
    environment = {{ DEMO_JOBS = "2" }}
    """)


def page(files: list[tuple[str, str, str, str | None]], versions: list[str]) -> ProjectPage:
    return ProjectPage(name="demo", versions=tuple(versions), files=tuple(
        IndexFile(filename=f, url=u, sha256=s, size=1, requires_python=rp, yanked=False,
                  upload_time=None) for f, u, s, rp in files))


INDEX = page([("demo-1.0.tar.gz", OLD_URL, OLD_SHA, None),
              ("demo-2.0.tar.gz", NEW_URL, NEW_SHA, ">=3.11"),
              ("demo-2.1rc1.tar.gz", "https://e.org/demo-2.1rc1.tar.gz", "3" * 64, None)],
             ["1.0", "2.0", "2.1rc1"])


def recipe(text: str = RECIPE):
    return parse_recipe(text, Path("recipes/demo.toml"))


def test_rewrite_changes_three_values_and_keeps_everything_else():
    new = rewrite_recipe_text(RECIPE, Path("demo.toml"), version="2.0", url=NEW_URL,
                              sha256=NEW_SHA)
    old_lines, new_lines = RECIPE.splitlines(), new.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        ('version = "1.0"          # pinned: 1.1 broke the tests',
         'version = "2.0"          # pinned: 1.1 broke the tests'),
        (f'url = "{OLD_URL}"', f'url = "{NEW_URL}"'),
        (f"sha256 = '{OLD_SHA}'", f"sha256 = '{NEW_SHA}'"),  # the author's quotes
    ]
    data = toml.loads(new)
    assert data["package"]["version"] == "2.0" and data["source"]["sha256"] == NEW_SHA
    # the look-alikes inside the multi-line test command were left alone
    assert 'version = "9.9"' in data["test"]["commands"][0]


def test_rewrite_keeps_crlf_line_endings():
    crlf = RECIPE.replace("\n", "\r\n")
    new = rewrite_recipe_text(crlf, Path("demo.toml"), version="2.0", url=NEW_URL,
                              sha256=NEW_SHA)
    assert new.count("\r\n") == crlf.count("\r\n") and 'version = "2.0"\r\n' not in new
    assert 'version = "2.0"          # pinned' in new


def test_rewrite_refuses_layouts_it_cannot_edit_in_place():
    source = (f"[source]\n# the sdist; the build refuses other bytes\nurl = \"{OLD_URL}\"\n"
              f"sha256 = '{OLD_SHA}'\n")
    assert source in RECIPE
    inline = RECIPE.replace(source, "").replace(
        "[test]", f'source = {{ url = "{OLD_URL}", sha256 = "{OLD_SHA}" }}\n\n[test]')
    assert toml.loads(inline)["source"]["url"] == OLD_URL
    with pytest.raises(RecipeError, match=r"cannot find \[source\] url, \[source\] sha256"):
        rewrite_recipe_text(inline, Path("demo.toml"), version="2.0", url=NEW_URL,
                            sha256=NEW_SHA)


def test_rewrite_escapes_what_a_url_could_carry():
    odd = 'https://e.org/a"b\\c.tar.gz'
    new = rewrite_recipe_text(RECIPE, Path("demo.toml"), version="2.0", url=odd,
                              sha256=NEW_SHA)
    assert toml.loads(new)["source"]["url"] == odd


def test_plan_moves_to_the_newest_final_release():
    update = plan_update(recipe(), page=INDEX)
    assert (update.old_version, update.new_version, update.latest) == ("1.0", "2.0", "2.0")
    assert (update.new_url, update.new_sha256) == (NEW_URL, NEW_SHA)
    assert update.changes and update.unsupported_pythons == ()


def test_plan_is_empty_when_current_or_ahead():
    current = recipe(RECIPE.replace('version = "1.0"', 'version = "2.0"'))
    assert not plan_update(current, page=INDEX).changes
    ahead = recipe(RECIPE.replace('version = "1.0"', 'version = "2.1rc1"'))
    assert not plan_update(ahead, page=INDEX).changes  # never "updates" to an older release


def test_plan_to_a_named_version_and_to_one_that_does_not_exist():
    assert plan_update(recipe(), to="2.1rc1", page=INDEX).new_sha256 == "3" * 64
    with pytest.raises(UsageError, match=r"no release 7\.0"):
        plan_update(recipe(), to="7.0", page=INDEX)
    with pytest.raises(UsageError, match="not a version"):
        plan_update(recipe(), to="latest!", page=INDEX)
    yanked = page([("demo-1.0.tar.gz", OLD_URL, OLD_SHA, None)], ["1.0", "2.0"])
    yanked = ProjectPage(name="demo", versions=("1.0", "2.0"), files=(
        *yanked.files, IndexFile("demo-2.0.tar.gz", NEW_URL, NEW_SHA, 1, None, True, None)))
    with pytest.raises(RecipeError, match="yanked"):
        plan_update(recipe(), to="2.0", page=yanked)


def test_plan_names_the_pythons_a_release_dropped():
    index = page([("demo-1.0.tar.gz", OLD_URL, OLD_SHA, None),
                  ("demo-2.0.tar.gz", NEW_URL, NEW_SHA, ">=3.12")], ["1.0", "2.0"])
    assert plan_update(recipe(), page=index).unsupported_pythons == ("3.11",)
    assert unsupported_pythons(("3.10", "3.13"), ">=3.10,<3.13") == ("3.13",)
    assert unsupported_pythons(("3.10",), "not a specifier") == ()


def test_stale_comments_are_pointed_out_not_rewritten():
    assert stale_comment_lines(RECIPE, "1.0") == (1,)
    assert stale_comment_lines("# demo 1.0.1\n# 11.0\nversion = '1.0'\n", "1.0") == ()


def test_lock_changes_read_like_a_changelog():
    def lock(*pins: tuple[str, str]) -> Lock:
        return Lock(path=Path("x.lock"), sha256="", sdist_sha256="", pythons=(), declared=(),
                    pins=tuple(Pin(n, v, ("h",)) for n, v in pins), resolver="")

    before = lock(("setuptools", "75.0"), ("cython", "3.0"))
    after = lock(("setuptools", "80.9"), ("wheel", "0.45"))
    assert lock_changes(before, after) == ("- cython 3.0", "setuptools 75.0 → 80.9",
                                           "+ wheel 0.45")
    assert lock_changes(None, after) == ("+ setuptools 80.9", "+ wheel 0.45")


def _cli(*args: str):
    from typer.testing import CliRunner

    from kiln.cli import app

    return CliRunner().invoke(app, ["recipe", "update", *args])


@pytest.fixture
def offline_index(monkeypatch):
    import kiln.update

    monkeypatch.setattr(kiln.update, "project_page", lambda name, index_url=None: INDEX)


def test_cli_check_reports_behind_and_changes_nothing(tmp_path, offline_index):
    import json

    path = tmp_path / "demo.toml"
    path.write_text(RECIPE)
    result = _cli("--check", "--json", str(path))
    assert result.exit_code == 1
    assert "behind the index" in str(result.exception)
    (row,) = json.loads(result.stdout)
    assert (row["status"], row["version"]) == ("behind", {"old": "1.0", "new": "2.0"})
    assert path.read_text() == RECIPE


def test_cli_update_rewrites_the_recipe_and_relocks(tmp_path, offline_index, monkeypatch):
    import json

    import kiln.update

    path = tmp_path / "demo.toml"
    path.write_text(RECIPE)
    locked: list[str] = []

    def fake_lock(recipe, **kwargs):
        locked.append(recipe.source_sha256)
        return Lock(path=recipe.lock_path, sha256="", sdist_sha256=recipe.source_sha256,
                    pythons=recipe.pythons, declared=(), pins=(Pin("setuptools", "80", ("h",)),),
                    resolver="")

    monkeypatch.setattr(kiln.update, "resolve_lock", fake_lock)
    result = _cli("--json", str(path))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["status"] == "updated" and row["lock"]["changes"] == ["+ setuptools 80"]
    assert row["stale_comment_lines"] == [1]
    assert locked == [NEW_SHA]  # locked for the new sdist
    text = path.read_text()
    assert 'version = "2.0"          # pinned: 1.1 broke the tests' in text
    assert _cli("--check", str(path)).exit_code == 0  # now current


def test_cli_to_takes_one_recipe(tmp_path):
    result = _cli("--to", "2.0", str(tmp_path / "a.toml"), str(tmp_path / "b.toml"))
    assert result.exit_code != 0 and "one recipe" in str(result.exception)


def test_cli_refuses_a_release_that_drops_a_python(tmp_path, monkeypatch):
    import kiln.update

    index = page([("demo-1.0.tar.gz", OLD_URL, OLD_SHA, None),
                  ("demo-2.0.tar.gz", NEW_URL, NEW_SHA, ">=3.12")], ["1.0", "2.0"])
    monkeypatch.setattr(kiln.update, "project_page", lambda name, index_url=None: index)
    path = tmp_path / "demo.toml"
    path.write_text(RECIPE)
    result = _cli(str(path))
    assert result.exit_code != 0 and "requires Python >=3.12" in str(result.exception)
    assert path.read_text() == RECIPE

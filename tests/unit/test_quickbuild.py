"""The plain ``kiln build`` command line the replay answers, and the tables drawn without
rich (kiln.cli.quickbuild, kiln.cli.plain)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kiln.cli.plain import table_text
from kiln.cli.quickbuild import request_of


def test_a_plain_build_command_line_is_a_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    parsed = request_of(["-q", "build", "r/a.toml", "r/b.toml", "-p", "3.11", "--python=3.12",
                         "-t", "linux-x86_64", "-o", "wh", "--no-test"])
    assert parsed is not None
    request, quiet = parsed
    assert quiet
    assert request.recipes == (tmp_path / "r/a.toml", tmp_path / "r/b.toml")
    assert request.pythons == ("3.11", "3.12")
    assert request.targets == ("linux-x86_64",)
    assert request.output == tmp_path / "wh"
    assert request.cache == tmp_path / "cache"
    assert request.tests is False
    default = request_of(["build", "r/a.toml", "--cache-dir", "c"])
    assert default is not None
    assert default[0].output == tmp_path / "wheelhouse" and default[0].tests
    assert default[0].cache == tmp_path / "c" and not default[1]


@pytest.mark.parametrize("argv", [
    ["build"],  # no recipe
    ["lock", "r.toml"],
    ["build", "r.toml", "--check-repro"],
    ["build", "r.toml", "--no-cache"],
    ["build", "r.toml", "--env", "A=1"],
    ["build", "r.toml", "--json"],
    ["build", "r.toml", "--sign-key", "k.pem"],
    ["build", "r.toml", "-p"],  # a value missing
    ["build", "r.toml", "-p", "--no-test"],
    ["build", "r.toml", "-o", "a", "-o", "b"],
    ["-v", "build", "r.toml"],
    ["build", "r.toml", "-p3.11"],  # short option and value in one word: typer's to read
])
def test_any_other_command_line_goes_to_the_pipeline(argv):
    assert request_of(argv) is None


def _rich(title, columns, rows):
    buf = io.StringIO()
    table = Table(title=Text(title) if title else None, show_lines=False, header_style="bold",
                  title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console(file=buf, width=200, soft_wrap=True).print(table)
    return buf.getvalue()


@pytest.mark.parametrize(("title", "columns", "rows"), [
    (None, ["wheel", "tag", "sha256", "s", "status", "tests"],
     [["cext_demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "manylinux_2_17_x86_64",
       "0123456789ab", "0.0", "cached", "passed"], ["x", "y", "", "1.5", "failed", "—"]]),
    ("recipes", ["recipe", "status", "detail"], [["a.toml", "ok", "lock with 3 pins"]]),
    ("empty", ["a", "bb"], []),
])
def test_a_plain_table_is_what_rich_draws(title, columns, rows):
    assert table_text(title, columns, rows, width=200) == _rich(title, columns, rows)


def test_a_table_rich_must_fold_is_left_to_rich():
    assert table_text(None, ["a"], [["x" * 300]], width=200) is None
    assert table_text(None, ["a"], [["two\nlines"]], width=200) is None
    assert table_text(None, ["a"], [["日本"]], width=200) is None


def test_the_request_is_keyed_by_the_recipe_and_its_locks(tmp_path, monkeypatch):
    from kiln.replay import BuildRequest, request_key

    monkeypatch.delenv("KILN_JOBS", raising=False)
    recipe = tmp_path / "a.toml"
    recipe.write_text("[package]\n")
    request = BuildRequest(recipes=(recipe,), pythons=(), targets=(), tests=True,
                           cache=tmp_path / "c", output=tmp_path / "wh")
    keys = [request_key(request)]
    recipe.with_suffix(".lock").write_text("pins\n")
    keys.append(request_key(request))
    recipe.with_suffix(".test.lock").write_text("pins\n")
    keys.append(request_key(request))
    recipe.write_text("[package]\n# changed\n")
    keys.append(request_key(request))
    monkeypatch.setenv("KILN_JOBS", "1")
    keys.append(request_key(request))
    other = BuildRequest(recipes=(recipe,), pythons=(), targets=(), tests=True,
                         cache=tmp_path / "c", output=Path("/elsewhere"))
    assert request_key(other) == keys[-1]  # where it is delivered is not part of it
    assert len(set(keys)) == len(keys)


def test_only_the_newest_memos_are_kept(tmp_path, monkeypatch):
    import os

    from kiln import replay

    monkeypatch.setattr(replay, "KEPT", 3)
    for i in range(5):
        memo = tmp_path / f"{i}.json"
        memo.write_text("{}")
        os.utime(memo, (1000 + i, 1000 + i))
    replay._keep_newest(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.json", "3.json", "4.json"]

"""``kiln recipe new``, ``kiln recipe check`` and ``kiln recipe update``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app
from kiln.cli.common import (
    CacheOption,
    FindLinksOption,
    IndexUrlOption,
    JsonOption,
    NoIndexOption,
    cache_dir,
    index_options,
    terminal,
)
from kiln.cli.console import out, print_json
from kiln.errors import KilnError, RecipeError, UsageError
from kiln.installer import PYPI_SIMPLE
from kiln.progress import reporting

recipe_app = typer.Typer(help="Write and check recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("new")
def recipe_new(
    spec: Annotated[str, typer.Argument(help="NAME==VERSION (or NAME for the newest release).")],
    directory: Annotated[Path, typer.Option("--dir", "-d",
                                            help="Recipe folder.")] = Path("recipes"),
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write exactly here.")] = None,
    python: Annotated[list[str] | None, typer.Option("--python", "-p",
                                                     help="CPython version (repeatable).")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t",
                                                     help="Target (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing recipe.")] = False,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="Build variable NAME=VALUE for [build] environment (literal; "
                            "repeatable).")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Take the sdist from this https:// address; its bytes must have the "
                      "sha256 the index lists.")] = None,
    cache: CacheOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write recipes/NAME.toml from the index's record of a release (sdist url and sha256)."""
    from kiln.cli.build import _env_pairs
    from kiln.scaffold import new_recipe

    with reporting(terminal()):
        made = new_recipe(spec, directory=directory, cache=cache_dir(cache),
                          pythons=tuple(python or ()), targets=tuple(target or ()),
                          output=output, force=force, url=url, environment=_env_pairs(env))
    if json_output:
        print_json({"path": str(made.path), "name": made.name, "version": made.version,
                    "sdist": made.sdist.url, "sha256": made.sdist.sha256,
                    "python": list(made.pythons),
                    "suite": None if made.suite is None else {
                        "folder": made.suite.folder, "test_files": made.suite.test_files,
                        "files": list(made.suite.files), "requires": list(made.suite.requires),
                        "command": made.suite.command},
                    "notes": list(made.notes)})
        return
    tests = (f"tests: its own suite, {made.suite.test_files} test files in "
             f"{made.suite.folder}/ ({made.suite.command})" if made.suite else
             "tests: no suite in the sdist, the smoke test imports the wheel's compiled modules")
    out.print(f"wrote {made.path}: {made.name} {made.version}, CPython "
              f"{', '.join(made.pythons)}; {tests}", markup=False, highlight=False)
    for note in made.notes:  # a note may hold "[repro]": no markup
        out.print(f"note: {note}", markup=False, highlight=False)
    out.print(f"next: kiln lock {made.path} && kiln build {made.path}", markup=False,
              highlight=False)


@recipe_app.command("check")
def recipe_check(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.")],
    json_output: JsonOption = False,
) -> None:
    """Validate recipes and their locks; exit non-zero if any is wrong."""
    from kiln.cli.recipecheck import recipe_check as check

    check(recipes, json_output)


@recipe_app.command("update")
def recipe_update(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.")],
    to: Annotated[str | None, typer.Option(
        "--to", help="Move to this version instead of the newest release (one recipe).")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Change nothing; exit 1 when a recipe is behind the index.")] = False,
    python_path: Annotated[list[str] | None, typer.Option(
        "--python-path", help="Use this interpreter for a version when locking: "
                              "3.11=/opt/py311/bin/python3.11.")] = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    json_output: JsonOption = False,
) -> None:
    """Move recipes to the newest release on the index (new url, sha256 and lock)."""
    from kiln.cli.build import _python_paths
    from kiln.cli.update_view import UpdateRow, print_update_rows, update_json
    from kiln.recipe import load_recipe
    from kiln.update import apply_update, plan_update

    if to is not None and len(recipes) != 1:
        raise UsageError("--to names one version, so it takes one recipe",
                         hint="kiln recipe update recipes/NAME.toml --to VERSION")
    index = index_options(index_url, find_links, no_index)
    rows: list[UpdateRow] = []
    reporter = terminal()
    try:
        with reporting(reporter):
            for path in recipes:
                row = UpdateRow(path=path)
                try:
                    recipe = load_recipe(path)
                    row.update = plan_update(recipe, to=to, index_url=index.index_url)
                    if row.update.changes and not check:
                        row.applied = apply_update(
                            row.update, recipe, cache=cache_dir(cache), index=index,
                            python_paths=dict(_python_paths(python_path)))
                except KilnError as exc:
                    row.error = exc
                rows.append(row)
    finally:
        reporter.close()
    if json_output:
        print_json([update_json(r, check=check) for r in rows])
    else:
        print_update_rows(rows, check=check)
    failed = [r for r in rows if r.error is not None]
    if failed:
        first = failed[0].error
        assert first is not None
        if len(failed) == 1 and len(rows) == 1:
            raise first
        raise RecipeError(f"{len(failed)} of {len(rows)} recipe(s) could not be updated: "
                          + ", ".join(str(r.path) for r in failed), hint=first.message)
    behind = [r for r in rows if r.update is not None and r.update.changes]
    if check and behind:
        raise KilnError(f"{len(behind)} of {len(rows)} recipe(s) are behind the index: "
                        + ", ".join(f"{r.path} ({r.update.old_version} → {r.update.new_version})"
                                    for r in behind if r.update),
                        hint="kiln recipe update " + " ".join(str(r.path) for r in behind))

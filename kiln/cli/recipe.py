"""``kiln recipe new`` and ``kiln recipe check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app
from kiln.cli.common import CacheOption, JsonOption, cache_dir, terminal
from kiln.cli.console import out, print_json, table
from kiln.errors import KilnError, RecipeError
from kiln.progress import reporting

recipe_app = typer.Typer(help="Write and check recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("new")
def recipe_new(
    spec: Annotated[str, typer.Argument(help="NAME==VERSION (or NAME for the newest release).")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Recipe folder.")] = Path("recipes"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write exactly here.")] = None,
    python: Annotated[list[str] | None, typer.Option("--python", "-p",
                                                     help="CPython version (repeatable).")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t",
                                                     help="Target (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing recipe.")] = False,
    cache: CacheOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write recipes/NAME.toml from the index's record of a release (sdist url and sha256)."""
    from kiln.scaffold import new_recipe

    with reporting(terminal()):
        made = new_recipe(spec, directory=directory, cache=cache_dir(cache),
                          pythons=tuple(python or ()), targets=tuple(target or ()),
                          output=output, force=force)
    if json_output:
        print_json({"path": str(made.path), "name": made.name, "version": made.version,
                    "sdist": made.sdist.url, "sha256": made.sdist.sha256,
                    "python": list(made.pythons), "imports": list(made.imports)})
        return
    out.print(f"wrote {made.path}: {made.name} {made.version}, CPython "
              f"{', '.join(made.pythons)}, smoke test imports {', '.join(made.imports)}")
    out.print(f"next: kiln lock {made.path} && kiln build {made.path}")


@recipe_app.command("check")
def recipe_check(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe files.")],
    json_output: JsonOption = False,
) -> None:
    """Validate recipes and their locks; exit non-zero if any is wrong."""
    from kiln.lock import check_lock, read_lock
    from kiln.recipe import load_recipe

    rows: list[dict[str, str]] = []
    bad = 0
    for path in recipes:
        try:
            recipe = load_recipe(path)
            lock = read_lock(recipe)
            if lock is None:
                status, detail = "ok", "no lock yet (kiln lock writes it)"
            else:
                check_lock(recipe, lock, recipe.pythons)
                status, detail = "ok", f"{recipe.label}, lock with {len(lock.pins)} pins"
        except KilnError as exc:
            bad += 1
            status, detail = "error", exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        rows.append({"recipe": str(path), "status": status, "detail": detail})
    if json_output:
        print_json(rows)
    else:
        table(None, ["recipe", "status", "detail"],
              [[r["recipe"], r["status"], r["detail"]] for r in rows])
    if bad:
        raise RecipeError(f"{bad} of {len(recipes)} recipe(s) failed the check")

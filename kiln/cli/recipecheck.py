"""``kiln recipe check``, without typer: it is what a maintainer runs on every save, so it
starts as fast as Python can (``kiln.cli.main`` calls it directly for a plain command line)."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import KilnError, RecipeError


def recipe_check(recipes: list[Path], json_output: bool) -> None:
    """Validate recipes and their locks; raise RecipeError if any is wrong."""
    from kiln.lockfile import check_lock, read_lock
    from kiln.recipe import load_recipe, recipe_files

    rows: list[dict[str, str]] = []
    bad = 0
    recipes = recipe_files(recipes, hint="kiln recipe check recipes/")
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
    from kiln.cli.plain import print_json, table

    if json_output:
        print_json(rows)
    else:
        table(None, ["recipe", "status", "detail"],
              [[r["recipe"], r["status"], r["detail"]] for r in rows])
    if bad:
        raise RecipeError(f"{bad} of {len(recipes)} recipe(s) failed the check")


def plain_command_line(argv: list[str]) -> tuple[list[Path], bool] | None:
    """(recipes, --json) when ``argv`` is ``recipe check [--json] RECIPE…`` and nothing else
    (typer handles every other form: help, root options, a typo)."""
    if argv[:2] != ["recipe", "check"]:
        return None
    rest = argv[2:]
    paths = [a for a in rest if a != "--json"]
    if not paths or any(a.startswith("-") for a in paths):
        return None
    return [Path(a) for a in paths], "--json" in rest

"""``kiln build --backend cibuildwheel --print-config``: the translation, without building."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from kiln.cli.console import out, print_json
from kiln.errors import NothingToDoError, UsageError
from kiln.installer import IndexOptions

# What the macOS translation calls the build's folder, which exists only while it builds.
WORKSPACE_PLACEHOLDER = "<workspace>"


def cibuildwheel_configs(recipes: list[Path], *, pythons: tuple[str, ...],
                         targets: tuple[str, ...], backend: str | None, cache: Path,
                         extra_env: tuple[tuple[str, str], ...],
                         index: IndexOptions) -> list[dict[str, Any]]:
    """One entry per recipe × Python × target: the CIBW_* variables and the TOML table."""
    from kiln.cibuildwheel_config import CONTAINER_PROJECT, translate
    from kiln.fetch import fetch_sdist, source_date_epoch
    from kiln.pep517 import effective_config_settings, sdist_backend
    from kiln.recipe import canonical_backend, default_backend, load_recipe
    from kiln.toolchain.targets import TARGETS

    entries = []
    for path in recipes:
        recipe = load_recipe(path)
        chosen = canonical_backend(backend) if backend else (
            recipe.backend or default_backend(recipe)[0])
        if chosen != "cibuildwheel":
            raise UsageError(f"{path}: --print-config shows cibuildwheel's configuration, and "
                             f"this build uses the {chosen} backend",
                             hint="add --backend cibuildwheel")
        # SOURCE_DATE_EPOCH and the build backend come from the sdist (cached).
        source = fetch_sdist(recipe, cache)
        epoch = source_date_epoch(source, recipe)
        settings = effective_config_settings(sdist_backend(source.path),
                                             dict(recipe.config_settings))
        for python in pythons or recipe.pythons:
            for name in targets or recipe.targets:
                target = TARGETS[name]
                root = CONTAINER_PROJECT if target.is_linux else WORKSPACE_PLACEHOLDER
                config = translate(recipe, python, target, source_date_epoch=epoch,
                                   project_root=root, extra_env=extra_env, index=index,
                                   config_settings=settings)
                entries.append({
                    "recipe": str(path), "python": python, "target": name,
                    "identifier": config.identifier,
                    "image": config.image.reference if config.image else None,
                    "environment": config.env(),
                    "command": ["cibuildwheel", *config.argv("<sdist folder>", "<output>")],
                    "toml": config.to_toml(),
                })
    if not entries:
        raise NothingToDoError("no recipes given", hint="kiln build --backend cibuildwheel "
                               "--print-config recipes/NAME.toml")
    return entries


def print_configs(entries: list[dict[str, Any]], *, json_output: bool) -> None:
    if json_output:
        print_json(entries)
        return
    for i, entry in enumerate(entries):
        if i:
            out.print()
        out.print(f"# {entry['recipe']}: {entry['identifier']} ({entry['target']})",
                  highlight=False, markup=False)
        if entry["image"]:
            out.print(f"# image: {entry['image']}", highlight=False, markup=False)
        for name, value in entry["environment"].items():
            out.print(f"{name}={shlex.quote(value)}", highlight=False, markup=False)
        out.print(f"# {shlex.join(entry['command'])}", highlight=False, markup=False)
        out.print("# the same options as pyproject.toml:", highlight=False, markup=False)
        out.print(entry["toml"].rstrip("\n"), highlight=False, markup=False)

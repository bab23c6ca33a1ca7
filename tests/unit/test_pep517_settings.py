"""Config settings: kiln fixes meson-python's random build folder unless the recipe chose."""

from __future__ import annotations

from kiln.pep517 import BuildSystem, effective_config_settings

MESONPY = BuildSystem(requires=("meson-python",), backend="mesonpy", backend_path=())
SETUPTOOLS = BuildSystem(requires=("setuptools",), backend="setuptools.build_meta",
                         backend_path=())


def test_meson_python_builds_in_a_fixed_folder():
    assert effective_config_settings(MESONPY, {}) == {"build-dir": "build"}
    assert effective_config_settings(MESONPY, {"setup-args": "-Dblas=openblas"}) == {
        "build-dir": "build", "setup-args": "-Dblas=openblas"}


def test_the_recipe_wins_and_other_backends_get_only_the_recipes():
    assert effective_config_settings(MESONPY, {"build-dir": "out"}) == {"build-dir": "out"}
    assert effective_config_settings(SETUPTOOLS, {}) == {}
    assert effective_config_settings(SETUPTOOLS, {"x": "1"}) == {"x": "1"}

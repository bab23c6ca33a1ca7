"""Config settings: kiln fixes meson-python's random build folder unless the recipe chose."""

from __future__ import annotations

from kiln.pep517 import BuildSystem, effective_config_settings

MESONPY = BuildSystem(requires=("meson-python",), backend="mesonpy", backend_path=())
SETUPTOOLS = BuildSystem(requires=("setuptools",), backend="setuptools.build_meta",
                         backend_path=())


def test_meson_python_builds_in_a_fixed_folder():
    assert effective_config_settings(MESONPY.backend, {}) == {"build-dir": "build"}
    assert effective_config_settings(MESONPY.backend, {"setup-args": "-Dblas=openblas"}) == {
        "build-dir": "build", "setup-args": "-Dblas=openblas"}


def test_the_recipe_wins_and_other_backends_get_only_the_recipes():
    assert effective_config_settings(MESONPY.backend, {"build-dir": "out"}) == {"build-dir": "out"}
    assert effective_config_settings(SETUPTOOLS.backend, {}) == {}
    assert effective_config_settings(SETUPTOOLS.backend, {"x": "1"}) == {"x": "1"}


def test_the_backend_is_read_from_the_sdist_without_unpacking(tmp_path):
    from kiln.pep517 import LEGACY_BACKEND, sdist_backend
    from tests.conftest import make_sdist

    meson = make_sdist(tmp_path / "a", "m", "1.0", {
        "pyproject.toml": '[build-system]\nrequires = ["meson-python"]\n'
                          'build-backend = "mesonpy"\n'})
    assert sdist_backend(meson.path) == "mesonpy"
    legacy = make_sdist(tmp_path / "b", "l", "1.0", {"setup.py": "", "sub/pyproject.toml": ""})
    assert sdist_backend(legacy.path) == LEGACY_BACKEND
    broken = tmp_path / "c-1.0.tar.gz"
    broken.write_bytes(b"no")
    assert sdist_backend(broken) == LEGACY_BACKEND

"""The cibuildwheel backend through the real CLI: --print-config, the refusals, and a real run
where a container engine works (skipped, with the reason, where none does)."""

from __future__ import annotations

import json
import sys
import zipfile

import pytest

from kiln import toml
from kiln.backends.cibuildwheel import find_container_engine
from kiln.errors import UnsupportedError

pytest.importorskip("cibuildwheel", reason="cibuildwheel is not installed "
                    "(pip install -e '.[test]' or '.[cibuildwheel]')")


def test_print_config_shows_the_translation_and_builds_nothing(run_kiln, cext_recipe, tmp_path):
    result = run_kiln("build", "--backend", "cibuildwheel", "--print-config", "--json",
                      "-t", "linux-x86_64", "-t", "macos-arm64", "-e", "EXTRA=$(not run)",
                      "-o", tmp_path / "wh", cext_recipe, check=True)
    entries = json.loads(result.stdout)
    assert [(e["identifier"], e["target"]) for e in entries] == [
        ("cp311-manylinux_x86_64", "linux-x86_64"), ("cp311-macosx_arm64", "macos-arm64")]
    linux, mac = entries
    env = linux["environment"]
    assert env["CIBW_BUILD"] == "cp311-manylinux_x86_64"
    assert env["CIBW_MANYLINUX_X86_64_IMAGE"] == linux["image"]
    assert "@sha256:" in linux["image"]
    assert 'SOURCE_DATE_EPOCH="1700000000"' in env["CIBW_ENVIRONMENT"]
    assert 'EXTRA="\\$(not run)"' in env["CIBW_ENVIRONMENT"]
    assert env["CIBW_TEST_COMMAND"] == (
        "python -c 'import cext_demo; assert cext_demo.add(2, 3) == 5'")
    table = toml.loads(linux["toml"])["tool"]["cibuildwheel"]
    assert table["build"] == "cp311-manylinux_x86_64"
    assert table["environment"]["EXTRA"] == "\\$(not run)"
    assert mac["image"] is None
    assert mac["environment"]["CIBW_PLATFORM"] == "macos"
    assert not (tmp_path / "wh").exists()

    text = run_kiln("build", "--backend", "cibuildwheel", "--print-config", cext_recipe,
                    check=True).stdout
    assert "CIBW_BUILD=cp311-manylinux_x86_64" in text.replace("'", "")
    assert "[tool.cibuildwheel]" in text


def test_print_config_is_only_for_cibuildwheel(run_kiln, cext_recipe):
    result = run_kiln("build", "--print-config", cext_recipe)
    assert result.returncode == 2
    assert "uses the hermetic backend" in result.stderr
    assert "hint: add --backend cibuildwheel" in result.stderr


def test_without_a_container_engine_it_says_so_and_exits_64(run_kiln, cext_recipe, tmp_path):
    result = run_kiln("build", "--backend", "cibuildwheel", "-t", "linux-x86_64",
                      "-o", tmp_path / "wh", cext_recipe,
                      env={"KILN_CONTAINER_ENGINE": "no-such-engine"})
    assert result.returncode == 64, result.stderr
    assert ("cibuildwheel builds Linux wheels in containers, and no container engine works "
            "here (no-such-engine: not installed)") in result.stderr
    assert "hint: start the Docker daemon" in result.stderr
    assert not list((tmp_path / "wh").glob("*.whl"))


@pytest.mark.skipif(sys.platform == "darwin", reason="this host builds macOS wheels")
def test_macos_targets_need_a_mac(run_kiln, cext_recipe, tmp_path):
    result = run_kiln("build", "--backend", "cibuildwheel", "-t", "macos-arm64",
                      "-o", tmp_path / "wh", cext_recipe)
    assert result.returncode == 64
    assert "cibuildwheel builds macOS wheels only on a macOS host" in result.stderr


@pytest.mark.network
@pytest.mark.slow
def test_a_real_cibuildwheel_build_goes_through_kilns_stages(run_kiln, cext_recipe, tmp_path):
    try:
        engine = find_container_engine()
    except UnsupportedError as exc:
        pytest.skip(f"no real cibuildwheel run here: {exc.message}")
    result = run_kiln("build", "--backend", "cibuildwheel", "-t", "linux-x86_64",
                      "--check-repro", "-o", tmp_path / "wh", cext_recipe, "--json",
                      timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    wheels = list((tmp_path / "wh").glob("*.whl"))
    assert len(wheels) == 1
    wheel = wheels[0]
    assert "manylinux_2_17_x86_64" in wheel.name
    record = json.loads((wheel.parent / (wheel.name + ".build.json")).read_text())
    assert record["backend"] == "cibuildwheel"
    assert record["repair"]["tool"].startswith("cibuildwheel")
    tools = {t["name"]: t for t in record["toolchain"]}
    assert tools[engine.name]["version"] == engine.version
    assert tools["image manylinux2014"]["path"].startswith("quay.io/pypa/manylinux2014_x86_64@")
    assert record["environment"]["SOURCE_DATE_EPOCH"] == "1700000000"
    assert record["test"]["passed"] is True
    assert record["repro"]["checked"] and record["repro"]["reproducible"]
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.startswith("cext_demo/_speedups") for n in zf.namelist())


def test_print_config_gives_meson_python_its_fixed_build_folder(run_kiln, tmp_path):
    from tests.conftest import make_sdist, recipe_text

    pyproject = ('[build-system]\nrequires = ["meson-python"]\n'
                 'build-backend = "mesonpy"\n[project]\nname = "mesony"\nversion = "1.0"\n')
    sdist = make_sdist(tmp_path / "sdists", "mesony", "1.0", {"pyproject.toml": pyproject})
    recipe = tmp_path / "recipes" / "mesony.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(sdist, extra='\n[repro]\nexpected = true\n'))
    result = run_kiln("build", "--backend", "cibuildwheel", "--print-config", "--json",
                      "-t", "linux-x86_64", recipe, check=True)
    entry = json.loads(result.stdout)[0]
    assert entry["environment"]["CIBW_CONFIG_SETTINGS"] == "build-dir=build"
    table = toml.loads(entry["toml"])["tool"]["cibuildwheel"]
    assert table["config-settings"] == {"build-dir": "build"}

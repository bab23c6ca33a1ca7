"""The real pipeline on a C extension the test makes itself: no network needed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow


def _install_and_call(wheel: Path, tmp_path: Path) -> str:
    venv = tmp_path / "check-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    out = subprocess.run([venv / "bin" / "python", "-c",
                          "import cext_demo; print(cext_demo.add(40, 2), cext_demo.where())"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    return out.stdout.strip()


def test_build_makes_a_manylinux_wheel_with_a_record(run_kiln, cext_recipe, tmp_path):
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", check=True)
    wheels = list((tmp_path / "wh").glob("*.whl"))
    assert len(wheels) == 1, result.stderr
    wheel = wheels[0]
    assert wheel.name.startswith("cext_demo-1.0-cp311-cp311-")
    assert "manylinux_2_17_x86_64" in wheel.name or "manylinux_2_5" in wheel.name
    record = json.loads((wheel.parent / (wheel.name + ".build.json")).read_text())
    assert record["outputs"][0]["filename"] == wheel.name
    assert record["source"]["sha256"] in cext_recipe.read_text()
    assert record["test"]["passed"] is True
    assert record["normalisation"]["source_date_epoch"] == 1700000000
    assert record["build_requirements"][0]["name"] == "setuptools"
    assert (tmp_path / "wh" / "logs").is_dir()
    # The compiled module works, and no temporary build folder reached it.
    number, compiled_from = _install_and_call(wheel, tmp_path).split(" ", 1)
    assert number == "42"
    assert "kiln-cache" not in compiled_from and "/tmp/" not in compiled_from
    # The lock was written beside the recipe, with hashes.
    lock = cext_recipe.with_suffix(".lock").read_text()
    assert "--hash=sha256:" in lock


def test_second_build_is_served_from_the_cache(run_kiln, cext_recipe, tmp_path):
    first = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json", check=True)
    second = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json", check=True)
    a, b = json.loads(first.stdout)[0], json.loads(second.stdout)[0]
    assert a["status"] == "built"
    assert b["status"] == "cached"
    assert a["record"]["outputs"] == b["record"]["outputs"]
    assert "using the cached build" in second.stderr
    forced = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json", "--no-cache",
                      check=True)
    assert json.loads(forced.stdout)[0]["status"] == "built"


def test_check_repro_passes_for_the_fixture(run_kiln, cext_recipe, tmp_path):
    result = run_kiln("build", "--check-repro", cext_recipe, "-o", tmp_path / "wh", "--json",
                      check=True)
    record = json.loads(result.stdout)[0]["record"]
    assert record["repro"]["reproducible"] is True
    assert len(set(record["repro"]["digests"])) == 1
    assert "build_path" in record["repro"]["variations"]
    assert "hash_seed" in record["repro"]["variations"]


def test_failing_test_fails_the_build_and_keeps_the_log(run_kiln, cext_recipe, tmp_path):
    text = cext_recipe.read_text().replace("== 5", "== 6")
    cext_recipe.write_text(text)
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh")
    assert result.returncode == 12, result.stderr
    assert "error:" in result.stderr and "test command" in result.stderr
    assert "Traceback" not in result.stderr.split("error:")[1].split("\n")[0]
    assert not list((tmp_path / "wh").glob("*.whl"))
    logs = list((tmp_path / "wh" / "logs").glob("*.log"))
    assert logs and "AssertionError" in logs[0].read_text()


def _failing_build(run_kiln, tmp_path: Path, files: dict[str, str]):
    """`kiln build` of a fixture sdist with these files, which must fail."""
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
    recipe = tmp_path / "recipes" / "cext-demo.toml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(recipe_text(sdist))
    result = run_kiln("build", recipe, "-o", tmp_path / "wh")
    assert result.returncode != 0, result.stdout
    return result


def test_a_missing_header_is_named_with_what_to_install(run_kiln, tmp_path):
    files = cext_files()
    files["src/speedups.c"] = "#include <kiln_no_such_lib/api.h>\n" + files["src/speedups.c"]
    result = _failing_build(run_kiln, tmp_path, files)
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert "the log says: " in error and "kiln_no_such_lib/api.h" in error
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint:"))
    assert "apt-file search kiln_no_such_lib/api.h" in hint and "system-requires" in hint


def test_a_failure_while_locking_keeps_its_log(run_kiln, tmp_path):
    files = cext_files()
    files["setup.py"] = ("import sys\nsys.stderr.write('Trying pkg-config --exists kilnlib\\n')\n"
                         "raise SystemExit('Can not find kilnlib: set KILNLIB_CFLAGS')\n")
    result = _failing_build(run_kiln, tmp_path, files)
    log_line = next(line for line in result.stderr.splitlines() if line.startswith("log:"))
    log = Path(log_line.split(":", 1)[1].strip())
    assert log.is_file(), log_line
    assert "Can not find kilnlib" in log.read_text()

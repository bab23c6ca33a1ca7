"""Real sdists from PyPI, built end to end as a user would. Needs the network (PyPI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.network, pytest.mark.slow]
ONLINE = {"KILN_NO_INDEX": "", "KILN_FIND_LINKS": ""}


def install_and_run(wheel: Path, code: str, tmp_path: Path) -> str:
    venv = tmp_path / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-index", "--no-deps", wheel],
                   check=True)
    out = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    return out.stdout.strip()


def test_markupsafe_from_the_shipped_recipe(run_kiln, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("markupsafe.toml", "markupsafe.lock"):
        shutil.copy(ROOT / "recipes" / name, recipes / name)
    result = run_kiln("build", "--check-repro", recipes / "markupsafe.toml", "--python", "3.11",
                      "--target", "linux-x86_64", "-o", tmp_path / "wh", "--json", env=ONLINE,
                      check=True)
    built = [r for r in json.loads(result.stdout) if r["status"] != "skipped"]
    assert len(built) == 1
    record = built[0]["record"]
    assert record["backend"] == "hermetic" and record["hermetic"] is True
    wheel = Path(built[0]["wheel"])
    assert "manylinux_2_17_x86_64" in wheel.name and "cp311-cp311" in wheel.name
    assert record["repro"]["reproducible"] is True
    assert record["test"]["passed"] is True
    answer = install_and_run(wheel, "from markupsafe import _speedups, escape; "
                                    "print(escape('<b>'), escape.__module__)", tmp_path)
    assert answer == "&lt;b&gt; markupsafe._speedups"


def test_a_package_kiln_never_saw_from_recipe_new_to_wheel(run_kiln, tmp_path):
    made = run_kiln("recipe", "new", "lru-dict==1.3.0", "--python", "3.11", "--json",
                    env=ONLINE, check=True)
    recipe = Path(tmp_path / json.loads(made.stdout)["path"])
    assert recipe.exists()
    result = run_kiln("build", recipe, "-o", tmp_path / "wh", "--json", env=ONLINE, check=True)
    (entry,) = json.loads(result.stdout)
    wheel = Path(entry["wheel"])
    assert "manylinux" in wheel.name
    assert entry["record"]["test"]["passed"] is True
    answer = install_and_run(wheel, "from lru import LRU; cache = LRU(2); cache[1] = 'a'; "
                                    "cache[2] = 'b'; cache[3] = 'c'; print(sorted(cache.keys()))",
                             tmp_path)
    assert answer == "[2, 3]"  # the compiled LRU evicted the oldest
    assert recipe.with_suffix(".lock").exists()

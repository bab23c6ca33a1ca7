"""Starting kiln imports only what the command needs (issue 15: no wait to start).

The modules a run leaves in ``sys.modules`` are compared, not its time: which modules load
does not depend on how busy the machine is. (``-X importtime`` would not do: it leaves out
what ``importlib.import_module`` loads, which is how the CLI loads a command's module.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cext_files, make_sdist, recipe_text

# Writes the names of the loaded modules to argv[1] when kiln exits, whichever way it exits.
RUN = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["kiln", *sys.argv[2:]]
runpy.run_module("kiln", run_name="__main__", alter_sys=True)
"""
# The CLI's frameworks and the heavy third-party packages.
FRAMEWORKS = {"typer", "click", "rich", "pydantic", "httpx", "cryptography", "sigstore"}


def loaded(tmp_path: Path, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    modules = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", RUN, str(modules), *map(str, args)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                 "KILN_CACHE_DIR": str(tmp_path / "cache")})
    return result, set(json.loads(modules.read_text()))


def test_version_imports_no_cli_framework(tmp_path):
    result, modules = loaded(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kiln ")
    top = {name.split(".")[0] for name in modules}
    assert not top & FRAMEWORKS, sorted(top & FRAMEWORKS)
    assert not {m for m in modules if m.startswith("kiln.cli.")}


def test_recipe_check_imports_the_lock_reader_not_the_build(tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", cext_files())
    recipe = tmp_path / "cext-demo.toml"
    recipe.write_text(recipe_text(sdist))
    result, modules = loaded(tmp_path, "recipe", "check", recipe)
    assert result.returncode == 0, result.stderr
    assert "kiln.lockfile" in modules
    heavy = {"kiln.lock", "kiln.pipeline", "kiln.build", "kiln.buildenv", "kiln.fetch",
             "kiln.http", "kiln.backends", "kiln.repair", "kiln.signing", "kiln.provenance"}
    assert not modules & heavy, sorted(modules & heavy)
    # Served without typer or rich: only the check and the plain table that draws it.
    assert {m for m in modules if m.startswith("kiln.cli.")} <= {
        "kiln.cli.recipecheck", "kiln.cli.plain"}
    top = {name.split(".")[0] for name in modules}
    assert not top & FRAMEWORKS, sorted(top & FRAMEWORKS)
    # packaging's tags (platform, sysconfig) and requirement parser are not needed to read
    # a recipe without build requirements and its lock.
    assert not modules & {"packaging.tags", "packaging.requirements"}


def test_recipe_check_with_options_goes_through_typer(tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", cext_files())
    recipe = tmp_path / "cext-demo.toml"
    recipe.write_text(recipe_text(sdist))
    fast, _ = loaded(tmp_path, "recipe", "check", recipe, "--json")
    slow, modules = loaded(tmp_path, "-q", "recipe", "check", recipe, "--json")
    assert "typer" in {name.split(".")[0] for name in modules}
    assert json.loads(fast.stdout) == json.loads(slow.stdout)
    assert fast.returncode == slow.returncode == 0

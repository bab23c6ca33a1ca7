"""A cached ``kiln build`` asked again is answered without the pipeline (kiln.replay), and
delivers what the pipeline's cache hit delivers; what it cannot vouch for goes to the
pipeline (issue 15: a cached build served in ≤ 0.05× the manual pipeline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

# Runs kiln as `python -m kiln` does, and writes the modules it loaded to argv[1].
RUN = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["kiln", *sys.argv[2:]]
runpy.run_module("kiln", run_name="__main__", alter_sys=True)
"""


def _kiln(env: dict[str, str], cwd: Path, *args: str | Path,
          ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    modules = cwd / "modules.json"
    result = subprocess.run([sys.executable, "-c", RUN, str(modules), *map(str, args)],
                            cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=900)
    return result, set(json.loads(modules.read_text()))


def _pipeline(modules: set[str]) -> bool:
    return "kiln.pipeline" in modules


def _files(wheelhouse: Path) -> dict[str, bytes]:
    return {str(p.relative_to(wheelhouse)): p.read_bytes()
            for p in sorted(wheelhouse.rglob("*")) if p.is_file()}


def test_a_cached_build_asked_again_is_served_without_the_pipeline(kiln_env, cext_recipe,
                                                                    tmp_path):
    build = ["build", cext_recipe, "-p", "3.11", "-t", "linux-x86_64"]
    first, modules = _kiln(kiln_env, tmp_path, *build, "-o", "built")
    assert first.returncode == 0, first.stderr
    assert _pipeline(modules) and "│ built" in first.stdout

    # The pipeline's own cache hit, with the memo turned off, is the reference.
    hit, modules = _kiln({**kiln_env, "KILN_NO_MEMO": "1"}, tmp_path, *build, "-o", "hit")
    assert hit.returncode == 0, hit.stderr
    assert _pipeline(modules) and "│ cached" in hit.stdout

    again, modules = _kiln(kiln_env, tmp_path, *build, "-o", "replayed")
    assert again.returncode == 0, again.stderr
    top = {name.split(".")[0] for name in modules}
    assert not top & {"typer", "click", "rich", "pydantic"}, sorted(top)
    assert not _pipeline(modules)
    assert "│ cached" in again.stdout
    assert "using the cached build" in again.stderr

    # The same files, byte for byte, but for the status file's time and duration.
    hit_files, replayed = _files(tmp_path / "hit"), _files(tmp_path / "replayed")
    assert hit_files.keys() == replayed.keys()
    for name, data in hit_files.items():
        if name.startswith(".kiln/status/"):
            a, b = json.loads(data), json.loads(replayed[name])
            for key in ("seconds", "finished"):
                a.pop(key), b.pop(key)
            assert a == b
        else:
            assert data == replayed[name], name
    # `kiln status` reads what the replay wrote.
    status, _ = _kiln(kiln_env, tmp_path, "status", cext_recipe.parent, "-w", "replayed",
                      "--json")
    assert status.returncode == 0, status.stderr
    assert "cext_demo-1.0-cp311" in status.stdout


def test_what_the_replay_cannot_vouch_for_goes_to_the_pipeline(kiln_env, cext_recipe,
                                                                 tmp_path):
    build = ["build", cext_recipe, "-p", "3.11", "-t", "linux-x86_64", "-o", "wh"]
    first, _ = _kiln(kiln_env, tmp_path, *build)
    assert first.returncode == 0, first.stderr
    wheel = next((tmp_path / "wh").glob("*.whl"))

    # Another flag than the plain ones: typer and the pipeline (still a cache hit).
    other, modules = _kiln(kiln_env, tmp_path, *build, "--fail-fast")
    assert other.returncode == 0 and _pipeline(modules)

    # The recipe's bytes changed (a comment): the pipeline, whose build id is the same.
    cext_recipe.write_text(cext_recipe.read_text() + "# a comment\n")
    changed, modules = _kiln(kiln_env, tmp_path, *build)
    assert changed.returncode == 0 and _pipeline(modules)
    assert "│ cached" in changed.stdout
    served, modules = _kiln(kiln_env, tmp_path, *build)  # remembered again
    assert served.returncode == 0 and not _pipeline(modules)

    # A different wheel of that name in the wheelhouse: the pipeline refuses to replace it.
    original = wheel.read_bytes()
    wheel.write_bytes(original + b"\0")
    clash, modules = _kiln(kiln_env, tmp_path, *build)
    assert clash.returncode != 0 and _pipeline(modules)
    assert "already exists with different contents" in clash.stderr
    assert wheel.read_bytes() == original + b"\0"  # nothing overwritten
    wheel.write_bytes(original)

    # The cached wheel altered behind kiln's back: not served; the pipeline builds again.
    (entry,) = [p.parent for p in (Path(kiln_env["KILN_CACHE_DIR"]) / "builds").glob(
        f"*/{wheel.name}")]
    (entry / wheel.name).write_bytes(original + b"\0")
    rebuilt, modules = _kiln(kiln_env, tmp_path, *build)
    assert rebuilt.returncode == 0 and _pipeline(modules), rebuilt.stderr
    assert "│ built" in rebuilt.stdout
    assert wheel.read_bytes() == original
    # The rebuild replaced the bad entry, so the next command is served again.
    assert (entry / wheel.name).read_bytes() == original
    served, modules = _kiln(kiln_env, tmp_path, *build)
    assert served.returncode == 0 and not _pipeline(modules)


def test_a_recipe_edited_while_it_builds_is_not_answered_from_that_build(kiln_env,
                                                                         cext_recipe,
                                                                         tmp_path):
    """The memo is keyed by the recipe as the build read it, not as it is when the build
    ends: an edit made meanwhile is a recipe these wheels were not built from."""
    modules = tmp_path / "modules.json"
    build = ["build", str(cext_recipe), "-p", "3.11", "-t", "linux-x86_64", "-o", "built"]
    running = subprocess.Popen([sys.executable, "-c", RUN, str(modules), *build], cwd=tmp_path,
                               env={**kiln_env, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert running.stderr is not None
    first = running.stderr.readline()  # the pipeline has read the recipe: "→ fetch …"
    assert "fetch" in first, first
    with cext_recipe.open("a") as recipe:
        recipe.write("\n# edited while it built\n")
    _, err = running.communicate(timeout=900)
    assert running.returncode == 0, err
    assert _pipeline(set(json.loads(modules.read_text())))

    again, loaded = _kiln(kiln_env, tmp_path, *build)
    assert again.returncode == 0, again.stderr
    assert _pipeline(loaded), "the edited recipe was answered from the build before the edit"

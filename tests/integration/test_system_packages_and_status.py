"""System packages and `kiln status` through the real CLI, offline, on a fixture C extension.

Needs dpkg (Debian/Ubuntu, as in CI): the recipe asks for libc6-dev, which every machine
with a C compiler has, and for a package that no machine has.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None,
                                reason="needs a Debian or Ubuntu host (dpkg-query)")


def dpkg_version(name: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_missing_system_package_stops_before_building_and_says_what_to_run(run_kiln,
                                                                          cext_recipe, tmp_path):
    text = cext_recipe.read_text().replace(
        '[build]\n', '[build]\nsystem-requires = { debian = ["libc6-dev", '
                     '"kiln-test-no-such-package"] }\n')
    cext_recipe.write_text(text)
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh")
    assert result.returncode == 8, result.stderr
    stderr = " ".join(result.stderr.split())
    assert "kiln-test-no-such-package" in stderr and "system-requires" in stderr
    assert "apt-get install -y --no-install-recommends kiln-test-no-such-package" in stderr
    assert not list((tmp_path / "wh").glob("*.whl"))  # nothing was built
    # the failure is kept for `kiln status`, for every Python and target of the recipe
    status = run_kiln("status", cext_recipe.parent, "--wheelhouse", tmp_path / "wh", "--json",
                      "--no-audit", check=True)
    (cell,) = json.loads(status.stdout)["cells"]
    assert cell["result"] == "failed" and "kiln-test-no-such-package" in cell["why"]


def test_installed_system_packages_are_recorded_with_their_versions(run_kiln, cext_recipe,
                                                                    tmp_path):
    text = cext_recipe.read_text().replace(
        '[build]\n', '[build]\nsystem-requires = { debian = ["libc6-dev"] }\n')
    cext_recipe.write_text(text)
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json", check=True)
    (entry,) = json.loads(result.stdout)
    assert entry["record"]["system_packages"] == [
        {"name": "libc6-dev", "version": dpkg_version("libc6-dev"), "path": "", "sha256": ""}]
    # without it in the recipe, the build is another build
    plain = cext_recipe.read_text().replace('system-requires = { debian = ["libc6-dev"] }\n', "")
    cext_recipe.write_text(plain)
    again = run_kiln("build", cext_recipe, "-o", tmp_path / "wh2", "--json", check=True)
    assert json.loads(again.stdout)[0]["record"]["build_id"] != entry["record"]["build_id"]


def test_status_table_and_packages_md_after_a_build(run_kiln, cext_recipe, tmp_path):
    run_kiln("build", "--check-repro", cext_recipe, "-o", tmp_path / "wh", check=True)
    page = tmp_path / "PACKAGES.md"
    shown = run_kiln("status", cext_recipe.parent, "--wheelhouse", tmp_path / "wh",
                     "--write", page, check=True, cwd=tmp_path)
    assert "cext-demo" in shown.stdout and "built" in shown.stdout
    assert "1 built, 0 failed" in shown.stdout
    text = page.read_text()
    assert "| cext-demo | 1.0 | 3.11 | linux-x86_64 | built | yes | yes | no | passed |" in text
    assert "Nothing failed." in text
    # no git repository here: the audit branch is simply not there
    assert "note:" in shown.stderr and "audit" in shown.stderr


def test_status_reads_the_audit_branch(run_kiln, cext_recipe, tmp_path):
    identity = {"GIT_AUTHOR_NAME": "kiln test", "GIT_AUTHOR_EMAIL": "test@kiln.invalid",
                "GIT_COMMITTER_NAME": "kiln test", "GIT_COMMITTER_EMAIL": "test@kiln.invalid"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    run_kiln("build", "--audit", cext_recipe, "-o", tmp_path / "wh", check=True, env=identity)
    shown = run_kiln("status", cext_recipe.parent, "--wheelhouse", tmp_path / "wh", "--json",
                     check=True)
    (cell,) = json.loads(shown.stdout)["cells"]
    assert (cell["result"], cell["audit"]) == ("built", "recorded")
    # another machine: no wheelhouse, only the branch (as after a clone)
    shutil.rmtree(tmp_path / "wh")
    shown = run_kiln("status", cext_recipe.parent, "--wheelhouse", tmp_path / "wh", "--json",
                     check=True)
    (cell,) = json.loads(shown.stdout)["cells"]
    assert cell["result"] == "recorded" and cell["wheel"].startswith("cext_demo-1.0-cp311")
    assert json.loads(shown.stdout)["audit"] == "the audit branch (refs/heads/audit)"


def test_a_page_of_more_recipes_is_not_rewritten_from_fewer(run_kiln, cext_recipe, tmp_path):
    """--write renders the page from the recipes named: the rows of any other recipe the page
    lists would go. kiln says so and leaves the page as it was, unless asked to --replace."""
    other = cext_recipe.parent / "other-demo.toml"
    other.write_text(cext_recipe.read_text().replace('name = "cext-demo"', 'name = "other-demo"'))
    page = tmp_path / "PACKAGES.md"
    run_kiln("status", cext_recipe.parent, "--wheelhouse", tmp_path / "wh", "--write", page,
             "--no-audit", check=True, cwd=tmp_path)
    whole = page.read_text()
    assert "| other-demo |" in whole and "| cext-demo |" in whole

    refused = run_kiln("status", cext_recipe, "--wheelhouse", tmp_path / "wh", "--write", page,
                       "--no-audit", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "1 recipe(s) these are not (other-demo)" in refused.stderr
    assert "--replace" in refused.stderr
    assert page.read_text() == whole

    run_kiln("status", cext_recipe, "--wheelhouse", tmp_path / "wh", "--write", page,
             "--no-audit", "--replace", check=True, cwd=tmp_path)
    assert "| other-demo |" not in page.read_text()
    # The same recipes again need no --replace.
    run_kiln("status", cext_recipe, "--wheelhouse", tmp_path / "wh", "--write", page,
             "--no-audit", check=True, cwd=tmp_path)

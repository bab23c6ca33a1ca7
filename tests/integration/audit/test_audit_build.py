"""End to end: `kiln build --check-repro --sign-key K --audit` on the offline C-extension
fixture, then the audit commands and `kiln verify` reading the attestation from the branch.
"""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.slow


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_build_signs_and_records_and_verify_finds_the_record(run_kiln, cext_recipe, tmp_path,
                                                            signing_key):
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q", "-b", "main")
    (project / "notes.txt").write_text("uncommitted\n")
    house = tmp_path / "wh"
    built = run_kiln("build", "--check-repro", "--sign-key", signing_key[0], "--audit",
                     cext_recipe, "-o", house, "--json", cwd=project, check=True)
    (wheel,) = [house / r["wheel"].rsplit("/", 1)[-1] for r in json.loads(built.stdout)]
    assert (house / (wheel.name + ".dsse.json")).exists()
    assert _git(project, "rev-list", "--count", "audit") == "1"
    assert _git(project, "status", "--porcelain") == "?? notes.txt"

    (entry,) = json.loads(run_kiln("audit", "log", "--json", cwd=project, check=True).stdout)
    assert entry["wheel"] == wheel.name
    assert entry["reproducible"] is True and entry["reproducibility_checked"] is True
    assert entry["signed_by"].startswith("key ")
    run_kiln("audit", "verify", "--key", signing_key[1], "--wheelhouse", house, cwd=project,
             check=True)

    # The same build again (from the cache) records nothing new.
    run_kiln("build", "--sign-key", signing_key[0], "--audit", cext_recipe, "-o", house,
             cwd=project, check=True)
    assert _git(project, "rev-list", "--count", "audit") == "1"

    # With nothing beside the wheel, `kiln verify` finds the signature on the audit branch …
    (house / (wheel.name + ".dsse.json")).unlink()
    found = run_kiln("verify", wheel, "--key", signing_key[1], "--json", cwd=project)
    assert found.returncode == 0, found.stderr
    (result,) = json.loads(found.stdout)
    assert "audit branch" in result["signatures"][0]["attestation"]
    # … and a changed wheel still fails against it.
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    tampered = run_kiln("verify", wheel, "--key", signing_key[1], cwd=project)
    assert tampered.returncode == 22, tampered.stderr

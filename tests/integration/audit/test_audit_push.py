"""`kiln audit push` against a real bare repository that other writers push to as well."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from audit_helpers import git, kiln


@pytest.fixture
def remote(tmp_path: Path, repo: Path) -> Path:
    """A bare repository, ``origin`` of ``repo``."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    return bare


def _clone(remote: Path, target: Path) -> Path:
    git(remote.parent, "clone", "-q", str(remote), str(target))
    return target


def _push(repo: Path) -> dict[str, object]:
    result = kiln("audit", "push", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    pushed: dict[str, object] = json.loads(result.stdout)
    return pushed


def _remote_records(remote: Path) -> list[str]:
    return sorted(git(remote, "ls-tree", "-r", "--name-only", "audit").splitlines())


def _linear(remote: Path) -> int:
    commits = git(remote, "rev-list", "--parents", "audit").splitlines()
    assert all(len(c.split()) <= 2 for c in commits)
    assert sum(1 for c in commits if len(c.split()) == 1) == 1
    return len(commits)


def test_push_replays_our_records_and_retries_when_the_remote_moves(
        repo, remote, tmp_path, signed_wheel, signing_key):
    w = [signed_wheel("demo", f"1.{i}", seed=str(i), folder=tmp_path / f"wh{i}")
         for i in range(6)]
    assert kiln("audit", "record", w[0], w[1], cwd=repo).returncode == 0
    first = _push(repo)
    assert first["pushed"] == 2 and first["attempts"] == 1
    assert git(remote, "rev-parse", "audit") == git(repo, "rev-parse", "audit")

    # A fresh clone reads the remote's branch, and records on top of it.
    other = _clone(remote, tmp_path / "other")
    log = json.loads(kiln("audit", "log", "--json", cwd=other).stdout)
    assert [e["wheel"] for e in log] == [w[1].name, w[0].name]
    fresh = kiln("audit", "verify", "--key", signing_key[1], cwd=other)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "refs/remotes/origin/audit" in fresh.stdout
    assert kiln("audit", "record", w[2], cwd=other).returncode == 0
    assert git(other, "rev-parse", "audit~1") == git(remote, "rev-parse", "audit")

    # Meanwhile the first writer pushes; the second must replay onto it.
    assert kiln("audit", "record", w[3], cwd=repo).returncode == 0
    assert _push(repo)["pushed"] == 1
    second = _push(other)
    assert second["pushed"] == 1 and second["dropped"] == []
    assert _linear(remote) == 4

    # And now someone pushes between our fetch and our push: a pre-push hook (which git
    # runs after kiln has replayed, right before the update) makes the other clone record
    # and push a record first. The remote refuses our update; kiln fetches and tries again.
    hook = repo / ".git" / "hooks" / "pre-push"
    marker = tmp_path / "hook-ran"
    kiln_cmd = f"{shlex.quote(sys.executable)} -m kiln"
    hook.write_text(f"""#!/bin/sh
cat >/dev/null
[ -e {marker} ] && exit 0
touch {marker}
cd {shlex.quote(str(other))} || exit 1
{kiln_cmd} audit record {shlex.quote(str(w[5]))} >/dev/null 2>&1 || exit 1
{kiln_cmd} audit push >/dev/null 2>&1 || exit 1
""")
    hook.chmod(0o755)
    assert kiln("audit", "record", w[4], cwd=repo).returncode == 0
    raced = _push(repo)
    assert marker.exists()
    assert raced["attempts"] == 2 and raced["pushed"] == 1
    assert _linear(remote) == 6
    assert _remote_records(remote) == sorted(f"demo/1.{i}/{w[i].name}.json" for i in range(6))
    assert git(repo, "rev-parse", "audit") == git(remote, "rev-parse", "audit")
    # The replayed commit keeps its author and its one-line message.
    newest = json.loads(kiln("audit", "log", "--json", cwd=repo).stdout)[0]
    assert git(remote, "log", "-1", "--format=%an|%s", "audit") == (
        f"kiln|audit: {w[4].name} sha256:{newest['sha256']}")

    # Everything verifies in yet another fresh clone.
    third = _clone(remote, tmp_path / "third")
    report = json.loads(kiln("audit", "verify", "--key", signing_key[1], "--json",
                             cwd=third).stdout)
    assert report["ok"] and report["records"] == 6 and report["signatures_checked"] == 6


def test_push_drops_what_the_remote_has_and_keeps_a_second_digest(
        repo, remote, tmp_path, signed_wheel, signing_key):
    same = signed_wheel("demo", "1.0", seed="same", folder=tmp_path / "same")
    ours = signed_wheel("demo", "2.0", seed="ours", folder=tmp_path / "ours")
    theirs = signed_wheel("demo", "2.0", seed="theirs", folder=tmp_path / "theirs")
    assert kiln("audit", "record", same, cwd=repo).returncode == 0
    _push(repo)
    other = _clone(remote, tmp_path / "other")
    assert kiln("audit", "record", theirs, cwd=other).returncode == 0
    _push(other)
    # Our branch, unaware: the same wheel again (recorded independently, as an orphan
    # history would be), and another digest for demo 2.0.
    git(repo, "update-ref", "-d", "refs/heads/audit")
    git(repo, "update-ref", "-d", "refs/remotes/origin/audit")
    assert kiln("audit", "record", same, ours, cwd=repo).returncode == 0
    done = _push(repo)
    assert done["dropped"] == [f"demo/1.0/{same.name}.json"]
    assert len(done["conflicts"]) == 1 and done["pushed"] == 1
    assert _linear(remote) == 3
    verify = json.loads(kiln("audit", "verify", "--key", signing_key[1], "--json",
                             cwd=repo).stdout)
    assert [f["severity"] for f in verify["findings"]] == ["conflict"]


def test_push_refuses_a_rewritten_remote(repo, remote, signed_wheel, tmp_path):
    w = [signed_wheel("demo", f"1.{i}", seed=str(i), folder=tmp_path / f"wh{i}")
         for i in range(3)]
    assert kiln("audit", "record", w[0], w[1], cwd=repo).returncode == 0
    _push(repo)
    git(remote, "update-ref", "refs/heads/audit", "audit~1")  # someone force-pushed
    assert kiln("audit", "record", w[2], cwd=repo).returncode == 0
    result = kiln("audit", "push", cwd=repo)
    assert result.returncode == 30
    assert "was rewritten" in result.stderr and "hint:" in result.stderr
    assert git(remote, "rev-list", "--count", "audit") == "1"  # nothing pushed
    # It keeps refusing: the earlier remote tip was not forgotten.
    assert kiln("audit", "push", cwd=repo).returncode == 30


def test_push_needs_a_remote(repo, signed_wheel):
    assert kiln("audit", "record", signed_wheel(), cwd=repo).returncode == 0
    result = kiln("audit", "push", "--remote", "nowhere", cwd=repo)
    assert result.returncode == 30 and "no remote named 'nowhere'" in result.stderr


def test_git_dir_from_a_hook_does_not_redirect_kiln(repo, signed_wheel, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(elsewhere, "init", "-q")
    env = {"GIT_DIR": str(elsewhere / ".git"), "GIT_INDEX_FILE": str(elsewhere / "idx")}
    result = kiln("audit", "record", signed_wheel(), "--repo", repo, cwd=tmp_path,
                  env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert git(repo, "rev-list", "--count", "audit") == "1"
    assert git(elsewhere, "for-each-ref") == ""

"""The audit branch in real git repositories, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from audit_helpers import git, kiln, make_wheel, write_build_record


def _snapshot(repo: Path) -> dict[str, object]:
    """Everything a user could notice: HEAD, the index's bytes, the work tree's files."""
    index = repo / ".git" / "index"
    files = {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(repo.rglob("*")) if p.is_file() and ".git" not in p.parts}
    return {
        "status": git(repo, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "index": index.read_bytes() if index.exists() else None,
        "head": (repo / ".git" / "HEAD").read_text(),
        "rev": git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False),
        "symbolic": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "files": files,
    }


def _state(repo: Path, how: str) -> None:
    """Put ``repo`` in one of the awkward states users leave repositories in."""
    (repo / "tracked.txt").write_text("one\n")
    if how == "unborn":  # no commits at all, something staged, something untracked
        git(repo, "add", "tracked.txt")
        (repo / "untracked.txt").write_text("new\n")
        return
    git(repo, "add", "tracked.txt")
    git(repo, "-c", "user.name=U", "-c", "user.email=u@example.org", "commit", "-qm", "first")
    (repo / "tracked.txt").write_text("two\n")
    git(repo, "-c", "user.name=U", "-c", "user.email=u@example.org", "commit", "-qam", "second")
    if how == "detached":
        git(repo, "checkout", "-q", "--detach", "HEAD~1")
    (repo / "tracked.txt").write_text("edited, not staged\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("new\n")


@pytest.mark.parametrize("how", ["unborn", "dirty", "detached"])
def test_recording_leaves_work_tree_index_and_head_alone(repo, signed_wheel, how):
    _state(repo, how)
    wheels = [signed_wheel("demo", f"1.{i}", seed=str(i)) for i in range(2)]
    before = _snapshot(repo)
    result = kiln("audit", "record", *wheels, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert _snapshot(repo) == before
    # One orphan commit per record, by kiln's default identity (none is configured), in UTC.
    log = git(repo, "log", "--format=%P|%an <%ae>|%ad|%s", "--date=raw", "audit").splitlines()
    assert len(log) == 2
    assert log[-1].split("|")[0] == ""  # the root has no parent: an orphan branch
    assert all("|kiln <kiln@localhost>|" in line and line.split("|")[2].endswith(" +0000")
               for line in log)
    digest = hashlib.sha256(wheels[1].read_bytes()).hexdigest()
    assert log[0].split("|")[3] == f"audit: {wheels[1].name} sha256:{digest}"
    assert git(repo, "ls-tree", "-r", "--name-only", "audit").splitlines() == [
        f"demo/1.{i}/demo-1.{i}-py3-none-any.whl.json" for i in range(2)]
    if how != "unborn":
        assert git(repo, "merge-base", "audit", "main", check=False) == ""
    git(repo, "fsck", "--no-progress", "--strict")


def test_record_layout_and_the_same_wheel_again(repo, signed_wheel):
    wheel = signed_wheel("Demo_Pkg", "2.0")
    first = kiln("audit", "record", wheel, "--json", cwd=repo)
    assert first.returncode == 0, first.stderr
    again = kiln("audit", "record", wheel, "--json", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert json.loads(first.stdout)[0]["status"] == "recorded"
    assert json.loads(again.stdout)[0]["status"] == "exists"
    assert git(repo, "rev-list", "--count", "audit") == "1"
    path = "demo-pkg/2.0/Demo_Pkg-2.0-py3-none-any.whl.json"
    record = json.loads(git(repo, "show", f"audit:{path}"))
    assert record["wheel"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert record["signatures"][0]["type"] == "dsse"
    assert record["statement"]["subject"][0]["name"] == wheel.name
    assert record["builder"] == "https://builders.example/test"
    assert record["reproducibility"]["reproducible"] is True
    assert record["recipe"]["sha256"] == "1" * 64 and record["lock"]["sha256"] == "2" * 64
    assert record["build_log"]["sha256"] == "5" * 64
    shown = kiln("audit", "show", wheel.name, "--json", cwd=repo)
    assert json.loads(shown.stdout)[0]["record"] == record
    log = kiln("audit", "log", "--json", cwd=repo)
    entry = json.loads(log.stdout)[0]
    assert entry["wheel"] == wheel.name and entry["signed_by"].startswith("key ")


def test_a_second_digest_for_one_filename_is_kept_and_flagged(repo, signed_wheel, tmp_path,
                                                               signing_key):
    first = signed_wheel("demo", "1.0", seed="builder A", folder=tmp_path / "a")
    second = signed_wheel("demo", "1.0", seed="builder B", folder=tmp_path / "b")
    assert first.name == second.name
    assert kiln("audit", "record", first, cwd=repo).returncode == 0
    result = kiln("audit", "record", second, "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    added = json.loads(result.stdout)[0]
    digest = hashlib.sha256(second.read_bytes()).hexdigest()
    assert added["status"] == "conflict"
    assert added["path"] == f"demo/1.0/{second.name}.{digest}.json"
    assert "did not reproduce across builders" in result.stderr
    # Recording either again changes nothing.
    for wheel in (first, second):
        assert json.loads(kiln("audit", "record", wheel, "--json", cwd=repo).stdout
                          )[0]["status"] == "exists"
    assert git(repo, "rev-list", "--count", "audit") == "2"
    log = json.loads(kiln("audit", "log", "--json", cwd=repo).stdout)
    assert [e["differs_across_builders"] for e in log] == [True, False]
    verify = kiln("audit", "verify", "--key", signing_key[1], "--json", cwd=repo)
    assert verify.returncode == 21, verify.stderr
    report = json.loads(verify.stdout)
    assert [f["severity"] for f in report["findings"]] == ["conflict"]
    assert "did not reproduce across builders" in report["findings"][0]["reason"]
    assert report["signatures_checked"] == 2


def test_verify_checks_signatures_wheelhouse_and_policy(repo, signed_wheel, tmp_path,
                                                        signing_key, other_key):
    wheels = [signed_wheel("demo", f"1.{i}", seed=str(i)) for i in range(3)]
    assert kiln("audit", "record", *wheels, cwd=repo).returncode == 0
    ok = kiln("audit", "verify", "--key", signing_key[1], "--wheelhouse", wheels[0].parent,
              cwd=repo)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 records in 3 commits, 3 signatures checked, 3 wheels checked" in ok.stdout
    wrong = kiln("audit", "verify", "--key", other_key[1], "--json", cwd=repo)
    assert wrong.returncode == 21
    reasons = [f["reason"] for f in json.loads(wrong.stdout)["findings"]]
    assert len(reasons) == 3 and all("signed by another key" in r for r in reasons)
    # A wheel in the wheelhouse without a record, and one whose bytes changed.
    make_wheel(wheels[0].parent, "extra", "0.1")
    tampered = wheels[1].read_bytes() + b"x"
    wheels[1].write_bytes(tampered)
    house = kiln("audit", "verify", "--key", signing_key[1], "--wheelhouse", wheels[0].parent,
                 "--json", cwd=repo)
    assert house.returncode == 21
    found = {Path(f["where"]).name: f["reason"] for f in json.loads(house.stdout)["findings"]}
    assert found["extra-0.1-py3-none-any.whl"] == "no record on the audit branch"
    assert "is not recorded" in found[wheels[1].name]


def test_unsigned_records_fail_under_a_policy(repo, signed_wheel, signing_key):
    wheel = signed_wheel("demo", "1.0", sign=False)
    assert kiln("audit", "record", wheel, cwd=repo).returncode == 0
    without = kiln("audit", "verify", cwd=repo)
    assert without.returncode == 0 and "signatures were not checked" in without.stderr
    under = kiln("audit", "verify", "--key", signing_key[1], "--json", cwd=repo)
    assert under.returncode == 21
    assert "unsigned" in json.loads(under.stdout)["findings"][0]["reason"]


def _edit_record_on_branch(repo: Path, tmp_path: Path, path: str, change: dict[str, object],
                           amend: bool) -> None:
    """Edit a record by hand, as someone with push access might: in a worktree of the branch."""
    tree = tmp_path / "edit"
    git(repo, "worktree", "add", "-q", str(tree), "audit")
    record = json.loads((tree / path).read_text())
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = record
        for key in parents:
            node = node[key]
        node[leaf] = value
    (tree / path).write_text(json.dumps(record, indent=2) + "\n")
    who = ["-c", "user.name=Mallory", "-c", "user.email=m@example.org"]
    if amend:  # rewrite history so that no commit shows the edit
        git(tree, *who, "commit", "-q", "-a", "--amend", "--no-edit")
    else:
        git(tree, *who, "commit", "-q", "-am", "fix a typo")
    git(repo, "worktree", "remove", "--force", str(tree))


def test_a_hand_edited_record_fails_verify(repo, signed_wheel, tmp_path, signing_key):
    wheel = signed_wheel("demo", "1.0")
    assert kiln("audit", "record", wheel, cwd=repo).returncode == 0
    path = f"demo/1.0/{wheel.name}.json"
    _edit_record_on_branch(repo, tmp_path, path, {"builder": "https://trusted.example"},
                           amend=False)
    result = kiln("audit", "verify", "--key", signing_key[1], "--json", cwd=repo)
    assert result.returncode == 21
    reasons = " | ".join(f["reason"] for f in json.loads(result.stdout)["findings"])
    assert "modified after it was recorded" in reasons
    assert "not a record commit" not in reasons


@pytest.mark.parametrize("field,value,expect", [
    ("builder", "https://trusted.example", "builder in the record differs from the statement"),
    ("reproducibility.reproducible", False, "reproducibility in the record differs"),
    ("statement.predicate.buildDefinition.externalParameters.python", "3.12",
     "the statement differs from the one"),
])
def test_an_edit_hidden_by_rewriting_history_fails_verify(repo, signed_wheel, tmp_path,
                                                          signing_key, field, value, expect):
    wheel = signed_wheel("demo", "1.0")
    assert kiln("audit", "record", wheel, cwd=repo).returncode == 0
    pinned = git(repo, "rev-parse", "audit")
    _edit_record_on_branch(repo, tmp_path, f"demo/1.0/{wheel.name}.json", {field: value},
                           amend=True)
    result = kiln("audit", "verify", "--key", signing_key[1], "--json", cwd=repo)
    assert result.returncode == 21
    reasons = [f["reason"] for f in json.loads(result.stdout)["findings"]]
    assert any(expect in r for r in reasons), reasons
    since = kiln("audit", "verify", "--since", pinned, "--json", cwd=repo)
    assert since.returncode == 21
    assert any("no longer in the branch's history" in f["reason"]
               for f in json.loads(since.stdout)["findings"])


def test_a_rewritten_branch_fails_since(repo, signed_wheel):
    wheels = [signed_wheel("demo", f"1.{i}", seed=str(i)) for i in range(3)]
    assert kiln("audit", "record", *wheels[:2], cwd=repo).returncode == 0
    pinned = git(repo, "rev-parse", "audit")
    assert kiln("audit", "record", wheels[2], cwd=repo).returncode == 0
    good = kiln("audit", "verify", "--since", pinned, cwd=repo)
    assert good.returncode == 0, good.stdout + good.stderr
    # Drop the second record and re-add the third: a history that only ever added files,
    # but not the one the verifier saw.
    git(repo, "update-ref", "refs/heads/audit", f"{pinned}~1")
    assert kiln("audit", "record", wheels[2], cwd=repo).returncode == 0
    assert kiln("audit", "verify", cwd=repo).returncode == 0  # looks fine on its own …
    bad = kiln("audit", "verify", "--since", pinned, "--json", cwd=repo)
    assert bad.returncode == 21  # … but not to someone who pinned what they checked
    finding = json.loads(bad.stdout)["findings"][0]
    assert finding["where"] == f"--since {pinned}"
    assert "rewritten" in finding["reason"]
    unknown = kiln("audit", "verify", "--since", "0" * 40, "--json", cwd=repo)
    assert unknown.returncode == 21
    assert "not a commit in this repository" in json.loads(unknown.stdout)["findings"][0]["reason"]


def test_errors_are_one_line_with_a_hint(tmp_path, repo, signed_wheel):
    not_repo = tmp_path / "plain"
    not_repo.mkdir()
    wheel = signed_wheel("demo", "1.0")
    outside = kiln("audit", "record", wheel, cwd=not_repo)
    assert outside.returncode == 30
    assert "is not in a git repository" in outside.stderr and "hint:" in outside.stderr
    # `kiln build --audit` (or KILN_AUDIT=1) outside a repository fails before building.
    for args, env in ((["--audit"], {}), ([], {"KILN_AUDIT": "1"})):
        build = kiln("build", *args, "missing.toml", cwd=not_repo, env=env)
        assert build.returncode == 30 and "is not in a git repository" in build.stderr
    wheel.with_name(wheel.name + ".build.json").unlink()
    missing = kiln("audit", "record", wheel, cwd=repo)
    assert missing.returncode != 0 and "no build record" in missing.stderr
    assert git(repo, "rev-parse", "-q", "--verify", "audit", check=False) == ""
    bad_branch = kiln("audit", "log", "--branch", "a..b", cwd=repo)
    assert bad_branch.returncode == 30 and "not a valid branch name" in bad_branch.stderr
    nothing = kiln("audit", "show", "demo-1.0-py3-none-any.whl", cwd=repo)
    assert nothing.returncode == 2 and "no record" in nothing.stderr


def test_a_record_whose_signature_names_another_wheel_is_refused(repo, signed_wheel, tmp_path):
    a = signed_wheel("demo", "1.0", seed="a", folder=tmp_path / "a")
    b = signed_wheel("demo", "1.1", seed="b", folder=tmp_path / "b")
    shutil.copyfile(b.with_name(b.name + ".dsse.json"), a.with_name(a.name + ".dsse.json"))
    result = kiln("audit", "record", a, cwd=repo)
    assert result.returncode == 30
    assert "does not name" in result.stderr


def test_custom_branch_name_from_the_environment(repo, signed_wheel):
    wheel = signed_wheel("demo", "1.0")
    result = kiln("audit", "record", wheel, cwd=repo, env={"KILN_AUDIT_BRANCH": "audit/ci"})
    assert result.returncode == 0, result.stderr
    assert git(repo, "rev-parse", "-q", "--verify", "audit", check=False) == ""
    assert git(repo, "rev-list", "--count", "audit/ci") == "1"


def test_write_build_record_helper_matches_the_wheel(tmp_path):
    # The fixtures themselves: a test of a wheel whose record lies would prove nothing.
    wheel = make_wheel(tmp_path, "demo", "1.0")
    record = write_build_record(wheel)
    assert record.wheel.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()

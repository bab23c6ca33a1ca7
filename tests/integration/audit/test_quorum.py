"""A quorum of builders: the same bytes signed by N trusted keys, recorded on one branch.

Builder A and builder B each sign their own copy of the same wheel with their own key and
record it on one audit branch; builder C signs other bytes under the same filename.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from audit_helpers import git, kiln, make_wheel, write_build_record


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    from kiln.signing.keys import generate_keypair

    out = {}
    for name in ("a", "b", "c"):
        pair = generate_keypair(tmp_path / "keys" / name)
        out[name] = (pair.private, pair.public)
    return out


def _build(folder: Path, key: Path, builder: str, monkeypatch: pytest.MonkeyPatch,
           seed: str = "") -> Path:
    """One builder's wheel: built (by hand here), recorded beside, signed with its key."""
    from kiln.signing.wheels import sign_wheel_with_key

    monkeypatch.setenv("KILN_BUILDER_ID", builder)
    wheel = make_wheel(folder, "demo", "1.0", seed)
    write_build_record(wheel)
    sign_wheel_with_key(wheel, key)
    return wheel


def test_two_builders_make_a_quorum_and_a_third_who_disagrees_is_named(
        repo: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    a = _build(tmp_path / "builder-a", keys["a"][0], "kiln://ci/a", monkeypatch)
    b = _build(tmp_path / "builder-b", keys["b"][0], "kiln://rebuilder/b", monkeypatch)
    assert a.read_bytes() == b.read_bytes()
    first = kiln("audit", "record", a, "--json", cwd=repo)
    assert json.loads(first.stdout)[0]["status"] == "recorded", first.stderr
    pub_a, pub_b, pub_c = (str(keys[k][1]) for k in "abc")

    # One signer is not a quorum of two; it says who signed and what is missing.
    alone = kiln("verify", a, "--quorum", "2", "--key", pub_a, "--key", pub_b, cwd=repo)
    assert alone.returncode == 28, alone.stdout + alone.stderr
    assert "1 of 2 required signers" in alone.stderr

    # The rebuilder records the same bytes with its own signature: a witness record.
    second = kiln("audit", "record", b, "--json", cwd=repo)
    added = json.loads(second.stdout)[0]
    digest = hashlib.sha256(a.read_bytes()).hexdigest()
    assert added["status"] == "witness", second.stderr
    assert added["path"].startswith(f"demo/1.0/{a.name}.{digest}.")
    again = kiln("audit", "record", b, "--json", cwd=repo)
    assert json.loads(again.stdout)[0]["status"] == "exists"
    assert git(repo, "rev-list", "--count", "audit") == "2"

    both = kiln("verify", a, "--quorum", "2", "--key", pub_a, "--key", pub_b, "--json",
                cwd=repo)
    assert both.returncode == 0, both.stderr
    [result] = json.loads(both.stdout)
    assert result["verified"] is True
    assert {s["builder"] for s in result["signers"]} == {"kiln://ci/a", "kiln://rebuilder/b"}
    assert len({s["signer"] for s in result["signers"]}) == 2
    # The other builder's copy verifies the same way (its own signature beside it).
    assert kiln("verify", b, "--quorum", "2", "--key", pub_a, "--key", pub_b,
                cwd=repo).returncode == 0
    # A key that signed nothing here does not count towards the quorum.
    assert kiln("verify", a, "--quorum", "2", "--key", pub_a, "--key", pub_c,
                cwd=repo).returncode == 28

    # The branch with a witness record still verifies whole.
    branch = kiln("audit", "verify", "--key", pub_a, "--key", pub_b, "--json", cwd=repo)
    assert json.loads(branch.stdout)["findings"] == [], branch.stdout

    # A third builder signs other bytes under the same filename: publication is blocked.
    c = _build(tmp_path / "builder-c", keys["c"][0], "kiln://elsewhere/c", monkeypatch,
               seed="different")
    assert c.name == a.name and c.read_bytes() != a.read_bytes()
    third = kiln("audit", "record", c, "--json", cwd=repo)
    assert json.loads(third.stdout)[0]["status"] == "conflict"
    blocked = kiln("verify", a, "--quorum", "2", "--key", pub_a, "--key", pub_b,
                   "--key", pub_c, "--json", cwd=repo)
    assert blocked.returncode == 29, blocked.stderr
    [result] = json.loads(blocked.stdout)
    assert result["verified"] is False
    assert [d["builder"] for d in result["disagree"]] == ["kiln://elsewhere/c"]
    assert "builders disagree" in result["error"]["message"]
    # Without C's key, C is nobody to this verifier.
    assert kiln("verify", a, "--quorum", "2", "--key", pub_a, "--key", pub_b,
                cwd=repo).returncode == 0


def test_a_tampered_witness_signature_fails(repo: Path, tmp_path: Path,
                                            keys: dict[str, tuple[Path, Path]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    a = _build(tmp_path / "a", keys["a"][0], "kiln://ci/a", monkeypatch)
    b = _build(tmp_path / "b", keys["b"][0], "kiln://rebuilder/b", monkeypatch)
    envelope = b.with_name(b.name + ".dsse.json")
    doc = json.loads(envelope.read_text())
    doc["signatures"][0]["sig"] = doc["signatures"][0]["sig"][:-8] + "AAAAAAA="
    envelope.write_text(json.dumps(doc))
    shutil.copy(envelope, a.with_name(a.name + ".dsse.json"))
    result = kiln("verify", a, "--quorum", "1", "--key", str(keys["b"][1]), cwd=repo)
    assert result.returncode in (24, 27), result.stderr


def test_quorum_usage_errors(repo: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    a = _build(tmp_path / "a", keys["a"][0], "kiln://ci/a", monkeypatch)
    never = kiln("verify", a, "--quorum", "3", "--key", str(keys["a"][1]), cwd=repo)
    assert never.returncode == 2 and "can never be met" in never.stderr
    unpaired = kiln("verify", a, "--identity", "x", "--identity", "y", "--issuer", "z",
                    cwd=repo)
    assert unpaired.returncode == 2 and "each identity needs its issuer" in unpaired.stderr


def test_the_index_leaves_out_wheels_without_their_quorum_and_shows_builders(
        repo: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    house = tmp_path / "wheelhouse"
    agreed = _build(house, keys["a"][0], "kiln://ci/a", monkeypatch)
    witness = _build(tmp_path / "rebuilder", keys["b"][0], "kiln://rebuilder/b", monkeypatch)
    lonely = make_wheel(house, "lonely", "1.0")
    write_build_record(lonely)
    from kiln.signing.wheels import sign_wheel_with_key

    sign_wheel_with_key(lonely, keys["a"][0])
    for wheel in (agreed, witness, lonely):
        assert kiln("audit", "record", wheel, cwd=repo).returncode == 0
    pub_a, pub_b, pub_c = (str(keys[k][1]) for k in "abc")
    site = tmp_path / "site"
    result = kiln("index", house, "-o", site, "--require-quorum", "2", "--key", pub_a,
                  "--key", pub_b, "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["filename"] for r in report["rejected"]] == [lonely.name]
    assert "1 of 2 required signers" in report["rejected"][0]["reason"]
    page = json.loads((site / "simple" / "demo" / "index.json").read_text())
    [entry] = page["files"]
    assert {b["builder"] for b in entry["_kiln"]["builders"]} == {"kiln://ci/a",
                                                                   "kiln://rebuilder/b"}
    assert not (site / "simple" / "lonely").exists()
    # publish refuses an index that lists a wheel short of its quorum, and writes nothing
    shown = tmp_path / "site-shown"
    assert kiln("index", house, "-o", shown, "--key", pub_a, cwd=repo).returncode == 0
    refused = kiln("publish", shown, tmp_path / "dest", "--require-quorum", "2", cwd=repo)
    assert refused.returncode == 41 and "lack a quorum of 2" in refused.stderr
    assert not (tmp_path / "dest").exists()
    assert kiln("publish", site, tmp_path / "dest", "--require-quorum", "2",
                cwd=repo).returncode == 0

    # A third trusted builder signs other bytes of the agreed wheel: it is left out, named.
    other = _build(tmp_path / "third", keys["c"][0], "kiln://elsewhere/c", monkeypatch,
                   seed="different")
    assert kiln("audit", "record", other, cwd=repo).returncode == 0
    again = kiln("index", house, "-o", site, "--require-quorum", "2", "--key", pub_a,
                 "--key", pub_b, "--key", pub_c, "--json", cwd=repo)
    report = json.loads(again.stdout)
    reasons = {r["filename"]: r["reason"] for r in report["rejected"]}
    assert "builders disagree" in reasons[agreed.name]
    assert "kiln://elsewhere/c" in reasons[agreed.name]
    assert report["removed"] == [agreed.name]


def test_a_rebuilders_own_audit_branch_counts_once_fetched(
        repo: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A third party's rebuilder records on its own repository; the mirror's owner fetches
    that audit branch beside its own and names both."""
    a = _build(tmp_path / "mirror-house", keys["a"][0], "kiln://ci/a", monkeypatch)
    assert kiln("audit", "record", a, cwd=repo).returncode == 0
    theirs = tmp_path / "rebuilder-repo"
    theirs.mkdir()
    git(theirs, "init", "-q", "-b", "main")
    signed = _build(tmp_path / "rebuilder-sign", keys["b"][0], "kiln://rebuilder/b",
                    monkeypatch)
    assert kiln("audit", "record", signed, cwd=theirs).returncode == 0
    pub_a, pub_b = str(keys["a"][1]), str(keys["b"][1])
    quorum = ("--quorum", "2", "--key", pub_a, "--key", pub_b)

    missing = kiln("verify", a, *quorum, "--audit-branch", "rebuilder-audit", cwd=repo)
    assert missing.returncode == 2 and "no such branch" in missing.stderr
    git(repo, "fetch", "-q", str(theirs), "audit:rebuilder-audit")
    assert kiln("verify", a, *quorum, cwd=repo).returncode == 28  # ours alone: one signer
    both = kiln("verify", a, *quorum, "--audit-branch", "audit", "--audit-branch",
                "rebuilder-audit", "--json", cwd=repo)
    assert both.returncode == 0, both.stderr
    [result] = json.loads(both.stdout)
    assert {s["builder"] for s in result["signers"]} == {"kiln://ci/a", "kiln://rebuilder/b"}
    site = tmp_path / "site"
    index = kiln("index", a.parent, "-o", site, "--require-quorum", "2", "--key", pub_a,
                 "--key", pub_b, "--audit-branch", "audit", "--audit-branch",
                 "rebuilder-audit", "--json", cwd=repo)
    assert index.returncode == 0 and json.loads(index.stdout)["rejected"] == [], index.stderr
    alone = kiln("verify", a, "--key", pub_a, "--audit-branch", "audit", cwd=repo)
    assert alone.returncode == 2 and "goes with --quorum" in alone.stderr

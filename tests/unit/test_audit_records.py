"""The audit record format, record paths, and parsing git's plumbing output (no git run here)."""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timezone

import pytest

from kiln.audit.branch import MAX_PAUSE, check_branch_name, pause
from kiln.audit.gitstore import Change, Commit, Identity, parse_commit, parse_diff_tree
from kiln.audit.gitstore import _parse_batch as parse_batch
from kiln.audit.records import (
    AuditRecord,
    RecordedSignature,
    WheelDigest,
    alternative_path,
    commit_message,
    facts_of,
    parse_record,
    parse_record_path,
    primary_path,
    signer_of,
    statement_facts,
    statement_of,
    subjects_name,
    wheel_folder,
)
from kiln.audit.verify import BranchReport, _check_history
from kiln.errors import AuditError
from kiln.provenance import build_statement
from kiln.record import (
    BuildRecord,
    FileRef,
    InterpreterRef,
    LockRef,
    Normalisation,
    RecipeRef,
    RepairRef,
    ReproRef,
    SandboxRef,
    SourceRef,
    WheelRef,
)
from kiln.record import (
    TestRef as _TestRef,
)

WHEEL = "Demo_Pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
SHA = "ab" * 32
WHEN = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _build_record(reproducible: bool | None = True) -> BuildRecord:
    return BuildRecord(
        kiln_version="0.1.0", build_id="b" * 64,
        recipe=RecipeRef(path="recipes/demo.toml", sha256="1" * 64, name="demo-pkg",
                         version="2.0"),
        lock=LockRef(path="recipes/demo.lock", sha256="2" * 64),
        source=SourceRef(url="https://example.org/demo-2.0.tar.gz", filename="demo-2.0.tar.gz",
                         sha256="3" * 64, size=10),
        python=InterpreterRef(version="3.11.2", path="/usr/bin/python3.11", sha256="4" * 64,
                              tag="cp311"),
        target="linux-x86_64", backend="native", toolchain=[], build_requirements=[],
        environment={}, normalisation=Normalisation(
            source_date_epoch=1700000000, prefix_maps={}, fixed_paths=True,
            zip_canonical=True, umask="022", fixed_environment={}),
        sandbox=SandboxRef(tool="bwrap", network="none"),
        outputs=[WheelRef(filename=WHEEL, sha256=SHA, size=5, python_tag="cp311",
                          abi_tag="cp311", platform_tags=["manylinux_2_17_x86_64"])],
        repair=RepairRef(tool="auditwheel", policy="manylinux_2_17_x86_64",
                         raw=FileRef(name="raw.whl", sha256="6" * 64, size=4)),
        test=_TestRef(ran=True, passed=True),
        repro=(ReproRef(checked=True, reproducible=reproducible, digests=[SHA, SHA],
                        variations=["umask"]) if reproducible is not None else None),
        log=FileRef(name="logs/demo.log", sha256="5" * 64, size=3),
        host="test-host", started=WHEN, finished=WHEN, seconds=1.0, stages={},
    )


def _statement(reproducible: bool | None = True) -> dict[str, object]:
    return build_statement(_build_record(reproducible), recipe_values={},
                           env={"KILN_BUILDER_ID": "https://builders.example/ci"})


def _record(statement: dict[str, object], **changes: object) -> AuditRecord:
    fields = {
        "wheel": WheelDigest(filename=WHEEL, sha256=SHA, size=5), "project": "demo-pkg",
        "version": "2.0", **statement_facts(statement, "test"), "statement": statement,
        "signatures": [], "recorded_at": WHEN, "recorded_by": "kiln 0.1.0", **changes}
    return AuditRecord(**fields)


# -- paths ---------------------------------------------------------------------------------


def test_record_paths_use_the_normalised_project_and_version():
    assert wheel_folder(WHEEL) == ("demo-pkg", "2.0")
    assert primary_path(WHEEL) == f"demo-pkg/2.0/{WHEEL}.json"
    assert alternative_path(WHEEL, SHA) == f"demo-pkg/2.0/{WHEEL}.{SHA}.json"
    assert parse_record_path(primary_path(WHEEL)) == (WHEEL, None)
    assert parse_record_path(alternative_path(WHEEL, SHA)) == (WHEEL, SHA)


@pytest.mark.parametrize("path", [
    f"other/2.0/{WHEEL}.json",  # wrong project folder
    f"demo-pkg/2.1/{WHEEL}.json",  # wrong version folder
    f"demo-pkg/2.0/{WHEEL}",  # not .json
    "demo-pkg/2.0/notes.json",  # not a wheel
    f"demo-pkg/2.0/{WHEEL}.{'ab' * 8}.json",  # a digest prefix is not a digest
])
def test_paths_that_are_not_record_paths_are_refused(path):
    with pytest.raises(AuditError):
        parse_record_path(path)


@pytest.mark.parametrize("name", ["../x-1.0-py3-none-any.whl", "a/b-1.0-py3-none-any.whl",
                                  "x.whl", "demo-1.0-py3-none-any.zip", "dé-1.0-py3-none-any.whl"])
def test_wheel_folder_refuses_what_is_not_a_plain_wheel_filename(name):
    with pytest.raises(AuditError, match="not a wheel filename"):
        wheel_folder(name)


def test_commit_message_is_one_line_naming_wheel_and_digest():
    for conflict in (False, True):
        message = commit_message(WHEEL, SHA, conflict)
        assert "\n" not in message and f"{WHEEL} sha256:{SHA}" in message
    assert "not reproduced across builders" in commit_message(WHEEL, SHA, True)


@pytest.mark.parametrize("name,ok", [("audit", True), ("audit/ci", True), ("a..b", False),
                                     ("-x", False), ("a b", False), ("x.lock", False),
                                     ("", False), ("a:b", False), ("a@{1}", False)])
def test_branch_names(name, ok):
    if ok:
        check_branch_name(name)
    else:
        with pytest.raises(AuditError):
            check_branch_name(name)


def test_pauses_are_jittered_and_capped():
    rng = random.Random(1)
    values = [pause(a, rng) for a in range(1, 60)]
    assert all(0 <= v <= MAX_PAUSE for v in values)
    assert len(set(values)) == len(values)
    assert max(pause(1, rng) for _ in range(200)) <= 0.02


# -- the record ------------------------------------------------------------------------------


def test_record_fields_come_from_the_statement():
    statement = _statement()
    record = _record(statement)
    assert record.builder == "https://builders.example/ci"
    assert record.source.sha256 == "3" * 64 and record.source.filename == "demo-2.0.tar.gz"
    assert record.lock is not None and record.lock.sha256 == "2" * 64
    assert record.build_log is not None and record.build_log.sha256 == "5" * 64
    assert record.reproducibility.checked and record.reproducibility.reproducible is True
    assert facts_of(record) == statement_facts(statement, "test")
    assert subjects_name(statement, WHEEL, SHA)
    assert not subjects_name(statement, WHEEL.replace("2.0", "2.1"), SHA)
    assert not subjects_name(statement, WHEEL, "cd" * 32)


def test_an_unchecked_build_says_so():
    record = _record(_statement(reproducible=None))
    assert not record.reproducibility.checked
    assert record.reproducibility.reproducible is None


def test_the_record_round_trips_and_refuses_unknown_keys():
    record = _record(_statement())
    assert parse_record(record.to_bytes(), "x") == record
    data = json.loads(record.to_bytes())
    data["approved_by"] = "someone"
    with pytest.raises(AuditError, match="approved_by"):
        parse_record(json.dumps(data).encode(), "audit:x.json")
    data = json.loads(record.to_bytes())
    data["wheel"]["sha256"] = "not hex"
    with pytest.raises(AuditError, match=r"wheel\.sha256"):
        parse_record(json.dumps(data).encode(), "audit:x.json")


def test_a_statement_that_is_not_kiln_provenance_is_refused():
    with pytest.raises(AuditError, match="not kiln's"):
        statement_facts({"_type": "https://in-toto.io/Statement/v1", "subject": [],
                         "predicateType": "x", "predicate": {}}, "bundle")


def test_envelope_payload_and_signer():
    statement = _statement()
    envelope = {"payloadType": "application/vnd.in-toto+json",
                "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
                "signatures": [{"keyid": "k1", "sig": "AA=="}]}
    assert statement_of(envelope, "e") == statement
    assert signer_of("dsse", envelope, "e") == "key k1"
    with pytest.raises(AuditError, match="payloadType"):
        statement_of({**envelope, "payloadType": "text/plain"}, "e")
    with pytest.raises(AuditError, match="base64"):
        statement_of({**envelope, "payload": "%%%"}, "e")
    sig = RecordedSignature(type="dsse", file="w.dsse.json", signed_by="key k1",
                            content=envelope)
    assert _record(statement, signatures=[sig]).envelope() == envelope


# -- git's output ----------------------------------------------------------------------------


def test_parse_diff_tree_with_stdin_and_z():
    zero = "0" * 40
    raw = (b"c1\0:000000 100644 " + zero.encode() + b" b1 A\0a/b/f.json\0"
           b"c2\0:100644 100644 b1 b2 M\0a/b/f.json\0:000000 100644 " + zero.encode()
           + b" b3 A\0a/b/g.json\0c3\0")
    parsed = parse_diff_tree(raw)
    assert parsed["c1"] == [Change("A", "a/b/f.json", "000000", "100644", zero, "b1")]
    assert [c.status for c in parsed["c2"]] == ["M", "A"]
    assert parsed["c3"] == []


def test_parse_commit_and_batch():
    raw = (b"tree t1\nparent p1\nauthor A U <a@x> 1700000000 +0000\n"
           b"committer kiln <kiln@localhost> 1700000001 +0000\n\naudit: w.whl sha256:00\n")
    commit = parse_commit("c1", raw)
    assert commit.tree == "t1" and commit.parents == ("p1",)
    assert commit.author == Identity("A U", "a@x", 1700000000)
    assert commit.committer.when == 1700000001
    assert commit.subject == "audit: w.whl sha256:00"
    batch = b"o1 blob 3\nabc\no2 missing\no3 blob 0\n\n"
    assert dict(parse_batch(batch)) == {"o1": ("blob", b"abc"), "o3": ("blob", b"")}


def _commit(oid: str, *parents: str) -> Commit:
    who = Identity("k", "k@x", 0)
    return Commit(oid=oid, tree="t", parents=parents, author=who, committer=who, message="m")


def test_history_must_be_one_line_of_single_additions():
    add = Change("A", "p/1/x.whl.json", "000000", "100644", "0", "b")
    report = BranchReport(branch="audit")
    commits = [_commit("r1"), _commit("c2", "r1"), _commit("c3", "c2"), _commit("m4", "c3", "r1"),
               _commit("c5", "m4"), _commit("c6", "c5")]
    changes = {"r1": [add], "c2": [Change("M", add.path, "100644", "100644", "b", "b2")],
               "c3": [add, add], "m4": [], "c5": [Change("A", "p/l", "000000", "120000", "0", "b")],
               "c6": [Change("D", add.path, "100644", "000000", "b", "0")]}
    added = _check_history(commits, changes, report)
    reasons = {f.where.split()[0]: f.reason for f in report.findings}
    assert "modified after it was recorded" in reasons["c2"]
    assert "changes 2 files" in reasons["c3"]
    assert "merge commit" in reasons["m4"]
    assert "mode 120000" in reasons["c5"]
    assert "deleted after it was recorded" in reasons["c6"]
    assert [c.oid for c, _ in added] == ["r1", "c3", "c3"]

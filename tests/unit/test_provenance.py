"""Provenance statements: SLSA v1 field rules, where each record field goes, who the builder is."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kiln.files import sha256_bytes
from kiln.provenance import (
    BUILD_TYPE,
    REPRO_BYPRODUCT,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    SLSAProvenance,
    build_statement,
    builder_id,
    invocation_id,
    parse_statement,
    statement_bytes,
    validate_provenance,
)
from kiln.record import BuildRecord, CrateRef, ReproRef

ASSETS = Path(__file__).resolve().parent.parent / "assets"
LOCAL = {"KILN_BUILDER_ID": "kiln://test-host/tester"}


@pytest.fixture
def record() -> BuildRecord:
    return BuildRecord.model_validate_json((ASSETS / "build-record.json").read_bytes())


def _statement(record: BuildRecord, **kw: Any) -> dict[str, Any]:
    return build_statement(record, recipe_values={}, env=LOCAL, **kw)


def test_statement_layer_and_subjects(record: BuildRecord) -> None:
    st = _statement(record)
    assert st["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == SLSA_PROVENANCE_V1 == "https://slsa.dev/provenance/v1"
    assert st["subject"] == [{"name": record.wheel.filename,
                              "digest": {"sha256": record.wheel.sha256}}]
    assert set(st) == {"_type", "subject", "predicateType", "predicate"}


def test_required_slsa_fields_are_filled_from_the_record(record: BuildRecord) -> None:
    predicate = _statement(record)["predicate"]
    definition, run = predicate["buildDefinition"], predicate["runDetails"]
    assert definition["buildType"] == BUILD_TYPE
    external = definition["externalParameters"]
    assert external["recipe"]["sha256"] == record.recipe.sha256
    assert external["source"] == {"url": record.source.url, "sha256": record.source.sha256}
    assert external["python"] == record.python.version and external["target"] == record.target
    assert definition["internalParameters"]["buildId"] == record.build_id
    deps = {d.get("annotations", {}).get("kind"): d for d in definition["resolvedDependencies"]}
    assert deps["sdist"]["digest"] == {"sha256": record.source.sha256}
    assert deps["sdist"]["uri"] == record.source.url
    assert deps["lock"]["digest"] == {"sha256": record.lock.sha256}  # type: ignore[union-attr]
    assert deps["build-requirement"]["uri"] == "pkg:pypi/setuptools@80.9.0"
    assert deps["interpreter"]["digest"] == {"sha256": record.python.sha256}
    tools = [d for d in definition["resolvedDependencies"]
             if d.get("annotations", {}).get("kind") == "toolchain"]
    assert [t["name"] for t in tools] == [t.name for t in record.toolchain]
    assert run["builder"] == {"id": "kiln://test-host/tester",
                              "version": {"kiln": record.kiln_version}}
    assert run["metadata"]["startedOn"].endswith("Z")
    assert run["metadata"]["finishedOn"].endswith("Z")
    assert run["metadata"]["invocationId"].startswith("urn:uuid:")


def test_reproducibility_rides_along_with_both_digests(record: BuildRecord) -> None:
    byproducts = {b["name"]: b for b in _statement(record)["predicate"]["runDetails"]["byproducts"]}
    repro = byproducts[REPRO_BYPRODUCT]
    assert repro["annotations"]["reproducible"] is True
    assert repro["annotations"]["digests"] == record.repro.digests  # type: ignore[union-attr]
    assert len(repro["annotations"]["digests"]) == 2
    assert byproducts[record.repair.raw.name]["digest"] == {"sha256": record.repair.raw.sha256}
    unreproducible = record.model_copy(update={"repro": ReproRef(
        checked=True, reproducible=False, digests=["a" * 64, "b" * 64], expected=False)})
    byproducts = {b["name"]: b for b in
                  _statement(unreproducible)["predicate"]["runDetails"]["byproducts"]}
    assert byproducts[REPRO_BYPRODUCT]["annotations"]["reproducible"] is False
    assert byproducts[REPRO_BYPRODUCT]["digest"] == {"sha256": "b" * 64}
    unchecked = record.model_copy(update={"repro": None})
    names = [b["name"] for b in _statement(unchecked)["predicate"]["runDetails"]["byproducts"]]
    assert REPRO_BYPRODUCT not in names


CRATE = CrateRef(name="base64", version="0.22.1", checksum="c" * 64,
                 source="registry+https://github.com/rust-lang/crates.io-index",
                 url="https://static.crates.io/crates/base64/base64-0.22.1.crate")


def test_each_rust_crate_is_a_resolved_dependency(record: BuildRecord) -> None:
    crate = CRATE
    deps = _statement(record.model_copy(update={"crates": [crate]}))["predicate"][
        "buildDefinition"]["resolvedDependencies"]
    [found] = [d for d in deps if d.get("annotations", {}).get("kind") == "crate"]
    assert found == {"name": "base64 0.22.1", "uri": "pkg:cargo/base64@0.22.1",
                     "digest": {"sha256": "c" * 64},
                     "annotations": {"kind": "crate", "source": crate.source, "url": crate.url}}


def test_kiln_explain_reads_the_crates_alike_from_record_and_statement(
        record: BuildRecord) -> None:
    from kiln.explain import inputs_from_record, inputs_from_statement

    with_crate = record.model_copy(update={"crates": [CRATE]})
    assert inputs_from_record(with_crate)["crate: base64 0.22.1"] == "c" * 16
    assert inputs_from_statement(_statement(with_crate))["crate: base64 0.22.1"] == "c" * 16


def test_same_record_gives_the_same_bytes(record: BuildRecord) -> None:
    assert statement_bytes(_statement(record)) == statement_bytes(_statement(record))


def test_the_statement_passes_sigstores_own_models(record: BuildRecord) -> None:
    """Independent checks: sigstore-python's in-toto Statement and its SLSA v1 predicate model."""
    from sigstore.dsse import Statement
    from sigstore.dsse._predicate import SLSAPredicateV1_0

    st = _statement(record)
    Statement(statement_bytes(st))
    SLSAPredicateV1_0.model_validate(st["predicate"])


def test_githubs_real_slsa_predicate_fits_the_models() -> None:
    """The models are strict but not stricter than SLSA: GitHub's own provenance passes."""
    from pypi_attestations import Attestation

    attestation = Attestation.model_validate_json(
        (ASSETS / "sigstore" / "pypi_attestations-0.0.19.tar.gz.slsa.attestation").read_bytes())
    assert attestation.statement["predicateType"] == SLSA_PROVENANCE_V1
    SLSAProvenance.model_validate(attestation.statement["predicate"])
    validate_provenance(attestation.statement)


def _mutations() -> list[tuple[str, Any]]:
    def unknown_top(st: dict[str, Any]) -> None:
        st["predicate"]["extra"] = 1

    def unknown_in_builder(st: dict[str, Any]) -> None:
        st["predicate"]["runDetails"]["builder"]["name"] = "x"

    def unknown_in_descriptor(st: dict[str, Any]) -> None:
        st["predicate"]["buildDefinition"]["resolvedDependencies"][0]["sha256"] = "x"

    def unknown_in_statement(st: dict[str, Any]) -> None:
        st["subjects"] = st["subject"]

    def no_build_type(st: dict[str, Any]) -> None:
        del st["predicate"]["buildDefinition"]["buildType"]

    def no_external_parameters(st: dict[str, Any]) -> None:
        del st["predicate"]["buildDefinition"]["externalParameters"]

    def no_builder_id(st: dict[str, Any]) -> None:
        del st["predicate"]["runDetails"]["builder"]["id"]

    def no_subject(st: dict[str, Any]) -> None:
        st["subject"] = []

    def empty_descriptor(st: dict[str, Any]) -> None:
        st["predicate"]["buildDefinition"]["resolvedDependencies"][0] = {"name": "x"}

    def naive_time(st: dict[str, Any]) -> None:
        st["predicate"]["runDetails"]["metadata"]["startedOn"] = "2024-01-01T00:00:00"

    def uppercase_digest(st: dict[str, Any]) -> None:
        digest = st["subject"][0]["digest"]
        digest["sha256"] = digest["sha256"].upper()

    def wrong_statement_type(st: dict[str, Any]) -> None:
        st["_type"] = "https://in-toto.io/Statement/v0.1"

    return [(f.__name__, f) for f in (
        unknown_top, unknown_in_builder, unknown_in_descriptor, unknown_in_statement,
        no_build_type, no_external_parameters, no_builder_id, no_subject, empty_descriptor,
        naive_time, uppercase_digest, wrong_statement_type)]


@pytest.mark.parametrize(("name", "mutate"), _mutations())
def test_slsa_field_rules_are_enforced(record: BuildRecord, name: str, mutate: Any) -> None:
    st = copy.deepcopy(_statement(record))
    validate_provenance(st)
    mutate(st)
    with pytest.raises(ValidationError):
        validate_provenance(st)


def test_parse_statement_refuses_edited_kiln_provenance(record: BuildRecord) -> None:
    from kiln.errors import MalformedAttestationError

    st = copy.deepcopy(_statement(record))
    assert parse_statement(json.dumps(st).encode(), "x")["subject"] == st["subject"]
    st["predicate"]["runDetails"]["surprise"] = True
    with pytest.raises(MalformedAttestationError, match="SLSA v1"):
        parse_statement(json.dumps(st).encode(), "x")
    with pytest.raises(MalformedAttestationError, match="not an in-toto v1 statement"):
        parse_statement(b'{"_type": "https://in-toto.io/Statement/v1"}', "x")


def test_builder_in_github_actions(record: BuildRecord) -> None:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_REPOSITORY": "org/wheels",
           "GITHUB_WORKFLOW_REF": "org/wheels/.github/workflows/build.yml@refs/heads/main",
           "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"}
    assert builder_id(env) == ("https://github.com/org/wheels/.github/workflows/build.yml"
                               "@refs/heads/main")
    assert invocation_id(record, env) == "https://github.com/org/wheels/actions/runs/42/attempts/2"
    run = build_statement(record, recipe_values={}, env=env)["predicate"]["runDetails"]
    assert run["builder"]["id"] == builder_id(env)


def test_builder_outside_actions() -> None:
    assert builder_id({"KILN_BUILDER_ID": "https://ci.example/kiln"}) == "https://ci.example/kiln"
    local = builder_id({})
    assert local.startswith("kiln://") and local.count("/") == 3


def test_recipe_values_come_from_the_recorded_recipe_only(record: BuildRecord, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    text = '[package]\nname = "cext-demo"\nversion = "1.0"\n'
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "cext-demo.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    matching = record.model_copy(update={"recipe": record.recipe.model_copy(
        update={"sha256": sha256_bytes(text.encode())})})
    recipe = build_statement(matching, env=LOCAL)["predicate"]["buildDefinition"][
        "externalParameters"]["recipe"]
    assert recipe["values"] == {"package": {"name": "cext-demo", "version": "1.0"}}
    # The file changed since the build: its values are not the ones used, so none are claimed.
    recipe = build_statement(record, env=LOCAL)["predicate"]["buildDefinition"][
        "externalParameters"]["recipe"]
    assert "values" not in recipe


def test_each_built_library_is_a_resolved_dependency_with_its_source_digest(
        record: BuildRecord) -> None:
    from kiln.record import LibraryRef

    lib = LibraryRef(name="libyaml", version="0.2.5",
                     source="https://deb.debian.org/debian/pool/main/liby/libyaml/"
                            "libyaml_0.2.5.orig.tar.gz",
                     filename="libyaml_0.2.5.orig.tar.gz", sha256="fa" * 32,
                     debian="libyaml 0.2.5-2 (trixie)", build="cmake",
                     options=["-DBUILD_TESTING=OFF"], link="static", key="ab" * 32,
                     tree_sha256="cd" * 32)
    st = _statement(record.model_copy(update={"libraries": [lib]}))
    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    (found,) = [d for d in deps if d.get("annotations", {}).get("kind") == "library"]
    assert found["name"] == "library:libyaml-0.2.5"
    assert found["uri"] == lib.source and found["digest"] == {"sha256": lib.sha256}
    assert found["annotations"]["debian"] == "libyaml 0.2.5-2 (trixie)"
    assert found["annotations"]["options"] == ["-DBUILD_TESTING=OFF"]
    assert found["annotations"]["treeSha256"] == "cd" * 32
    assert not [d for d in _statement(record)["predicate"]["buildDefinition"]
                ["resolvedDependencies"] if d.get("annotations", {}).get("kind") == "library"]
    # kiln verify shows the auditor each library with its source and digest.
    from kiln.verify import summarise

    seen = summarise(Path(record.wheel.filename), record.wheel.sha256, st, ())
    assert seen.libraries == [("libyaml", "0.2.5", lib.source, lib.sha256)]
    assert seen.to_json()["libraries"][0]["sha256"] == lib.sha256

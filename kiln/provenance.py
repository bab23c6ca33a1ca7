"""Provenance: an in-toto v1 Statement with an SLSA provenance v1 predicate, from a build record.

The statement is built from models that refuse unknown keys and check the SLSA v1 field
rules (required fields, at least one of uri/digest/content per resource, aware
timestamps), then handed to sigstore-python's in-toto ``Statement`` type, the one its
signer consumes, so both layers are checked by code that is not kiln's.

Where things go (https://slsa.dev/spec/v1.0/provenance):

- ``subject``: each wheel, by filename and sha256.
- ``buildDefinition.externalParameters``: what the maintainer chose: the recipe (path,
  sha256, and its values when the file is at hand), the sdist url, Python, target,
  backend, config settings.
- ``buildDefinition.internalParameters``: what kiln chose: the pinned-environment digest
  (the build id, also the cache key), the environment, normalisation and sandbox.
- ``buildDefinition.resolvedDependencies``: the sdist, the lock and every locked build
  requirement, the interpreter, the toolchain and system packages.
- ``runDetails``: the builder (the GitHub workflow in Actions, else ``KILN_BUILDER_ID`` or
  ``kiln://HOST/USER``), kiln's version, times, invocation id; byproducts are the
  reproducibility result (both digests), the wheel before repair, the test outcome and
  the build log.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import rfc8785
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kiln import toml
from kiln.errors import KilnError, MalformedAttestationError
from kiln.files import sha256_bytes
from kiln.record import BuildRecord, ToolRef

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://kiln.dev/build/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
REPRO_BYPRODUCT = "reproducibility"
TESTS_BYPRODUCT = "tests"

_HEX = re.compile(r"[0-9a-f]+\Z")
# Digest algorithms whose values are hex (in-toto digest_set.md); others are opaque.
_HEX_ALGORITHMS = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512", "sha512_224",
                             "sha512_256", "sha3_224", "sha3_256", "sha3_384", "sha3_512",
                             "blake2b", "blake2s", "md5", "gitCommit", "gitTree", "gitBlob"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel,
                              populate_by_name=True)


class DigestSet(RootModel[dict[str, str]]):
    """Algorithm → digest; hex digests in lowercase, as in-toto requires."""

    @field_validator("root")
    @classmethod
    def _hex(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("a digest set needs at least one digest")
        for algorithm, digest in value.items():
            if algorithm in _HEX_ALGORITHMS and not _HEX.match(digest):
                raise ValueError(f"{algorithm} digest {digest!r} is not lowercase hex")
        return value


class ResourceDescriptor(_Model):
    uri: str | None = None
    digest: DigestSet | None = None
    name: str | None = None
    download_location: str | None = None
    media_type: str | None = None
    content: str | None = None  # base64
    annotations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _locatable(self) -> ResourceDescriptor:
        if not (self.uri or self.digest or self.content):
            raise ValueError("a ResourceDescriptor needs at least one of uri, digest, content")
        return self


class Builder(_Model):
    id: str = Field(min_length=1)
    builder_dependencies: list[ResourceDescriptor] | None = None
    version: dict[str, str] | None = None


class BuildMetadata(_Model):
    invocation_id: str | None = None
    started_on: AwareDatetime | None = None
    finished_on: AwareDatetime | None = None


class RunDetails(_Model):
    builder: Builder
    metadata: BuildMetadata | None = None
    byproducts: list[ResourceDescriptor] | None = None


class BuildDefinition(_Model):
    build_type: str = Field(min_length=1)
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any] | None = None
    resolved_dependencies: list[ResourceDescriptor] | None = None


class SLSAProvenance(_Model):
    """The SLSA provenance v1 predicate."""

    build_definition: BuildDefinition
    run_details: RunDetails


class Subject(_Model):
    name: str = Field(min_length=1)
    digest: DigestSet


class ProvenanceStatement(_Model):
    """An in-toto v1 Statement whose predicate is SLSA provenance v1."""

    statement_type: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicate_type: Literal["https://slsa.dev/provenance/v1"]
    predicate: SLSAProvenance


class AnyStatement(_Model):
    """The in-toto v1 Statement layer alone, for statements that are not kiln's."""

    statement_type: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicate_type: str = Field(min_length=1)
    predicate: dict[str, Any] | None = None


# --------------------------------------------------------------------------- building

def build_statement(record: BuildRecord, *, recipe_values: Mapping[str, Any] | None = None,
                    env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The signed-to-be statement of how ``record``'s wheels were built, as JSON-ready dict.

    ``recipe_values`` default to the recipe file named in the record when it is there
    and still has the recorded sha256; ``env`` (default ``os.environ``) decides the builder.
    """
    environ = os.environ if env is None else env
    values = dict(recipe_values) if recipe_values is not None else _recipe_values(record)
    recipe: dict[str, Any] = {"path": record.recipe.path, "sha256": record.recipe.sha256,
                              "name": record.recipe.name, "version": record.recipe.version}
    if values is not None:
        recipe["values"] = values
    if record.recipe.text:
        # The file itself: with the lock's content (resolvedDependencies), enough for anyone
        # to rebuild from this statement alone (`kiln rebuild`).
        recipe["text"] = record.recipe.text
    external: dict[str, Any] = {
        "recipe": recipe,
        "source": {"url": record.source.url, "sha256": record.source.sha256},
        "python": record.python.version,
        "target": record.target,
        "backend": record.backend,
    }
    if record.config_settings:
        external["configSettings"] = dict(record.config_settings)
    internal: dict[str, Any] = {
        "buildId": record.build_id,
        "environment": dict(record.environment),
        "normalisation": record.normalisation.model_dump(mode="json"),
        "sandbox": record.sandbox.model_dump(mode="json"),
        "repair": {"tool": record.repair.tool, "policy": record.repair.policy,
                   "grafted": list(record.repair.grafted)},
        "host": record.host,
        "cached": record.cached,
        "hermetic": record.hermetic,
    }
    if record.not_hermetic:
        internal["notHermetic"] = list(record.not_hermetic)
    if record.flake:
        internal["flake"] = record.flake
    statement = ProvenanceStatement.model_validate({
        "_type": STATEMENT_TYPE,
        "subject": [Subject(name=w.filename, digest=DigestSet({"sha256": w.sha256}))
                    for w in record.outputs],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": SLSAProvenance(
            build_definition=BuildDefinition(
                build_type=BUILD_TYPE,
                external_parameters=external,
                internal_parameters=internal,
                resolved_dependencies=_resolved_dependencies(record),
            ),
            run_details=RunDetails(
                builder=Builder(id=builder_id(environ), version={"kiln": record.kiln_version}),
                metadata=BuildMetadata(invocation_id=invocation_id(record, environ),
                                       started_on=record.started, finished_on=record.finished),
                byproducts=_byproducts(record) or None,
            ),
        ),
    })
    data = dump_statement(statement)
    check_in_toto(data)
    return data


def dump_statement(statement: BaseModel) -> dict[str, Any]:
    result: dict[str, Any] = statement.model_dump(mode="json", by_alias=True, exclude_none=True)
    return result


def builder_id(env: Mapping[str, str]) -> str:
    """Who ran the build: ``KILN_BUILDER_ID``, the GitHub workflow, or ``kiln://HOST/USER``."""
    explicit = env.get("KILN_BUILDER_ID", "").strip()
    if explicit:
        return explicit
    workflow_ref = env.get("GITHUB_WORKFLOW_REF", "")
    if env.get("GITHUB_ACTIONS") == "true" and workflow_ref:
        # The same string Fulcio puts in the certificate of a keyless signature made by
        # this workflow, so the builder and the signer can be compared.
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{workflow_ref}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return f"kiln://{socket.gethostname()}/{user}"


def invocation_id(record: BuildRecord, env: Mapping[str, str]) -> str:
    """The GitHub Actions run attempt, else a UUID derived from the build id and start time."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return (f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                f"{env['GITHUB_RUN_ID']}/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}")
    # Derived, not random: signing the same record twice gives the same statement.
    name = f"{BUILD_TYPE}/{record.build_id}/{record.started.isoformat()}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def _recipe_values(record: BuildRecord) -> dict[str, Any] | None:
    path = Path(record.recipe.path)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if sha256_bytes(raw) != record.recipe.sha256:
        return None  # edited since the build: its values are not the ones that were used
    try:
        return toml.loads(raw.decode())
    except (toml.TOMLDecodeError, UnicodeDecodeError):
        return None


def _tool(tool: ToolRef, kind: str) -> ResourceDescriptor:
    uri = Path(tool.path).as_uri() if tool.path.startswith("/") else None
    return ResourceDescriptor(
        name=tool.name,
        uri=uri or (None if tool.sha256 else f"urn:kiln:{kind}:{tool.name}"),
        digest=DigestSet({"sha256": tool.sha256}) if tool.sha256 else None,
        annotations={"kind": kind, "version": tool.version},
    )


def _resolved_dependencies(record: BuildRecord) -> list[ResourceDescriptor]:
    deps = [ResourceDescriptor(name=record.source.filename, uri=record.source.url,
                               digest=DigestSet({"sha256": record.source.sha256}),
                               annotations={"kind": "sdist", "size": record.source.size})]
    if record.lock is not None:
        deps.append(ResourceDescriptor(
            name=record.lock.path, digest=DigestSet({"sha256": record.lock.sha256}),
            content=(base64.b64encode(record.lock.text.encode()).decode()
                     if record.lock.text else None),
            annotations={"kind": "lock"}))
    for req in record.build_requirements:
        hashes = [h.removeprefix("sha256:") for h in req.hashes]
        annotations: dict[str, Any] = {"kind": "build-requirement", "hashes": hashes}
        if req.marker:
            annotations["marker"] = req.marker
        deps.append(ResourceDescriptor(
            name=f"{req.name}=={req.version}",
            uri=f"pkg:pypi/{req.name.lower().replace('_', '-')}@{req.version}",
            # The lock allows any of its hashes; a single one is the exact file.
            digest=DigestSet({"sha256": hashes[0]}) if len(hashes) == 1 else None,
            annotations=annotations,
        ))
    deps.extend(ResourceDescriptor(
        name=f"{crate.name} {crate.version}", uri=f"pkg:cargo/{crate.name}@{crate.version}",
        digest=DigestSet({"sha256": crate.checksum}),
        annotations={"kind": "crate", "source": crate.source, "url": crate.url},
    ) for crate in record.crates)
    py = record.python
    deps.append(ResourceDescriptor(
        name=f"cpython-{py.version}",
        uri=Path(py.path).as_uri() if py.path.startswith("/") else None,
        digest=DigestSet({"sha256": py.sha256}),
        annotations={"kind": "interpreter", "version": py.version, "tag": py.tag,
                     **({"zlib": py.zlib} if py.zlib else {}),
                     # A hermetic build's interpreter runs the frontend; kiln's CPython
                     # description (cpython-headers) is what the binary is built against.
                     **({"role": "frontend"} if record.hermetic else {})},
    ))
    if record.cpython is not None:
        described = record.cpython
        deps.append(ResourceDescriptor(
            name=f"cpython-{described.minor}-headers",
            uri=described.url,
            digest=DigestSet({"sha256": described.deb_sha256}),
            annotations={"kind": "cpython-headers", "source": described.source,
                         "headersVersion": described.headers_version,
                         "headersSha256": described.headers_sha256,
                         "sysconfig": described.sysconfig,
                         "sysconfigSha256": described.sysconfig_sha256},
        ))
    for lib in record.libraries:
        deps.append(ResourceDescriptor(
            name=f"library:{lib.name}-{lib.version}",
            uri=lib.source,
            digest=DigestSet({"sha256": lib.sha256}),
            annotations={"kind": "library", "version": lib.version, "filename": lib.filename,
                         **({"debian": lib.debian} if lib.debian else {}),
                         "build": lib.build, "options": list(lib.options), "link": lib.link,
                         "requires": list(lib.requires), "key": lib.key,
                         "treeSha256": lib.tree_sha256},
        ))
    deps.extend(_tool(t, "toolchain") for t in record.toolchain)
    deps.extend(_tool(t, "system-package") for t in record.system_packages)
    return deps


def _byproducts(record: BuildRecord) -> list[ResourceDescriptor]:
    out: list[ResourceDescriptor] = []
    repro = record.repro
    if repro is not None and repro.checked:
        out.append(ResourceDescriptor(
            name=REPRO_BYPRODUCT,
            # The second build's wheel; the first is the subject.
            digest=DigestSet({"sha256": repro.digests[-1]}) if repro.digests else None,
            uri=None if repro.digests else "urn:kiln:reproducibility",
            annotations={"reproducible": repro.reproducible, "digests": list(repro.digests),
                         "variations": list(repro.variations), "skipped": dict(repro.skipped),
                         "expected": repro.expected,
                         **({"report": repro.report} if repro.report else {}),
                         **({"against": repro.against} if repro.against else {})},
        ))
    raw = record.repair.raw
    out.append(ResourceDescriptor(name=raw.name, digest=DigestSet({"sha256": raw.sha256}),
                                  annotations={"kind": "wheel-before-repair", "size": raw.size,
                                               "repairedBy": record.repair.tool}))
    test = record.test
    out.append(ResourceDescriptor(
        name=TESTS_BYPRODUCT, uri="urn:kiln:tests",
        annotations={"ran": test.ran, "passed": test.passed, "commands": list(test.commands),
                     "emulated": test.emulated,
                     **({"whyNot": test.why_not} if test.why_not else {}),
                     **({"counts": test.counts.model_dump(mode="json")} if test.counts else {})},
    ))
    if record.log is not None:
        out.append(ResourceDescriptor(name=record.log.name,
                                      digest=DigestSet({"sha256": record.log.sha256}),
                                      media_type="text/plain",
                                      annotations={"kind": "build-log", "size": record.log.size}))
    return out


# --------------------------------------------------------------------------- reading

def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The statement as signed: RFC 8785 canonical JSON, so the same dict gives the same bytes."""
    return rfc8785.dumps(dict(statement))


def check_in_toto(statement: Mapping[str, Any]) -> None:
    """Check the statement layer with sigstore-python's own in-toto model."""
    from sigstore.dsse import Statement
    from sigstore.errors import Error as SigstoreError

    try:
        Statement(statement_bytes(statement))
    except SigstoreError as exc:
        raise KilnError(f"kiln made an in-toto statement sigstore refuses: {exc}",
                        hint="this is a bug in kiln; please report it") from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "(top)"
    return f"{where}: {first['msg']}"


def parse_statement(payload: bytes | Mapping[str, Any], origin: str) -> dict[str, Any]:
    """An in-toto v1 statement from a verified payload; kiln's own are checked field by field.

    Statements of other build types (a PyPI publish attestation, GitHub's SLSA provenance)
    are checked at the statement layer only: kiln does not own their predicates.
    """
    try:
        generic = (AnyStatement.model_validate_json(payload) if isinstance(payload, bytes)
                   else AnyStatement.model_validate(payload))
    except ValidationError as exc:
        raise MalformedAttestationError(
            f"{origin}: the signed payload is not an in-toto v1 statement "
            f"({_first_error(exc)})") from exc
    data = dump_statement(generic)
    data.setdefault("predicate", None)
    if generic.predicate_type == SLSA_PROVENANCE_V1 and is_kiln_statement(data):
        try:
            ProvenanceStatement.model_validate(data)
        except ValidationError as exc:
            raise MalformedAttestationError(
                f"{origin}: kiln provenance breaks the SLSA v1 rules ({_first_error(exc)})",
                hint="the statement was made by another tool or edited before signing") from exc
    return data


def is_kiln_statement(statement: Mapping[str, Any]) -> bool:
    predicate = statement.get("predicate") or {}
    definition = predicate.get("buildDefinition") or {}
    return bool(definition.get("buildType") == BUILD_TYPE)


def validate_provenance(statement: Mapping[str, Any]) -> ProvenanceStatement:
    """Validate a statement against the SLSA v1 models (raises pydantic's ValidationError)."""
    return ProvenanceStatement.model_validate(dict(statement))

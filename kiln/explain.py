"""What two builds of one wheel were given, side by side: the inputs that differ come first.

``kiln repro --against`` compares our rebuild with a wheel built elsewhere. Before it shows
which members differ, it reads the other build's record (beside the wheel, at the mirror
beside the wheel's url, or on the audit branch) and names the inputs that were not the same:
the kiln version, the toolchain, the CPython description, the interpreter, the lock, the
recipe. The interpreter that ran a hermetic build's frontend is listed, but marked as not
shaping the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kiln import http
from kiln.errors import KilnError
from kiln.record import RECORD_SUFFIX, BuildRecord, load_record


class InputDifference(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str  # "toolchain: ziglang", "interpreter", "lock" …
    ours: str
    theirs: str
    shapes_bytes: bool = True  # False: recorded, but not an input of the wheel's bytes


@dataclass(frozen=True)
class TheirInputs:
    inputs: dict[str, str]
    where: str  # "beside the wheel", "the audit branch", …
    hermetic: bool


def _short(digest: str) -> str:
    return digest[:16] if len(digest) == 64 else digest


def inputs_from_record(record: BuildRecord) -> dict[str, str]:
    """A build's inputs by name, from its build record."""
    found = {
        "kiln": record.kiln_version,
        "backend": record.backend,
        "target": record.target,
        "recipe": _short(record.recipe.sha256),
        "sdist": _short(record.source.sha256),
        "lock": _short(record.lock.sha256) if record.lock else "none",
        "interpreter": f"CPython {record.python.version} ({_short(record.python.sha256)})",
        "source date epoch": str(record.normalisation.source_date_epoch),
        "hermetic": "yes" if record.hermetic else "no",
    }
    for tool in record.toolchain:
        found[f"toolchain: {tool.name}"] = tool.version + (
            f" ({_short(tool.sha256)})" if tool.sha256 else "")
    for package in record.system_packages:
        found[f"system package: {package.name}"] = package.version
    for crate in record.crates:
        found[f"crate: {crate.name} {crate.version}"] = _short(crate.checksum)
    described = record.cpython
    if described is not None:
        found["cpython headers"] = f"{described.source} ({_short(described.headers_sha256)})"
        found["cpython sysconfig"] = _short(described.sysconfig_sha256)
    for name, value in sorted(record.environment.items()):
        found[f"environment: {name}"] = value
    return found


def inputs_from_statement(statement: dict[str, Any]) -> dict[str, str]:
    """A build's inputs by name, from kiln's SLSA provenance statement of it."""
    predicate = statement.get("predicate") or {}
    definition = predicate.get("buildDefinition") or {}
    external = definition.get("externalParameters") or {}
    internal = definition.get("internalParameters") or {}
    builder = (predicate.get("runDetails") or {}).get("builder") or {}
    found = {
        "kiln": str((builder.get("version") or {}).get("kiln", "")),
        "backend": str(external.get("backend", "")),
        "target": str(external.get("target", "")),
        "recipe": _short(str((external.get("recipe") or {}).get("sha256", ""))),
        "sdist": _short(str((external.get("source") or {}).get("sha256", ""))),
        "hermetic": "yes" if internal.get("hermetic") else "no",
        "source date epoch": str((internal.get("normalisation") or {}).get(
            "source_date_epoch", "")),
        "lock": "none",
    }
    for dep in definition.get("resolvedDependencies") or []:
        annotations = dep.get("annotations") or {}
        kind = annotations.get("kind")
        digest = (dep.get("digest") or {}).get("sha256", "")
        if kind == "lock":
            found["lock"] = _short(digest)
        elif kind == "interpreter":
            found["interpreter"] = f"CPython {annotations.get('version')} ({_short(digest)})"
        elif kind == "toolchain":
            found[f"toolchain: {dep.get('name')}"] = str(annotations.get("version", "")) + (
                f" ({_short(digest)})" if digest else "")
        elif kind == "system-package":
            found[f"system package: {dep.get('name')}"] = str(annotations.get("version", ""))
        elif kind == "crate":
            found[f"crate: {dep.get('name')}"] = _short(digest)
        elif kind == "cpython-headers":
            found["cpython headers"] = (f"{annotations.get('source')} "
                                        f"({_short(str(annotations.get('headersSha256', '')))})")
            found["cpython sysconfig"] = _short(str(annotations.get("sysconfigSha256", "")))
    for name, value in sorted((internal.get("environment") or {}).items()):
        found[f"environment: {name}"] = str(value)
    return found


def compare_inputs(ours: dict[str, str], theirs: dict[str, str], *,
                   hermetic: bool) -> list[InputDifference]:
    """The inputs whose values differ, the ones that shape a wheel's bytes first."""
    out = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name, "(not recorded)"), theirs.get(name, "(not recorded)")
        if a == b:
            continue
        # A hermetic build's interpreter only runs the frontend, and a record's bookkeeping
        # (the hermetic flag itself) follows from the others.
        shapes = not (name == "interpreter" and hermetic) and name != "hermetic"
        out.append(InputDifference(input=name, ours=a, theirs=b, shapes_bytes=shapes))
    return sorted(out, key=lambda d: (not d.shapes_bytes, d.input))


def _record_text(text: bytes, origin: str) -> BuildRecord | None:
    try:
        return BuildRecord.model_validate_json(text)
    except ValidationError:
        return None


def find_their_inputs(location: str, wheel: Path, sha256: str, *,
                      audit_repo: Path | None = None) -> TheirInputs | None:
    """The other build's inputs: its record beside the wheel (or its url), a signed
    statement beside it, or the audit branch's record of the wheel; None when none is found."""
    if "://" not in location:
        beside = wheel.with_name(wheel.name + RECORD_SUFFIX)
        if beside.is_file():
            try:
                record = load_record(beside)
            except KilnError:
                record = None
            if record is not None:
                return TheirInputs(inputs_from_record(record), f"{beside}", record.hermetic)
        for suffix in (".dsse.json", ".sigstore.json"):
            signed = wheel.with_name(wheel.name + suffix)
            statement = _statement_of(signed)
            if statement is not None:
                return TheirInputs(inputs_from_statement(statement), str(signed),
                                   _hermetic(statement))
    else:
        try:
            text = http.get_bytes(location + RECORD_SUFFIX, what="the wheel's build record")
        except KilnError:
            text = b""
        record = _record_text(text, location) if text else None
        if record is not None:
            return TheirInputs(inputs_from_record(record), location + RECORD_SUFFIX,
                               record.hermetic)
    from kiln.audit.branch import find_record

    try:
        audit = find_record(wheel.name, sha256, repo=audit_repo)
    except KilnError:
        audit = None
    if audit is not None and audit.wheel.sha256 == sha256:
        return TheirInputs(inputs_from_statement(audit.statement), "the audit branch",
                           _hermetic(audit.statement))
    return None


def _hermetic(statement: dict[str, Any]) -> bool:
    definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
    return bool((definition.get("internalParameters") or {}).get("hermetic"))


def _statement_of(signed: Path) -> dict[str, Any] | None:
    """The statement inside a DSSE envelope or Sigstore bundle (read, not verified: this
    only explains a difference; ``kiln verify`` is what trusts a signature)."""
    import base64

    try:
        data = json.loads(signed.read_text())
    except (OSError, ValueError):
        return None
    envelope = data.get("dsseEnvelope") if isinstance(data, dict) else None
    envelope = envelope if isinstance(envelope, dict) else data
    try:
        payload = json.loads(base64.b64decode(envelope["payload"]))
    except (KeyError, TypeError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None

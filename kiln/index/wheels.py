"""Reading one wheel for the index: its name, its core metadata, its digest, its build record.

A wheel that cannot be read, or whose METADATA disagrees with its filename, raises
``BadWheel`` with the reason; the index leaves it out and says why.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

# Wheels up to this size are read once into memory (hash and zip from the same bytes);
# larger ones are hashed in a stream and only their central directory is read.
_READ_WHOLE = 16 << 20
_CHUNK = 1 << 20


# Below this many wheels a pool of processes costs more than it saves.
PARALLEL_FROM = 2000


class BadWheel(Exception):
    """The file cannot be indexed; the message says why."""


@dataclass(frozen=True)
class WheelFacts:
    filename: str
    project: str
    version: str
    sha256: str
    size: int
    requires_python: str | None
    metadata: bytes
    metadata_sha256: str


def parse_filename(filename: str) -> tuple[str, Version]:
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise BadWheel(f"not a valid wheel file name ({exc})") from exc
    return str(name), version


@dataclass(frozen=True)
class Inspected:
    facts: WheelFacts
    content: bytes | Path | None  # the bytes that were hashed, or a spooled copy of them


def inspect_wheel(path: Path, size: int, spool: Path | None = None) -> Inspected:
    """Digest, core metadata and the fields the index shows, checked against the filename.

    A small wheel is read once into memory; a large one is streamed, and with ``spool``
    copied there while it is hashed. Either way the caller can publish exactly the bytes
    that were described, even if the wheelhouse file changes meanwhile.
    """
    project, version = parse_filename(path.name)
    streamed = size > _READ_WHOLE
    try:
        if not streamed:
            content: bytes | Path | None = path.read_bytes()
            assert isinstance(content, bytes)
            sha256, size = hashlib.sha256(content).hexdigest(), len(content)
            zf = zipfile.ZipFile(io.BytesIO(content))
        else:
            content = spool
            sha256, size = _stream(path, spool)
            zf = zipfile.ZipFile(spool or path)
        with zf:
            metadata = _read_metadata(zf, project, version)
        facts = _check(path.name, project, version, sha256, size, metadata)
    except BaseException as exc:
        if spool is not None and streamed:
            spool.unlink(missing_ok=True)
        if isinstance(exc, zipfile.BadZipFile):
            raise BadWheel(f"not a zip file ({exc})") from exc
        if isinstance(exc, OSError):
            raise BadWheel(f"cannot be read ({exc.strerror or exc})") from exc
        raise
    return Inspected(facts, content)


def _stream(path: Path, copy: Path | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh, (copy.open("wb") if copy else io.BytesIO()) as out:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if copy is not None:
                out.write(chunk)
    return digest.hexdigest(), size


def _check(filename: str, project: str, version: Version, sha256: str, size: int,
           metadata: bytes) -> WheelFacts:
    fields = _core_fields(metadata)
    meta_name, meta_version = fields.get("name"), fields.get("version")
    if not meta_name or not meta_version:
        raise BadWheel("METADATA has no Name or no Version")
    if canonicalize_name(meta_name) != project:
        raise BadWheel(f"METADATA says Name: {meta_name}, but the filename says {project}")
    try:
        same_version = Version(meta_version) == version
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise BadWheel(f"METADATA says Version: {meta_version}, but the filename says {version}")
    return WheelFacts(filename, project, str(version), sha256, size,
                      fields.get("requires-python") or None, metadata,
                      hashlib.sha256(metadata).hexdigest())


def _read_metadata(zf: zipfile.ZipFile, project: str, version: Version) -> bytes:
    candidates = [n for n in zf.namelist()
                  if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(candidates) > 1:  # pick the one named for this distribution
        candidates = [n for n in candidates if _dist_info_matches(n, project, version)]
    if len(candidates) != 1:
        raise BadWheel("no single <name>-<version>.dist-info/METADATA inside")
    try:
        return zf.read(candidates[0])
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # CRC errors, bad compression
        raise BadWheel(f"{candidates[0]} cannot be read ({exc})") from exc


def _dist_info_matches(member: str, project: str, version: Version) -> bool:
    stem = member.split("/", 1)[0][: -len(".dist-info")]
    name, _, ver = stem.rpartition("-")
    try:
        return canonicalize_name(name) == project and Version(ver) == version
    except InvalidVersion:
        return False


def _core_fields(metadata: bytes) -> dict[str, str]:
    """Name, Version and Requires-Python from the header block of a core metadata file.

    A plain line scan: the email parser costs ten times as much, and these three fields
    are single-line by the core metadata spec (continuation lines are still joined).
    """
    try:
        text = metadata.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadWheel(f"METADATA is not UTF-8 ({exc})") from exc
    wanted = {"name", "version", "requires-python"}
    found: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            break  # end of the headers; the description body follows
        if line[0] in " \t":
            if last in found:
                found[last] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        last = key.strip().lower()
        if sep and last in wanted and last not in found:
            found[last] = value.strip()
    return found


@dataclass(frozen=True)
class RecordFacts:
    reproducible: bool | None
    build_id: str | None
    warning: str | None = None
    hermetic: bool | None = None
    tests: str = ""  # "passed (412)" …; "" when the record does not say


def read_build_record(path: Path, sha256: str) -> RecordFacts:
    """What kiln's build record beside a wheel says, read leniently.

    Only a record that lists this very wheel (by sha256) among its outputs is believed:
    a record left over from another build of the same filename says nothing about it.
    """
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return RecordFacts(None, None, f"{path.name}: cannot be read as JSON ({exc})")
    if not isinstance(data, dict):
        return RecordFacts(None, None, f"{path.name}: not a build record")
    outputs = data.get("outputs")
    if isinstance(outputs, list) and outputs:
        digests = {o.get("sha256") for o in outputs if isinstance(o, dict)}
        if sha256 not in digests:
            return RecordFacts(None, None, f"{path.name}: describes another build of this "
                                           "wheel (its sha256 differs); ignored")
    build_id = data.get("build_id")
    repro = data.get("repro")
    reproducible = None
    if isinstance(repro, dict) and repro.get("checked") is not False:
        value = repro.get("reproducible")
        reproducible = value if isinstance(value, bool) else None
    hermetic = data.get("hermetic")
    return RecordFacts(reproducible, build_id if isinstance(build_id, str) else None,
                       hermetic=hermetic if isinstance(hermetic, bool) else None,
                       tests=_tests(data.get("test")))


def _tests(value: object) -> str:
    """What the record's tests found, as tables say it; "" when it cannot be read."""
    from pydantic import ValidationError

    from kiln.record import TestRef

    try:
        return TestRef.model_validate(value).summary()
    except ValidationError:
        return ""


@dataclass(frozen=True)
class ToRead:
    folder: Path
    filename: str
    size: int
    record: bool  # a build record is beside it
    publish_to: Path | None = None  # the index's root: put a copy under files/ there
    plain_claim: str | None = None  # the sha256 files/<project>/<filename> already holds


@dataclass(frozen=True)
class Read:
    filename: str
    facts: WheelFacts | None
    problem: str | None = None
    record: RecordFacts | None = None
    path: str = ""  # where the copy was published, relative to the index's root


def plain_path(filename: str) -> str:
    """Where a wheel is published unless that path once held other bytes."""
    return f"files/{canonicalize_name(filename.split('-', 1)[0])}/{filename}"


def read_one(item: ToRead) -> Read:
    spool = None
    if item.publish_to is not None and item.size > _READ_WHOLE:
        spool = item.publish_to / "files" / f".{item.filename}.{os.getpid()}.part"
        spool.parent.mkdir(parents=True, exist_ok=True)
    try:
        inspected = inspect_wheel(item.folder / item.filename, item.size, spool)
    except BadWheel as exc:
        return Read(item.filename, None, str(exc))
    facts = inspected.facts
    record = None
    if item.record:
        record = read_build_record(item.folder / (item.filename + ".build.json"), facts.sha256)
    path = ""
    if item.publish_to is not None:
        path = _publish(item.publish_to, item.plain_claim, inspected)
    return Read(item.filename, facts, record=record, path=path)


def _publish(root: Path, plain_claim: str | None, inspected: Inspected) -> str:
    """Copy a wheel (and its core metadata) into ``files/``; return where.

    Done here, in the worker that read it, from the very bytes that were hashed. A path
    never gets other bytes: the plain path when it is new (no page links to it yet, so it
    is written in place) or already holds these bytes (left alone), else
    ``files/<project>/<digest>/<wheel>``, replaced whole.
    """
    facts, content = inspected.facts, inspected.content
    rel = f"files/{facts.project}/{facts.filename}"
    in_place = plain_claim is None
    if plain_claim == facts.sha256:
        target = root / rel
        if target.exists() and Path(f"{target}.metadata").exists():
            if isinstance(content, Path):
                content.unlink(missing_ok=True)
            return rel
    elif plain_claim is not None:
        rel = f"files/{facts.project}/{facts.sha256[:16]}/{facts.filename}"
    target = root / rel
    try:
        _put(target, content, in_place)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        _put(target, content, in_place)
    _put(Path(f"{target}.metadata"), facts.metadata, in_place)
    return rel


def _put(target: Path, content: bytes | Path | None, in_place: bool) -> None:
    """Write in place where no page can link yet; else through a temporary file."""
    if isinstance(content, Path):
        content.replace(target)
    elif content is not None:
        if in_place:
            target.write_bytes(content)
        else:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            tmp.replace(target)


def read_wheels(items: Sequence[ToRead]) -> Iterator[Read]:
    """Read many wheels, in worker processes when there are enough to pay for them.

    Reading (zip directory, hashing, parsing) is CPU work; the caller meanwhile does the
    file-system work of placing each wheel, so the two overlap even on two cores.
    """
    workers = min(4, os.cpu_count() or 1)
    if len(items) < PARALLEL_FROM or workers < 2:
        yield from map(read_one, items)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(read_one, items, chunksize=256)

"""``kiln challenge``: what several kiln indexes, and a wheelhouse, serve under one filename.

Like ``guix challenge`` for substitute servers: each source lists its files with their
sha256 (PEP 691 JSON), a filename served with two digests is a difference, and the build
records published beside the wheels (``<wheel>.build.json``) say which inputs each build
was given. Upstream's links (files listed without ``_kiln``) are compared only where
another source serves the same filename: alone they say nothing about kiln's builds.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from pydantic import ValidationError

from kiln import http
from kiln.errors import FetchError, UsageError
from kiln.explain import InputDifference, compare_inputs, inputs_from_record
from kiln.files import sha256_file
from kiln.index.model import JSON_TYPE
from kiln.progress import reporter
from kiln.record import RECORD_SUFFIX, BuildRecord

_WORKERS = 8  # project pages read at once from one index
# The page files of a local index, best first, as kiln.serve picks them for JSON.
_PAGE_FILES = ("index.json", "index.v1_json")
_NOT_AN_INDEX = ("give the simple/ root of a kiln index (`kiln serve SITE` prints it), or "
                 "the folder `kiln index -o SITE` wrote")
_UNREACHABLE = "check the URL, your network, and that the index is served (`kiln serve SITE`)"


@dataclass(frozen=True)
class Builder:
    """Who built or vouches for a wheel: a signer the index trusts, or what a record names."""

    builder: str
    signer: str | None = None
    verified: bool | None = None

    def describe(self) -> str:
        text = f"{self.signer} ({self.builder})" if self.signer else self.builder
        if self.verified is None:
            return text
        return f"{text}, {'verified' if self.verified else 'not verified'}"

    def as_json(self) -> dict[str, Any]:
        return {"signer": self.signer, "builder": self.builder, "verified": self.verified}


@dataclass(frozen=True)
class Listed:
    """One file as one source lists it."""

    source: str
    filename: str
    sha256: str  # "" when the source gives none (it cannot be compared)
    url: str  # absolute: http(s):// or file://
    upstream: bool = False  # listed without ``_kiln``: a link to another index's file
    builders: tuple[Builder, ...] | None = None  # ``_kiln.builders``, when the index says
    record_url: str | None = None  # where its build record is published, or would be
    uploaded: datetime | None = None  # PEP 700 upload-time, when the source gives it


@dataclass(frozen=True)
class RecordLookup:
    """One source's build record of a wheel: where it was found and what it says."""

    where: str | None = None  # None: the source publishes no record of it
    record: BuildRecord | None = None
    problem: str | None = None  # found, but not readable as a build record
    builder: str | None = None  # the builder the record names, else the host it ran on
    other_bytes: bool = False  # the record's outputs do not include these bytes


@dataclass(frozen=True)
class Side:
    """One source's file in a difference, with its build record."""

    listed: Listed
    record: RecordLookup

    @property
    def builders(self) -> tuple[Builder, ...] | None:
        """The builders the index vouches for, else the one the record names."""
        if self.listed.builders is not None:
            return self.listed.builders
        return (Builder(self.record.builder),) if self.record.builder else None

    def as_json(self) -> dict[str, Any]:
        builders = self.builders
        return {"source": self.listed.source, "sha256": self.listed.sha256,
                "url": self.listed.url, "upstream": self.listed.upstream,
                "builders": None if builders is None else [b.as_json() for b in builders],
                "record": self.record.where, "record_problem": self.record.problem,
                "record_describes_other_bytes": self.record.other_bytes}


@dataclass(frozen=True)
class Agreement:
    filename: str
    sha256: str
    sources: tuple[str, ...]
    upstream: bool  # every source lists it as a link to upstream's file


@dataclass(frozen=True)
class Difference:
    filename: str
    sides: tuple[Side, ...]
    compared: tuple[str, str] | None  # the two sources whose records were compared
    inputs: tuple[InputDifference, ...]  # in the order (compared[0], compared[1])

    @property
    def digests(self) -> int:
        return len({s.listed.sha256 for s in self.sides})


@dataclass
class ChallengeReport:
    sources: list[str]
    agree: list[Agreement] = field(default_factory=list)
    differ: list[Difference] = field(default_factory=list)
    only: list[Listed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.agree)} agree, {len(self.differ)} differ, "
                f"{len(self.only)} only on one side")

    def as_json(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "agree": [{"filename": a.filename, "sha256": a.sha256, "sides": list(a.sources),
                       "upstream": a.upstream} for a in self.agree],
            "differ": [{"filename": d.filename, "sides": [s.as_json() for s in d.sides],
                        "compared": list(d.compared) if d.compared else None,
                        "inputs": [i.model_dump() for i in d.inputs]} for d in self.differ],
            "only": [{"filename": o.filename, "source": o.source, "sha256": o.sha256,
                      "url": o.url} for o in self.only],
            "notes": self.notes,
        }


class Source(Protocol):
    """Somewhere wheels are served from: a kiln index, or a wheelhouse folder."""

    name: str

    def files(self, projects: frozenset[str] | None) -> list[Listed]:
        """Every file it lists, of ``projects`` only when given (normalized names)."""

    def record(self, listed: Listed) -> RecordLookup:
        """Its build record of one of its files."""


class IndexSource:
    """A kiln index's simple/ root, over http(s) or in a local folder."""

    def __init__(self, location: str) -> None:
        self.name = location
        self.root = _root_url(location)

    def files(self, projects: frozenset[str] | None) -> list[Listed]:
        root = _page(self.root)
        listed = root.get("projects")
        if not isinstance(root.get("meta"), dict) or not isinstance(listed, list):
            raise FetchError(f"{self.root}: not a PEP 691 index (its JSON has no meta and "
                             "projects)", hint=_NOT_AN_INDEX)
        names = sorted({canonicalize_name(p["name"]) for p in listed
                        if isinstance(p, dict) and isinstance(p.get("name"), str)})
        if projects is not None:
            names = [n for n in names if n in projects]
        with ThreadPoolExecutor(_WORKERS) as pool:
            pages = list(pool.map(self._project, names))
        return [f for page in pages for f in page]

    def _project(self, name: str) -> list[Listed]:
        url = urllib.parse.urljoin(self.root, urllib.parse.quote(name) + "/")
        files = _page(url).get("files")
        if not isinstance(files, list):
            raise FetchError(f"{url}: not a PEP 691 project page (no files)", hint=_NOT_AN_INDEX)
        return [listed for f in files if (listed := self._listed(f, url)) is not None]

    def _listed(self, entry: object, page: str) -> Listed | None:
        if not isinstance(entry, dict):
            return None
        filename, href, hashes = entry.get("filename"), entry.get("url"), entry.get("hashes")
        if not isinstance(filename, str) or not isinstance(href, str):
            return None
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        digest = sha256.lower() if isinstance(sha256, str) else ""
        url = urllib.parse.urldefrag(urllib.parse.urljoin(page, href)).url
        kiln = entry.get("_kiln")
        if not isinstance(kiln, dict):
            return Listed(self.name, filename, digest, url, upstream=True)
        record = kiln.get("record")
        if isinstance(record, str):
            record_url: str | None = urllib.parse.urljoin(page, record)
        elif "record" in kiln:
            record_url = None  # the index says it publishes none
        else:  # an index from before records were named: they are served beside the wheel
            record_url = url + RECORD_SUFFIX
        return Listed(self.name, filename, digest, url, builders=_builders(kiln.get("builders")),
                      record_url=record_url, uploaded=_time(entry.get("upload-time")))

    def record(self, listed: Listed) -> RecordLookup:
        url = listed.record_url
        if listed.upstream or url is None:
            return RecordLookup()
        if url.startswith("file:"):
            return _record_file(_path_of(url), listed.sha256)
        try:
            data = http.get_bytes(url, what="the wheel's build record")
        except FetchError as exc:
            cause = exc.__cause__
            if isinstance(cause, urllib.error.HTTPError) and cause.code in (404, 410):
                return RecordLookup()
            return RecordLookup(where=url, problem=f"cannot be fetched: {exc.message}")
        return _parse_record(data, url, listed.sha256)


class WheelhouseSource:
    """A folder of wheels, with their build records beside them."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise UsageError(f"--wheelhouse {folder}: not a folder",
                             hint="give the folder `kiln build -o` wrote")
        self.folder = folder
        self.name = str(folder)

    def files(self, projects: frozenset[str] | None) -> list[Listed]:
        found = []
        for wheel in sorted(self.folder.glob("*.whl")):
            if wheel.name.startswith(".") or not wheel.is_file():
                continue  # a dot: a writer at work
            if projects is not None and _project_of(wheel.name) not in projects:
                continue
            found.append(Listed(self.name, wheel.name, sha256_file(wheel),
                                wheel.absolute().as_uri()))
        return found

    def record(self, listed: Listed) -> RecordLookup:
        return _record_file(self.folder / (listed.filename + RECORD_SUFFIX), listed.sha256)


def open_sources(locations: Sequence[str], wheelhouse: Path | None = None) -> list[Source]:
    """The sources to compare: indexes by URL or folder, then the wheelhouse."""
    sources: list[Source] = [IndexSource(location) for location in locations]
    if wheelhouse is not None:
        sources.append(WheelhouseSource(wheelhouse))
    if len(sources) < 2:
        raise UsageError(f"{len(sources)} source(s) given: a challenge compares two or more",
                         hint="give two index URLs, or one and --wheelhouse DIR")
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{twice[0]}: given twice", hint="give each source once")
    return sources


def challenge(sources: Sequence[Source], projects: Sequence[str] = ()) -> ChallengeReport:
    """What each source serves under each filename: agreements, differences (with the inputs
    their build records name), and files only one source has."""
    wanted = frozenset(canonicalize_name(p) for p in projects) or None
    report = ChallengeReport(sources=[s.name for s in sources])
    by_filename: dict[str, list[Listed]] = {}
    for source in sources:
        reporter().stage("read", source.name)
        seen = set()
        for listed in source.files(wanted):
            if listed.filename in seen:
                continue  # listed twice by one source: the first listing counts
            seen.add(listed.filename)
            if not listed.sha256:
                report.notes.append(f"{listed.filename} on {source.name}: no sha256 given, "
                                    "not compared")
                continue
            by_filename.setdefault(listed.filename, []).append(listed)
    by_name = {s.name: s for s in sources}
    for filename in sorted(by_filename):
        files = by_filename[filename]
        if len(files) == 1:
            if not files[0].upstream:
                report.only.append(files[0])
        elif len({x.sha256 for x in files}) == 1:
            report.agree.append(Agreement(filename, files[0].sha256,
                                          tuple(x.source for x in files),
                                          all(x.upstream for x in files)))
        else:
            reporter().stage("records", filename)
            sides = tuple(Side(x, by_name[x.source].record(x)) for x in files)
            report.differ.append(_difference(filename, sides))
    return report


def _difference(filename: str, sides: tuple[Side, ...]) -> Difference:
    """The inputs of the first two sides that have records of different bytes, compared."""
    recorded = [s for s in sides if s.record.record is not None]
    if not recorded:
        return Difference(filename, sides, None, ())
    first = recorded[0]
    second = next((s for s in recorded if s.listed.sha256 != first.listed.sha256), None)
    if second is None:
        return Difference(filename, sides, None, ())
    ours, theirs = first.record.record, second.record.record
    assert ours is not None and theirs is not None
    inputs = compare_inputs(inputs_from_record(ours), inputs_from_record(theirs),
                            hermetic=ours.hermetic and theirs.hermetic)
    return Difference(filename, sides, (first.listed.source, second.listed.source),
                      tuple(inputs))


def _root_url(location: str) -> str:
    if location.startswith(("http://", "https://")):
        return location if location.endswith("/") else location + "/"
    if location.startswith("file:"):
        folder = _path_of(location)
    elif "://" in location:
        raise UsageError(f"{location}: not an http(s):// or file:// URL, nor a folder",
                         hint=_NOT_AN_INDEX)
    else:
        folder = Path(location)
    if (folder / "simple").is_dir():
        folder = folder / "simple"  # the folder `kiln index -o` wrote
    if not folder.is_dir():
        raise FetchError(f"{location}: no such folder", hint=_NOT_AN_INDEX)
    return folder.absolute().as_uri() + "/"


def _path_of(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def _page(url: str) -> dict[str, Any]:
    """A PEP 691 JSON page: asked for by media type, or read from a local index's folder."""
    if url.startswith("file:"):
        folder = _path_of(url)
        page = next((folder / n for n in _PAGE_FILES if (folder / n).is_file()), None)
        if page is None:
            raise FetchError(f"{url}: not a PEP 691 index (no {' or '.join(_PAGE_FILES)} "
                             "there)", hint=_NOT_AN_INDEX)
        try:
            data = page.read_bytes()
        except OSError as exc:
            raise FetchError(f"{page}: cannot be read ({exc.strerror or exc})",
                             hint=_NOT_AN_INDEX) from exc
    else:
        try:
            data = http.get_bytes(url, accept=JSON_TYPE, what="reading the index")
        except FetchError as exc:
            raise FetchError(exc.message, hint=_UNREACHABLE) from exc
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise FetchError(f"{url}: not a PEP 691 index (its answer to {JSON_TYPE} is not JSON)",
                         hint=_NOT_AN_INDEX) from exc
    if not isinstance(document, dict):
        raise FetchError(f"{url}: not a PEP 691 index (its JSON is not an object)",
                         hint=_NOT_AN_INDEX)
    return document


def _time(value: object) -> datetime | None:
    """A PEP 700 upload-time (``2024-01-01T00:00:00.000000Z``); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def _builders(value: object) -> tuple[Builder, ...] | None:
    if not isinstance(value, list):
        return None
    found = []
    for item in value:
        if isinstance(item, dict):
            signer, verified = item.get("signer"), item.get("verified")
            found.append(Builder(builder=str(item.get("builder") or ""),
                                 signer=signer if isinstance(signer, str) else None,
                                 verified=verified if isinstance(verified, bool) else None))
    return tuple(found)


def _project_of(filename: str) -> str:
    try:
        return str(parse_wheel_filename(filename)[0])
    except InvalidWheelFilename:
        return canonicalize_name(filename.split("-", 1)[0])


def _record_file(path: Path, sha256: str) -> RecordLookup:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return RecordLookup()
    except OSError as exc:
        return RecordLookup(where=str(path), problem=f"cannot be read ({exc.strerror or exc})")
    return _parse_record(data, str(path), sha256)


def _parse_record(data: bytes, where: str, sha256: str) -> RecordLookup:
    try:
        raw = json.loads(data)
    except ValueError:
        return RecordLookup(where=where, problem="not JSON")
    try:
        record = BuildRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(x) for x in first["loc"]) or "the top"
        return RecordLookup(where=where, problem=f"not a build record this kiln reads "
                                                 f"({at}: {first['msg']})")
    named = raw.get("builder")  # a newer record may name who built it
    builder = named if isinstance(named, str) and named else f"host {record.host}"
    return RecordLookup(where=where, record=record, builder=builder,
                        other_bytes=sha256 not in {o.sha256 for o in record.outputs})

"""``kiln index``: a wheelhouse in, a static PEP 503/691 index out, incrementally.

A run lists the wheelhouse (one ``stat`` per wheel and per sidecar), compares it with
the state of the last run, reads only new or changed wheels, rewrites only the pages
of the projects they belong to, and swaps in a new generation (see ``tree.py``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import IndexBuildError
from kiln.index import render
from kiln.index.model import IndexReport, ProjectUpstream, Rejected, WheelEntry
from kiln.index.provenance import BadAttestation, provenance_for
from kiln.index.state import SCHEMA_VERSION, IndexState, WheelStat
from kiln.index.tree import SLOTS, OutputTree
from kiln.index.upstream import digest, fetch_all
from kiln.index.wheels import (
    RecordFacts,
    ToRead,
    plain_path,
    read_build_record,
    read_wheels,
)
from kiln.progress import reporter

if TYPE_CHECKING:
    from kiln.quorum import Anchor

RECORD_SUFFIX = ".build.json"
ATTESTATION_SUFFIX = ".publish.attestation"


@dataclass
class _Listing:
    """The wheelhouse as one ``stat`` per file: wheels and their sidecars.

    ``files`` maps each name to ``"size:mtime_ns"``: a string, because it is only ever
    compared, and strings store and load fast (``IndexState.listing``).
    """

    files: dict[str, str]
    wheels: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.wheels = {n for n in self.files if n.endswith(".whl")}

    def size_mtime(self, wheel: str) -> tuple[int, int]:
        size, mtime = self.files[wheel].split(":")
        return int(size), int(mtime)

    def stat(self, name: str) -> WheelStat:
        """What the state compares: the wheel's and its sidecars' sizes and times."""
        size, mtime = self.size_mtime(name)
        return WheelStat(size, mtime, self.files.get(name + RECORD_SUFFIX, ""),
                         self.files.get(name + ATTESTATION_SUFFIX, ""))


def _list(wheelhouse: Path) -> _Listing:
    files: dict[str, str] = {}
    with os.scandir(wheelhouse) as entries:
        for entry in entries:
            name = entry.name
            if name[0] == "." or not name.endswith(_SUFFIXES):  # dot: writers at work
                continue
            if entry.is_file():
                st = entry.stat()
                files[name] = f"{st.st_size}:{st.st_mtime_ns}"
    return _Listing(files)


_SUFFIXES = (".whl", RECORD_SUFFIX, ATTESTATION_SUFFIX)


def _wheel_of(name: str) -> str:
    for suffix in (RECORD_SUFFIX, ATTESTATION_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _upload_time(mtime_ns: int) -> str:
    seconds, nanoseconds = divmod(mtime_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        f".{nanoseconds // 1000:06d}Z"


@dataclass(frozen=True)
class Trust:
    """Whom the index trusts (``--key``, ``--identity``): each wheel's builders are shown, and
    with ``needed`` a wheel without that many of them, or with one that signed other bytes,
    is left out."""

    anchors: tuple[Anchor, ...]
    needed: int | None = None
    audit_repo: Path | None = None
    offline: bool = False
    branches: tuple[str, ...] = ()  # the audit branches to read; () the default one


def vouch(wheelhouse: Path, names: set[str], trust: Trust) -> tuple[dict[str, str],
                                                                     dict[str, str]]:
    """(filename -> builders as JSON, filename -> why it is left out) for ``names``."""
    from kiln.errors import KilnError
    from kiln.quorum import check_quorum

    builders, excluded = {}, {}
    for name in sorted(names):
        try:
            result = check_quorum(wheelhouse / name, trust.anchors, trust.needed or 1,
                                  offline=trust.offline, audit_repo=trust.audit_repo,
                                  branches=trust.branches)
        except KilnError as exc:
            builders[name] = "[]"
            if trust.needed:
                excluded[name] = f"no quorum: {exc.message}"
            continue
        builders[name] = json.dumps([{"signer": v.signer, "builder": v.builder}
                                     for v in result.agree], separators=(",", ":"))
        problem = result.problem()
        if problem is not None and (trust.needed or result.disagree):
            excluded[name] = problem.message.removeprefix(f"{name}: ")
    return builders, excluded


def build_index(wheelhouse: Path, output: Path, *, upstream: str | None = None,
                base_url: str | None = None, full: bool = False,
                trust: Trust | None = None) -> IndexReport:
    """Write or update the index of ``wheelhouse`` in ``output``; report what changed."""
    if not wheelhouse.is_dir():
        raise IndexBuildError(f"{wheelhouse}: not a folder", hint="give the wheelhouse "
                              "folder that `kiln build -o` wrote")
    tree = OutputTree(output)
    with tree.locked():
        state = IndexState(tree.state_path)
        try:
            return _Run(wheelhouse, tree, state, upstream, base_url, full, trust).run()
        finally:
            state.close()


class _Run:
    def __init__(self, wheelhouse: Path, tree: OutputTree, state: IndexState,
                 upstream: str | None, base_url: str | None, full: bool,
                 trust: Trust | None = None) -> None:
        self.wheelhouse, self.tree, self.state, self.trust = wheelhouse, tree, state, trust
        self.upstream, self.full = upstream, full
        self.links = render.Links(base_url)
        self.settings = json.dumps({"base_url": base_url, "upstream": upstream})
        self.generation = int(state.get("generation") or 0)
        self.report = IndexReport(output=str(tree.root), generation=self.generation)
        self.garbage: list[str] = []
        self.claims: dict[str, str] = {}  # path -> sha256 of what this run put there
        self.updated: dict[str, WheelEntry] = {}  # rows to write
        self.affected: set[str] = set()  # projects whose pages change

    def run(self) -> IndexReport:
        started = time.monotonic()
        report, state = self.report, self.state
        listing = _list(self.wheelhouse)
        builders: dict[str, str] = {}
        left_out: list[Rejected] = []
        if self.trust is not None:
            # Checked on every run: signatures on the audit branch come and go without the
            # wheelhouse changing. A wheel left out is as if absent (so it returns when its
            # quorum is met), and is reported, not remembered as unreadable.
            reporter().stage("index", f"checking the builders of {len(listing.wheels):,} "
                                      "wheel(s)")
            builders, excluded = vouch(self.wheelhouse, listing.wheels, self.trust)
            for name, reason in excluded.items():
                size, mtime = listing.size_mtime(name)
                left_out.append(Rejected(name, reason, size, mtime))
            listing = _Listing({n: sig for n, sig in listing.files.items()
                                if _wheel_of(n) not in excluded})
        # The last run's listing says which files changed since: only their wheels are
        # looked at. Without it (a first run, --full, an interrupted run) every wheel is.
        before = None if self.full else state.listing()
        if before is not None:
            names = {_wheel_of(n) for n, _ in listing.files.items() ^ before.items()}
            known = state.wheel_stats(names)
        else:
            known = state.wheel_stats()
            names = listing.wheels | known.keys()
        rejected_before = state.rejected()
        rejected = [r for name, r in rejected_before.items() if name not in names]
        to_read: list[str] = []
        for filename in sorted(names & listing.wheels):
            size, mtime = listing.size_mtime(filename)
            old = known.get(filename)
            if old is not None and not self.full and (old.size, old.mtime_ns) == (size, mtime):
                now = listing.stat(filename)
                if now != old:  # the build record or the attestation changed
                    entry = self._sidecars(state.wheel(filename), now.record_sig,
                                           now.attestation_sig)
                    self._update(entry)
                    report.changed.append(filename)
                continue
            was = rejected_before.get(filename)
            if was is not None and not self.full and (was.size, was.mtime_ns) == (size, mtime):
                rejected.append(was)
                continue
            to_read.append(filename)
        with state.transaction():
            rejected += self._read(to_read, listing, known)
            self._builders(listing, builders)
            gone = sorted(known.keys() - listing.wheels - self.updated.keys()
                          | {r.filename for r in rejected if r.filename in known})
            for filename in gone:
                dropped = state.wheel(filename)
                report.removed.append(filename)
                self.affected.add(dropped.project)
                self.garbage += _published(dropped)
            state.put_wheels(self.updated.values())
            state.drop_wheels(gone)
            report.rejected = sorted(rejected, key=lambda r: r.filename)
            if {r.filename: r for r in rejected} != rejected_before:
                state.set_rejected(report.rejected)
            report.wheels = len(listing.wheels) - len(rejected)
            self._write()
            if before != listing.files:
                state.set_listing(listing.files)
        report.rejected = sorted(report.rejected + left_out, key=lambda r: r.filename)
        report.seconds = time.monotonic() - started
        return report

    def _builders(self, listing: _Listing, builders: dict[str, str]) -> None:
        """Put each wheel's builders on its entry where they changed (cleared without trust)."""
        stored = self.state.builders()
        for filename in sorted(listing.wheels):
            entry = self.updated.get(filename)
            current = entry.builders if entry is not None else stored.get(filename)
            if current is None:
                continue  # unreadable: not in the index
            new = builders.get(filename, "")
            if current != new:
                self._update((entry or self.state.wheel(filename))._replace(builders=new))

    def _update(self, entry: WheelEntry) -> None:
        self.updated[entry.filename] = entry
        self.affected.add(entry.project)

    def _read(self, to_read: list[str], listing: _Listing,
              known: dict[str, WheelStat]) -> list[Rejected]:
        """Read new and changed wheels and put their copies in place; return the bad ones."""
        if not to_read:
            return []
        report, state = self.report, self.state
        reporter().stage("index", f"reading {len(to_read):,} wheel(s)")
        # what each plain path already holds: one query for many wheels, a lookup for a few
        if len(to_read) > 1000:
            paths = state.paths()
        else:
            paths = {path: digest for path in map(plain_path, to_read)
                     if (digest := state.path_digest(path)) is not None}
        items = [ToRead(self.wheelhouse, name, listing.size_mtime(name)[0],
                        name + RECORD_SUFFIX in listing.files, self.tree.root,
                        paths.get(plain_path(name)))
                 for name in to_read]
        rejected = []
        for read in read_wheels(items):
            filename, facts = read.filename, read.facts
            size, mtime = listing.size_mtime(filename)
            if facts is None:
                rejected.append(Rejected(filename, read.problem or "unreadable",
                                         size, mtime))
                continue
            old = state.wheel(filename) if filename in known else None
            path = read.path  # the reader published the copy (wheels.py, _publish)
            self.claims[path] = facts.sha256
            same = old is not None and old.sha256 == facts.sha256
            entry = WheelEntry(
                filename=filename, project=facts.project, version=facts.version,
                size=facts.size, mtime_ns=mtime, sha256=facts.sha256,
                requires_python=facts.requires_python, metadata_sha256=facts.metadata_sha256,
                upload_time=old.upload_time if old and same else _upload_time(mtime),
                path=path)
            now = listing.stat(filename)
            entry = self._sidecars(entry, now.record_sig, now.attestation_sig, fresh=True,
                                   record=read.record)
            self._update(entry)
            if old is None:
                report.added.append(filename)
                continue
            self.affected.add(old.project)
            if not same or old.path != path:
                report.changed.append(filename)
            if old.path != path:
                self.garbage += _published(old)
        return rejected

    def _sidecars(self, entry: WheelEntry, record_sig: str, attestation_sig: str,
                  fresh: bool = False, record: RecordFacts | None = None) -> WheelEntry:
        """Read the build record and attestation beside a wheel when they changed."""
        if fresh or record_sig != entry.record_sig:
            reproducible, build_id, hermetic, published, tests = None, None, None, False, ""
            if record_sig:
                source = self.wheelhouse / (entry.filename + RECORD_SUFFIX)
                facts = record or read_build_record(source, entry.sha256)
                reproducible, build_id, hermetic, tests = (facts.reproducible, facts.build_id,
                                                           facts.hermetic, facts.tests)
                if facts.warning:
                    self.report.warnings.append(facts.warning)
                else:
                    # Served beside the wheel, so that anyone can rebuild it from the index
                    # alone (`kiln rebuild URL`) and compare records (`kiln challenge`).
                    try:
                        self.tree.replace_file(entry.path + RECORD_SUFFIX, source.read_bytes())
                        published = True
                    except OSError as exc:
                        self.report.warnings.append(f"{source.name}: cannot be published "
                                                    f"({exc.strerror})")
            if entry.record_file and not published:
                self.garbage.append(entry.path + RECORD_SUFFIX)
            entry = entry._replace(reproducible=reproducible, build_id=build_id,
                                   record_sig=record_sig, hermetic=hermetic,
                                   record_file=published, tests=tests)
        if fresh or attestation_sig != entry.attestation_sig:
            provenance = False
            name = entry.filename + ATTESTATION_SUFFIX
            if attestation_sig:
                try:
                    made = provenance_for(self.wheelhouse / name, entry.filename, entry.sha256)
                    self.tree.replace_file(entry.path + ".provenance", made.body)
                    provenance = True
                except BadAttestation as exc:
                    self.report.warnings.append(f"{name}: {exc}; the wheel is served "
                                                "without provenance")
            if entry.provenance and not provenance:
                self.garbage.append(entry.path + ".provenance")
            entry = entry._replace(provenance=provenance, attestation_sig=attestation_sig)
        return entry

    def _write(self) -> None:
        """Write the pages that changed and swap in a new generation, if anything changed."""
        report, state, tree = self.report, self.state, self.tree
        projects = state.projects()
        report.projects = len(projects)
        settings_changed = state.get("settings") != self.settings
        upstream = self._upstream(projects, self.affected, settings_changed)
        report.upstream_files = sum(len(u.files) for u in upstream.values())
        pages = state.pages()
        affected = set(projects) if settings_changed or self.full else self.affected
        to_render = (affected & projects) | (projects - pages.keys())
        if self.full:  # also repair page folders deleted by hand
            to_render |= {p for p in projects & pages.keys()
                          if not (tree.root / pages[p]).is_dir()}
        gone = pages.keys() - projects
        if not to_render and not gone and self.generation and tree.simple.exists():
            report.up_to_date = True
            self._save({})
            return
        written: dict[str, str] = {}
        for project, entries in state.wheels_of(to_render).items():
            body = render.project_json(project, render.sorted_entries(entries),
                                       upstream.get(project), self.links)
            folder = tree.write_pages(project, render.project_html(body), body)
            if pages.get(project, folder) != folder:
                self.garbage.append(pages[project])
            if pages.get(project) != folder:
                written[project] = pages[project] = folder
            report.projects_rewritten += 1
        for project in gone:
            self.garbage.append(pages.pop(project))
        new = self.generation + 1
        root_html, root_json = render.root_html(projects), render.root_json(projects)
        current = tree.current_slot()
        slot = 1 if current is None else (current + 1) % SLOTS
        # the first time, every slot is filled, so later runs only ever replace what changed
        for fill in [slot] if current is not None else range(SLOTS):
            holds = None if self.full else state.slot(fill)  # --full: write it all
            tree.write_slot(fill, pages, holds, root_html, root_json)
            state.set_slot(fill, pages, holds)
        self._save(written)
        state.drop_pages(gone)
        state.add_garbage(self.garbage, new)
        state.put("generation", str(new))
        tree.swap(slot)
        report.generation = new
        # The two generations before this one stay whole for readers still at work; what
        # only older ones used goes now (the slot just written held the oldest).
        for rel in state.take_garbage(new - 2):
            tree.delete(rel)

    def _save(self, written: dict[str, str]) -> None:
        state = self.state
        state.claim_paths(self.claims)
        state.keep(written.values())
        state.put_pages(written)
        if state.get("settings") != self.settings:
            state.put("settings", self.settings)
            state.put("schema", SCHEMA_VERSION)

    def _upstream(self, projects: set[str], affected: set[str],
                  settings_changed: bool) -> dict[str, ProjectUpstream]:
        state = self.state
        if not self.upstream:
            if settings_changed:
                state.clear_upstream()
            return {}
        known = {} if settings_changed else state.upstream()
        reporter().stage("upstream", f"{len(projects):,} project(s) from {self.upstream}")
        result: dict[str, ProjectUpstream] = {}
        for fetched in fetch_all(self.upstream, projects, known, self.tree.root):
            project = fetched.project
            if fetched.error is not None:
                self.report.warnings.append(f"upstream: {fetched.error}; keeping the links "
                                            "it gave last time")
                if project in known:
                    result[project] = known[project]
                continue
            if fetched.value is not None:
                result[project] = fetched.value
                if not fetched.unchanged:
                    state.put_upstream(project, fetched.value)
            elif project in known:
                state.drop_upstream(project)
            if digest(fetched.value) != digest(known.get(project)):
                affected.add(project)
        return result


def _published(entry: WheelEntry) -> list[str]:
    files = [entry.path, entry.path + ".metadata"]
    if entry.record_file:
        files.append(entry.path + RECORD_SUFFIX)
    return [*files, entry.path + ".provenance"] if entry.provenance else files


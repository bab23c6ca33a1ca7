"""Compare two builds of one wheel, member by member, and say why they differ.

Each difference gets a class (zip metadata, embedded build path, timestamp in content,
hash-seed ordering, random temporary name, other) and a suggestion a maintainer can act
on. The report is a model that refuses unknown keys, written as JSON beside the wheel.
"""

from __future__ import annotations

import difflib
import io
import re
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kiln import proc
from kiln.buildenv import Surroundings
from kiln.explain import InputDifference
from kiln.files import Artifact, write_atomic
from kiln.record import BuildRecord, FileRef

REPORT_KIND = "https://kiln.dev/repro-report/v1"

Cause = Literal["zip-metadata", "build-path", "host-path", "timestamp", "hash-order", "temp-name",
                "bytecode", "other", "consequence"]

CAUSE_TITLES: dict[str, str] = {
    "zip-metadata": "zip metadata",
    "build-path": "embedded build path",
    "host-path": "a host's own folder",
    "timestamp": "timestamp in content",
    "hash-order": "hash-seed ordering",
    "temp-name": "random temporary name",
    "bytecode": "compiled bytecode (.pyc)",
    "other": "other",
    "consequence": "follows from another difference",
}

SUGGESTIONS: dict[str, str] = {
    "zip-metadata": "the archive's timestamps, modes or order differ: kiln canonicalises zips "
                    "after repair, so check that nothing rewrites the wheel afterwards",
    "build-path": "the build writes its own folder into the file: make the path relative "
                  "(or use __FILE__, which kiln's -ffile-prefix-map fixes); if the package "
                  "cannot, [repro] skip-variations = [\"build_path\"] trusts kiln's fixed path",
    "host-path": "a folder of the machine that built it (an interpreter's include folder, a "
                 "compiler's own files, a home folder) reached the file, so every machine "
                 "gives other bytes: the hermetic backend compiles against kiln's pinned "
                 "CPython headers and toolchain at fixed paths under /kiln; a host-backend "
                 "build carries the host's paths",
    "timestamp": "the build writes the current time: make it honour SOURCE_DATE_EPOCH "
                 "(kiln sets it from the sdist), e.g. via [build] environment, or patch upstream",
    "hash-order": "output follows set or dict iteration order: sort it upstream; kiln pins "
                  "PYTHONHASHSEED=0, so [repro] skip-variations = [\"hash_seed\"] accepts it",
    "temp-name": "a temporary folder's random name reaches the output (a build backend that "
                 "compiles in a copy under /tmp, or a code generator): fix it upstream; if it "
                 "only reaches debug info, [build] environment = { CPPFLAGS = \"-g0\" } drops "
                 "that (CPPFLAGS, since CFLAGS would replace Python's own flags)",
    "bytecode": "the wheel ships .pyc files, and marshal's bytes follow the hash seed (set "
                "constants) and can follow reference counts (bpo-34093): installers compile "
                "bytecode themselves, so stop the build from adding it (setup.cfg [build_py] "
                "compile/optimize); kiln pins PYTHONHASHSEED=0, so [repro] skip-variations = "
                "[\"hash_seed\"] accepts the hash-seed part, and expected = false the rest",
    "other": "inspect the unified diff or run with --diffoscope; if the package cannot be "
             "fixed, set [repro] expected = false with a reason",
    "consequence": "fix the other differences and this one goes away",
}

# When only debug info differs, the compiler wrote the path, not the package's own code:
# making a path "relative" does not apply.
DEBUG_INFO_SUGGESTIONS: dict[str, str] = {
    "build-path": "only debug info differs: the compiler wrote the build folder past kiln's "
                  "-ffile-prefix-map (the build compiles a copy elsewhere, or adds a map of "
                  "its own that kiln could not point at its build folder); the hermetic "
                  "backend rewrites such maps, so build with it, or drop the debug info with "
                  "[build] environment = { CPPFLAGS = \"-g0\" } (CPPFLAGS, since CFLAGS "
                  "would replace Python's own flags)",
    "temp-name": "only debug info differs: the compiler wrote a temporary folder's random "
                 "name past kiln's maps (kiln maps a temporary folder a compile names or runs "
                 "in; this one reached it another way, e.g. a generated file's #line): "
                 "[build] environment = { CPPFLAGS = \"-g0\" } drops the debug info",
}
_DEBUG_SECTION = re.compile(r"\.z?debug_")

# Builds run at /kiln; anything under /tmp is a temporary folder with a made-up name.
_TMP_NAME = re.compile(r"/tmp/[^\s\"']+|\btmp[A-Za-z0-9_]{6,}|pip-[a-z0-9_-]*-[a-z0-9_]{8}|"
                       r"/var/folders/[^\s\"']+")
_TIMESTAMP = re.compile(
    r"\b(?:19|20)\d\d-[01]\d-[0-3]\d|\b[0-2]\d:[0-5]\d:[0-5]\d\b|"
    r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-3]\d (?:19|20)\d\d\b|"
    r"\b1[5-9]\d{8}(?:\.\d+)?\b"
)
_GENERIC_BUILD_PATH = re.compile(r"/kiln(?:-rebuild)?/|/build-[a-z0-9_]{8}/")
_PATHLIKE = re.compile(r"/[\w.+-]+(?:/[\w.+-]+)+/?")
# Folders of a machine, not of a build: where interpreters, compilers and users live.
_HOST_PATH = re.compile(r"(?<![\w.-])/(?:usr|opt|root|home|nix/store|Users|Library|private|"
                        r"snap|gnu/store)/[^\s\"']+")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Difference(Model):
    member: str  # "" for the archive as a whole
    aspect: Literal["zip-metadata", "content", "elf", "text", "record", "only-in-first",
                    "only-in-second", "name"]
    cause: Cause
    detail: str
    sections: list[str] = Field(default_factory=list)
    diff: str = ""
    suggestion: str = ""

    @property
    def cause_title(self) -> str:
        return CAUSE_TITLES[self.cause]


class ReproReport(Model):
    kind: Literal["https://kiln.dev/repro-report/v1"] = "https://kiln.dev/repro-report/v1"
    wheel: str
    first: FileRef
    second: FileRef
    reproducible: bool
    variations: list[str]
    skipped: dict[str, str]
    normalisation: list[str]
    differences: list[Difference]
    diffoscope: str | None = None
    # kiln repro --against: the inputs of the two builds that differ, from the other build's
    # record (where it was found), listed before the members.
    inputs: list[InputDifference] = Field(default_factory=list)
    their_record: str | None = None

    def summary(self) -> str:
        if self.reproducible:
            return "identical"
        causes = sorted({d.cause_title for d in self.differences if d.cause != "consequence"})
        members = sorted({d.member for d in self.differences if d.member and
                          d.cause != "consequence"})
        shown = ", ".join(members[:3]) + (" …" if len(members) > 3 else "")
        return f"{len(members)} member(s) differ ({shown}): {', '.join(causes) or 'other'}"

    def suggestions(self) -> list[str]:
        seen: list[str] = []
        for diff in self.differences:
            if diff.cause != "consequence" and diff.suggestion not in seen:
                seen.append(diff.suggestion)
        return seen


NORMALISATION = [
    "SOURCE_DATE_EPOCH from the newest file in the sdist",
    "-ffile-prefix-map / --remap-path-prefix to /kiln/src and /kiln/env",
    "fixed paths under /kiln (bubblewrap)",
    "TZ=UTC, LC_ALL=C.UTF-8, PYTHONHASHSEED=0, umask 022, fixed HOME",
    "zip canonicalised after repair: sorted entries, RECORD last, one timestamp, modes 644/755",
]


def compare_wheels(
    first: Path,
    second: Path,
    *,
    surroundings: BuildRecord | None = None,
    variations: Surroundings | None = None,
    path_hints: Iterable[str] = (),
    first_record: BuildRecord | None = None,
) -> ReproReport:
    """Compare two wheels; when they differ, name every differing member and the likely cause."""
    a, b = Artifact.of(first), Artifact.of(second)
    hints = set(path_hints)
    for record in (surroundings, first_record):
        if record is not None:
            hints.update(k for k in record.normalisation.prefix_maps if k)
    differences: list[Difference] = []
    if a.sha256 != b.sha256:
        if first.name != second.name:
            differences.append(Difference(member="", aspect="name", cause="other",
                                          detail=f"file names differ: {first.name} vs "
                                                 f"{second.name}",
                                          suggestion="the builds reached different tags: "
                                                     "compare their build records"))
        differences.extend(_compare_archives(first, second, sorted(hints, key=len, reverse=True)))
        if not differences:
            differences.append(Difference(member="", aspect="zip-metadata", cause="zip-metadata",
                                          detail="same members and bytes, different archive "
                                                 "bytes (compression or extra fields)",
                                          suggestion=SUGGESTIONS["zip-metadata"]))
    return ReproReport(
        wheel=first.name,
        first=FileRef(name=a.name, sha256=a.sha256, size=a.size),
        second=FileRef(name=b.name, sha256=b.sha256, size=b.size),
        reproducible=a.sha256 == b.sha256,
        variations=list(variations.applied) if variations else [],
        skipped=dict(variations.skipped) if variations else {},
        normalisation=NORMALISATION,
        differences=differences,
    )


def _compare_archives(first: Path, second: Path, hints: list[str]) -> list[Difference]:
    out: list[Difference] = []
    with zipfile.ZipFile(first) as za, zipfile.ZipFile(second) as zb:
        names_a = [i.filename for i in za.infolist()]
        names_b = [i.filename for i in zb.infolist()]
        only_a = [n for n in names_a if n not in set(names_b)]
        only_b = [n for n in names_b if n not in set(names_a)]
        for name in only_a:
            out.append(_only(name, "only-in-first", hints))
        for name in only_b:
            out.append(_only(name, "only-in-second", hints))
        common = [n for n in names_a if n in set(names_b)]
        if [n for n in names_a if n in common] != [n for n in names_b if n in common]:
            out.append(Difference(member="", aspect="zip-metadata", cause="zip-metadata",
                                  detail="members are stored in a different order",
                                  suggestion=SUGGESTIONS["zip-metadata"]))
        record_names = [n for n in common if n.endswith(".dist-info/RECORD")]
        changed: list[str] = []
        for name in common:
            ia, ib = za.getinfo(name), zb.getinfo(name)
            meta = _zip_meta_diff(ia, ib)
            if meta:
                out.append(Difference(member=name, aspect="zip-metadata", cause="zip-metadata",
                                      detail=meta, suggestion=SUGGESTIONS["zip-metadata"]))
            if name in record_names:
                continue
            if ia.CRC == ib.CRC and ia.file_size == ib.file_size:
                continue
            data_a, data_b = za.read(name), zb.read(name)
            if data_a == data_b:
                continue
            changed.append(name)
            out.append(_content_diff(name, data_a, data_b, hints))
        for name in record_names:
            data_a, data_b = za.read(name), zb.read(name)
            if data_a != data_b:
                out.append(_record_diff(name, data_a, data_b, changed))
    return out


def _only(name: str, aspect: Literal["only-in-first", "only-in-second"],
          hints: list[str]) -> Difference:
    cause: Cause = "temp-name" if _TMP_NAME.search(name) else "other"
    if any(h and h.strip("/") in name for h in hints):
        cause = "build-path"
    where = "first" if aspect == "only-in-first" else "second"
    return Difference(member=name, aspect=aspect, cause=cause,
                      detail=f"only in the {where} wheel", suggestion=SUGGESTIONS[cause])


def _zip_meta_diff(ia: zipfile.ZipInfo, ib: zipfile.ZipInfo) -> str:
    parts = []
    if ia.date_time != ib.date_time:
        parts.append(f"timestamp {_fmt_time(ia.date_time)} vs {_fmt_time(ib.date_time)}")
    mode_a, mode_b = ia.external_attr >> 16, ib.external_attr >> 16
    if mode_a != mode_b:
        parts.append(f"mode {mode_a & 0o7777:04o} vs {mode_b & 0o7777:04o}")
    if ia.compress_type != ib.compress_type:
        parts.append(f"compression {ia.compress_type} vs {ib.compress_type}")
    return "; ".join(parts)


def _fmt_time(t: tuple[int, int, int, int, int, int]) -> str:
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*t)


def _classify(removed: list[str], added: list[str], hints: list[str]) -> Cause:
    """The likely cause of a content difference, from the strings that changed."""
    text_a, text_b = "\n".join(removed), "\n".join(added)
    both = text_a + "\n" + text_b
    if removed and added and sorted(text_a.replace("\n", "")) == sorted(text_b.replace("\n", "")):
        # Same characters, different order: an unordered collection printed in hash order.
        return "hash-order"
    if any(h and (h in text_a or h in text_b) for h in hints) or (
        _GENERIC_BUILD_PATH.search(text_a) and _GENERIC_BUILD_PATH.search(text_b)
        and not _TMP_NAME.search(both)
    ):
        return "build-path"
    if _HOST_PATH.search(both) and not _TMP_NAME.search(both):
        return "host-path"
    if _TMP_NAME.search(both):
        return "temp-name"
    if _TIMESTAMP.search(text_a) and _TIMESTAMP.search(text_b):
        return "timestamp"
    return "other"


def _strings(data: bytes, minimum: int = 4) -> list[str]:
    return [m.decode("ascii") for m in re.findall(rb"[\x20-\x7e]{%d,}" % minimum, data)]


def _content_diff(name: str, data_a: bytes, data_b: bytes, hints: list[str]) -> Difference:
    if data_a[:4] == b"\x7fELF" and data_b[:4] == b"\x7fELF":
        return _elf_diff(name, data_a, data_b, hints)
    try:
        text_a, text_b = data_a.decode("utf-8"), data_b.decode("utf-8")
    except UnicodeDecodeError:
        sa, sb = _strings(data_a), _strings(data_b)
        removed = [s for s in sa if s not in set(sb)]
        added = [s for s in sb if s not in set(sa)]
        cause = _classify(removed, added, hints)
        if name.endswith(".pyc") and cause in ("other", "hash-order"):
            cause = "bytecode"
        return Difference(member=name, aspect="content", cause=cause,
                          detail=f"binary content differs ({len(data_a)} vs {len(data_b)} bytes)",
                          diff=_string_diff(removed, added), suggestion=SUGGESTIONS[cause])
    lines_a, lines_b = text_a.splitlines(), text_b.splitlines()
    udiff = list(difflib.unified_diff(lines_a, lines_b, "first/" + name, "second/" + name,
                                      n=1, lineterm=""))
    removed = [line[1:] for line in udiff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in udiff if line.startswith("+") and not line.startswith("+++")]
    cause = _classify(removed, added, hints)
    shown = udiff[:24] + (["…"] if len(udiff) > 24 else [])
    return Difference(member=name, aspect="text", cause=cause,
                      detail=f"{len(removed)} line(s) differ", diff="\n".join(shown),
                      suggestion=SUGGESTIONS[cause])


def _string_diff(removed: list[str], added: list[str], limit: int = 6) -> str:
    lines = [f"- {s}" for s in removed[:limit]] + [f"+ {s}" for s in added[:limit]]
    return "\n".join(lines)


def _elf_sections(data: bytes) -> dict[str, bytes]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        return {s.name: s.data() for s in elf.iter_sections() if s.name and
                s.header["sh_type"] != "SHT_NOBITS"}
    except (ELFError, ValueError):
        return {}


def _elf_diff(name: str, data_a: bytes, data_b: bytes, hints: list[str]) -> Difference:
    sec_a, sec_b = _elf_sections(data_a), _elf_sections(data_b)
    differing = sorted(s for s in set(sec_a) | set(sec_b) if sec_a.get(s) != sec_b.get(s))
    # The build-id is a hash of everything else: it differs whenever anything does.
    meaningful = [s for s in differing if s != ".note.gnu.build-id"]
    removed: list[str] = []
    added: list[str] = []
    for section in meaningful:
        sa = _strings(sec_a.get(section, b""))
        sb = _strings(sec_b.get(section, b""))
        removed += [s for s in sa if s not in set(sb)]
        added += [s for s in sb if s not in set(sa)]
    cause = _classify(removed, added, hints)
    detail = (f"ELF sections differ: {', '.join(meaningful) or ', '.join(differing)}"
              if differing else "ELF bytes differ outside any section (headers or padding)")
    # A folder name, not a run of bytes that happens to hold a slash.
    paths = [s for s in removed + added if _PATHLIKE.fullmatch(s)]
    if cause in ("build-path", "host-path") and paths:
        detail += f"; embedded path {paths[0]!r}"
    suggestion = SUGGESTIONS[cause]
    if meaningful and all(_DEBUG_SECTION.match(s) for s in meaningful):
        suggestion = DEBUG_INFO_SUGGESTIONS.get(cause, suggestion)
    return Difference(member=name, aspect="elf", cause=cause, detail=detail, sections=differing,
                      diff=_string_diff(removed, added), suggestion=suggestion)


def _record_diff(name: str, data_a: bytes, data_b: bytes, changed: list[str]) -> Difference:
    def rows(data: bytes) -> dict[str, str]:
        text = data.decode("utf-8", "replace")
        return {line.split(",", 1)[0]: line for line in text.splitlines()}

    rows_a, rows_b = rows(data_a), rows(data_b)
    differing = sorted(k for k in set(rows_a) | set(rows_b) if rows_a.get(k) != rows_b.get(k))
    unexplained = [k for k in differing if k not in changed]
    if not unexplained:
        return Difference(member=name, aspect="record", cause="consequence",
                          detail=f"hash lines of {', '.join(differing)} differ (those members "
                                 "differ)", suggestion=SUGGESTIONS["consequence"])
    return Difference(member=name, aspect="record", cause="other",
                      detail=f"RECORD lines differ for {', '.join(unexplained)} although those "
                             "members are identical", suggestion=SUGGESTIONS["other"])


def write_report(report: ReproReport, path: Path, *, diffoscope: bool = False,
                 wheels: tuple[Path, Path] | None = None) -> ReproReport:
    """Write the report JSON (and diffoscope's HTML when asked and installed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if diffoscope and wheels and not report.reproducible:
        html = path.with_name(path.name.replace(".repro.json", ".diffoscope.html"))
        exe = shutil.which("diffoscope")
        if exe is None:
            report = report.model_copy(update={"diffoscope": "not installed (apt-get install "
                                                             "diffoscope-minimal)"})
        else:
            tmp = html.with_name(html.name + ".tmp")
            # diffoscope exits 1 when the files differ, which is the point here.
            proc.run([exe, "--html", tmp, wheels[0], wheels[1]], what="diffoscope",
                     check=False, timeout=1800)
            if tmp.exists():
                tmp.replace(html)
                report = report.model_copy(update={"diffoscope": html.name})
    write_atomic(path, report.model_dump_json(indent=2) + "\n")
    return report

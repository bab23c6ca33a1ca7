"""The build record: every input with its digest, every output with its name and digest.

It is written beside each wheel as ``<wheel>.build.json`` and is what provenance,
signing and the audit branch read. It refuses unknown keys, so a record from a newer
kiln, or an edited one, fails loudly instead of being half understood.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import KilnError
from kiln.files import write_atomic

RECORD_KIND = "https://kiln.dev/build-record/v1"
RECORD_SUFFIX = ".build.json"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(Model):
    name: str
    sha256: str
    size: int


class SourceRef(Model):
    url: str
    filename: str
    sha256: str
    size: int


class RecipeRef(Model):
    path: str
    sha256: str
    name: str
    version: str
    # The recipe file itself, so that `kiln rebuild` needs nothing but the record.
    text: str = ""


class LockRef(Model):
    path: str
    sha256: str
    text: str = ""  # the lock file itself, as for the recipe


class LockedRequirement(Model):
    name: str
    version: str
    hashes: list[str]
    marker: str = ""


class CrateRef(Model):
    """A Rust crate a Cargo.lock in the sdist pins, fetched by its checksum before the build."""

    name: str
    version: str
    checksum: str  # sha256 of the .crate file, as Cargo.lock gives it (and kiln checked)
    source: str  # Cargo.lock's source ("registry+https://github.com/rust-lang/crates.io-index")
    url: str  # where kiln fetched it from


class InterpreterRef(Model):
    version: str
    path: str
    sha256: str
    tag: str
    zlib: str = ""


class ToolRef(Model):
    name: str
    version: str
    path: str = ""
    sha256: str = ""


class LibraryRef(Model):
    """A C/C++ library the recipe declares, built by kiln from its pinned source."""

    name: str
    version: str
    source: str  # the URL it was fetched from
    filename: str
    sha256: str  # of the source archive
    debian: str = ""  # "libyaml 0.2.5-2 (trixie)" when it came through Debian's signed index
    build: str
    options: list[str] = Field(default_factory=list)
    link: str
    requires: list[str] = Field(default_factory=list)
    key: str  # its cache key: the digest of every input
    tree_sha256: str  # of what it installed, which the wheel's build saw
    cached: bool = False


class CPythonRef(Model):
    """The target CPython as kiln fixed it for a hermetic build (kiln.toolchain.cpython)."""

    minor: str
    headers_version: str  # the CPython release the pinned headers are from
    source: str  # "debian bookworm libpython3.11-dev 3.11.2-6+deb12u8"
    url: str
    deb_sha256: str
    headers_sha256: str  # the header tree the build saw at /kiln/python
    sysconfig: str  # the _PYTHON_SYSCONFIGDATA_NAME module
    sysconfig_sha256: str


class WheelRef(Model):
    filename: str
    sha256: str
    size: int
    python_tag: str
    abi_tag: str
    platform_tags: list[str]


class Normalisation(Model):
    source_date_epoch: int
    prefix_maps: dict[str, str]
    fixed_paths: bool
    zip_canonical: bool
    umask: str
    fixed_environment: dict[str, str]
    # ELF members whose zig builtin folder digests (random per zig process) were zeroed
    zig_builtin_paths: list[str] = Field(default_factory=list)


class SandboxRef(Model):
    tool: str
    network: str


class RepairRef(Model):
    tool: str
    policy: str
    grafted: list[str] = Field(default_factory=list)
    raw: FileRef


class TestCountsRef(Model):
    """How many tests a runner (pytest, unittest) reported, of all the commands together."""

    collected: int
    passed: int
    failed: int
    skipped: int
    first_failure: str = ""
    skip_reasons: list[str] = Field(default_factory=list)  # the first few, as pytest gave them


class TestRef(Model):
    ran: bool
    passed: bool | None
    commands: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    emulated: bool = False
    why_not: str = ""
    counts: TestCountsRef | None = None  # None: no command ran a runner kiln can count
    # [test] requires as locked (NAME.test.lock) and installed by hash, for this Python
    requirements: list[LockedRequirement] = Field(default_factory=list)
    lock_sha256: str = ""

    def summary(self) -> str:
        """For tables: ``passed (412)``, ``failed (3 of 412)``, ``passed (emulated)``,
        ``not run (why)``."""
        if not self.ran:
            return f"not run ({self.why_not})" if self.why_not else "not run"
        if self.counts is not None and self.counts.collected:
            c = self.counts
            if not self.passed or c.failed:
                said = f"failed ({c.failed} of {c.collected})"
            else:
                said = f"passed ({c.passed}" + (f", {c.skipped} skipped)" if c.skipped else ")")
        else:
            said = "passed" if self.passed else "failed"
        if self.emulated and self.passed:
            said = (said[:-1] + ", emulated)") if said.endswith(")") else said + " (emulated)"
        return said


class ReproRef(Model):
    """What the reproducibility check found (kiln.repro fills it)."""

    checked: bool
    reproducible: bool | None
    digests: list[str] = Field(default_factory=list)
    variations: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    expected: bool = True
    report: str | None = None
    against: str | None = None
    # What the rebuild ran with, where it differed from the build (the interpreter
    # variation), and whether its compiles were cold or hits on its own earlier compiles.
    rebuild_interpreter: str | None = None
    rebuild_compiles: str | None = None
    # Per applied variation, what the build and its rebuild observed (kiln.observe).
    observed: dict[str, list[str]] = Field(default_factory=dict)


class BuildRecord(Model):
    kind: Literal["https://kiln.dev/build-record/v1"] = "https://kiln.dev/build-record/v1"
    kiln_version: str
    build_id: str
    recipe: RecipeRef
    lock: LockRef | None
    source: SourceRef
    python: InterpreterRef
    target: str
    backend: str
    toolchain: list[ToolRef]
    build_requirements: list[LockedRequirement]
    system_packages: list[ToolRef] = Field(default_factory=list)
    libraries: list[LibraryRef] = Field(default_factory=list)
    # The Rust crates vendored for cargo (every registry crate of the sdist's Cargo.lock files).
    crates: list[CrateRef] = Field(default_factory=list)
    environment: dict[str, str]
    config_settings: dict[str, str | list[str]] = Field(default_factory=dict)
    normalisation: Normalisation
    sandbox: SandboxRef
    outputs: list[WheelRef]
    repair: RepairRef
    test: TestRef
    repro: ReproRef | None = None
    log: FileRef | None = None
    host: str
    started: datetime
    finished: datetime
    seconds: float
    stages: dict[str, float]
    cached: bool = False
    flake: str | None = None
    # Only pinned inputs reached the build (kiln's toolchain and CPython description, the
    # lock, the sdist), and the host's tools were hidden; when false, ``not_hermetic`` says
    # what of the host the wheel may depend on.
    hermetic: bool = False
    not_hermetic: list[str] = Field(default_factory=list)
    cpython: CPythonRef | None = None
    # What the build saw from inside its sandbox right before the backend ran (kiln.observe):
    # network, clock, umask, host name, time zone, locale, CPUs, HOME, build path …
    observed: dict[str, str] = Field(default_factory=dict)
    # How many compiles the build was allowed at once (kiln build -j): not an input, and
    # not in the build id; the same wheel comes out for any count.
    jobs: int | None = None

    @property
    def wheel(self) -> WheelRef:
        return self.outputs[0]


def record_path(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + RECORD_SUFFIX)


def write_record(record: BuildRecord, target: Path) -> None:
    write_atomic(target, record.model_dump_json(indent=2) + "\n")


def load_record(path: Path) -> BuildRecord:
    try:
        return BuildRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise KilnError(f"{path}: no build record", hint="build the wheel with `kiln build`, "
                        "which writes <wheel>.build.json beside it") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise KilnError(f"{path}: {where}: {first['msg']}",
                        hint="the record was edited or written by another kiln version") from exc


def dumps(record: BuildRecord) -> str:
    return json.dumps(record.model_dump(mode="json"), indent=2)

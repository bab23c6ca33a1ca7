"""Helpers for the audit-branch tests: git and kiln in subprocesses, small hand-made wheels
with build records beside them.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

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
    TestRef,
    WheelRef,
    record_path,
    write_record,
)


def git(repo: Path, *args: str, env: dict[str, str] | None = None,
        check: bool = True) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def kiln(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    """The real kiln CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "kiln", *map(str, args)], cwd=cwd,
                          env={**os.environ, "COLUMNS": "250", **(env or {})},
                          capture_output=True, text=True, timeout=300, check=False)


def make_wheel(folder: Path, name: str = "demo", version: str = "1.0", seed: str = "",
               tag: str = "py3-none-any") -> Path:
    """A small, valid-looking wheel; ``seed`` changes its bytes (so its digest)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-{tag}.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member, text in ((f"{name}/__init__.py", f"VALUE = {seed!r}\n"),
                             (f"{name}-{version}.dist-info/METADATA",
                              f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")):
            info = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    path.write_bytes(buf.getvalue())
    return path


def write_build_record(wheel: Path, *, reproducible: bool | None = True) -> BuildRecord:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    name, version = wheel.name.split("-")[:2]
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    record = BuildRecord(
        kiln_version="0.1.0", build_id="b" * 64,
        recipe=RecipeRef(path=f"recipes/{name}.toml", sha256="1" * 64, name=name,
                         version=version),
        lock=LockRef(path=f"recipes/{name}.lock", sha256="2" * 64),
        source=SourceRef(url=f"https://example.org/{name}-{version}.tar.gz",
                         filename=f"{name}-{version}.tar.gz", sha256="3" * 64, size=10),
        python=InterpreterRef(version="3.11.2", path="/usr/bin/python3.11", sha256="4" * 64,
                              tag="cp311"),
        target="linux-x86_64", backend="native", toolchain=[], build_requirements=[],
        environment={}, normalisation=Normalisation(
            source_date_epoch=1700000000, prefix_maps={}, fixed_paths=True,
            zip_canonical=True, umask="022", fixed_environment={}),
        sandbox=SandboxRef(tool="bwrap", network="none"),
        outputs=[WheelRef(filename=wheel.name, sha256=digest, size=wheel.stat().st_size,
                          python_tag="py3", abi_tag="none", platform_tags=["any"])],
        repair=RepairRef(tool="none", policy="", raw=FileRef(name=wheel.name, sha256=digest,
                                                             size=wheel.stat().st_size)),
        test=TestRef(ran=True, passed=True),
        repro=(ReproRef(checked=True, reproducible=reproducible, digests=[digest, digest])
               if reproducible is not None else None),
        log=FileRef(name=f"logs/{name}.log", sha256="5" * 64, size=3),
        host="test-host", started=when, finished=when, seconds=1.0, stages={},
    )
    write_record(record, record_path(wheel))
    return record

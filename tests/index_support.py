"""Small valid wheels written by hand, for the index, serve and publish tests.

A wheel is a zip with ``<name>-<version>.dist-info/{METADATA,WHEEL,RECORD}``; these are
real enough for pip, uv and Poetry to install. The ``conftest.py`` of the index test
folders puts ``tests/`` on ``sys.path`` so they import this module by name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets" / "index"
FIXED_MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(folder: Path, name: str, version: str, *, tag: str = "py3-none-any",
               requires_python: str | None = None, requires: tuple[str, ...] = (),
               module: str | None = None, code: str = "", metadata_name: str | None = None,
               metadata_version: str | None = None, mtime: int = FIXED_MTIME) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    module = module or dist.lower()
    dist_info = f"{dist}-{version}.dist-info"
    lines = ["Metadata-Version: 2.1", f"Name: {metadata_name or name}",
             f"Version: {metadata_version or version}", f"Summary: {name} for kiln's tests"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    purelib = tag.endswith("-none-any")
    members = {
        f"{module}/__init__.py": (code or f"VERSION = {version!r}\n").encode(),
        f"{dist_info}/METADATA": ("\n".join(lines) + "\n\n" + f"{name} {version}\n").encode(),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: kiln-tests\nRoot-Is-Purelib: "
                               f"{'true' if purelib else 'false'}\nTag: {tag}\n").encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in members.items())
    record += f"{dist_info}/RECORD,,\n"
    path = folder / f"{dist}-{version}-{tag}.whl"
    # stored, not deflated: the bytes (and so the golden files' hashes) then do not
    # depend on the zlib this Python links
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for member, data in [*members.items(), (f"{dist_info}/RECORD", record.encode())]:
            info = zipfile.ZipInfo(member, date_time=(2023, 11, 14, 22, 13, 20))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    os.utime(path, (mtime, mtime))
    return path


def write_record(wheel: Path, *, reproducible: bool | None, build_id: str = "b-0001",
                 sha256: str | None = None, hermetic: bool | None = None,
                 test: dict | None = None) -> Path:
    """A build record beside ``wheel`` with just the fields the index reads."""
    digest = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    record = {"kind": "https://kiln.dev/build-record/v1", "build_id": build_id,
              "outputs": [{"filename": wheel.name, "sha256": digest,
                           "size": wheel.stat().st_size}],
              "repro": None if reproducible is None else {
                  "checked": True, "reproducible": reproducible, "digests": [digest]}}
    if hermetic is not None:
        record["hermetic"] = hermetic
    if test is not None:
        record["test"] = test
    path = wheel.with_name(wheel.name + ".build.json")
    path.write_text(json.dumps(record, indent=2))
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return path


def copy_asset_wheel(folder: Path, name: str, *, with_attestation: bool = True) -> Path:
    """A real PyPI wheel kept under tests/assets/index, with its real PEP 740 attestation."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / name
    wheel.write_bytes((ASSETS / name).read_bytes())
    os.utime(wheel, (FIXED_MTIME, FIXED_MTIME))
    if with_attestation:
        att = folder / (name + ".publish.attestation")
        att.write_bytes((ASSETS / (name + ".publish.attestation")).read_bytes())
    return wheel

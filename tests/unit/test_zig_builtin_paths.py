"""zig's builtin folder digests (random per zig process) are zeroed in a wheel's ELF members,
and RECORD follows."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from kiln.wheelfile import normalise_zig_builtin_paths

HEX = "5e94728a68b1ed11034945461e86abf6"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"{path},sha256={digest},{len(data)}"


def _wheel(tmp_path: Path, members: dict[str, bytes]) -> Path:
    wheel = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    record = [_record_line(k, v) for k, v in members.items()] + ["demo-1.0.dist-info/RECORD,,"]
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("demo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_the_digest_becomes_zeros_and_record_follows(tmp_path):
    elf = (b"\x7fELF" + b"\x00" * 60 + b"/kiln/toolchain/zig/ziglang/lib/std\x00"
           b"/kiln/toolchain/zig-cache/b/" + HEX.encode() + b"\x00tail")
    text = b"/kiln/toolchain/zig-cache/b/" + HEX.encode() + b"\x00"  # not ELF: left alone
    wheel = _wheel(tmp_path, {"demo/_x.so": elf, "demo/notes.txt": text,
                              "demo-1.0.dist-info/METADATA": b"Name: demo\n"})
    assert normalise_zig_builtin_paths(wheel) == ["demo/_x.so"]
    with zipfile.ZipFile(wheel) as zf:
        fixed = zf.read("demo/_x.so")
        assert len(fixed) == len(elf)
        assert HEX.encode() not in fixed
        assert b"/kiln/toolchain/zig-cache/b/" + b"0" * 32 + b"\x00tail" in fixed
        assert zf.read("demo/notes.txt") == text
        record = zf.read("demo-1.0.dist-info/RECORD").decode().splitlines()
    assert _record_line("demo/_x.so", fixed) in record
    assert _record_line("demo/notes.txt", text) in record


def test_a_wheel_without_them_is_not_rewritten(tmp_path):
    elf = b"\x7fELF" + b"\x00" * 60 + b"/kiln/toolchain/zig-cache/o/" + HEX.encode() + b"\x00"
    wheel = _wheel(tmp_path, {"demo/_x.so": elf,
                              "demo-1.0.dist-info/METADATA": b"Name: demo\n"})
    before = wheel.read_bytes()
    assert normalise_zig_builtin_paths(wheel) == []
    assert wheel.read_bytes() == before

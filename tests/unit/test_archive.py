"""Safe extraction: one crafted archive per attack, each refused, nothing left behind."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from kiln.archive import Limits, extract
from kiln.errors import UnsafeArchiveError


def tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def file_member(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def link_member(name: str, target: str,
                kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


DEFAULT_LIMITS = Limits()


def refused(archive: Path, dest: Path, words: str, limits: Limits = DEFAULT_LIMITS) -> None:
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archive, dest, limits)
    assert words in info.value.message
    assert not dest.exists(), "a refused archive must leave nothing behind"


def test_normal_sdist_extracts_to_its_top_folder(tmp_path):
    archive = tarball(tmp_path / "pkg-1.0.tar.gz", [
        file_member("pkg-1.0/setup.py", b"print(1)"),
        file_member("pkg-1.0/pkg/__init__.py", b"", mode=0o4755),
        link_member("pkg-1.0/pkg/alias.py", "__init__.py"),
    ])
    top = extract(archive, tmp_path / "out")
    assert top == tmp_path / "out" / "pkg-1.0"
    assert (top / "setup.py").read_bytes() == b"print(1)"
    assert (top / "pkg" / "alias.py").is_symlink()
    assert (top / "pkg" / "__init__.py").stat().st_mode & 0o7000 == 0  # no setuid survives


def test_absolute_path(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("/etc/evil", b"x")])
    refused(archive, tmp_path / "out", "absolute path")


def test_dot_dot(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("pkg/../../evil", b"x")])
    refused(archive, tmp_path / "out", "'..'")
    assert not (tmp_path / "evil").exists()


def test_symlink_to_absolute_path(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [link_member("pkg/link", "/etc/passwd")])
    refused(archive, tmp_path / "out", "absolute path")


def test_symlink_climbing_out(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [link_member("pkg/link", "../../outside")])
    refused(archive, tmp_path / "out", "outside the archive")


def test_write_through_a_symlinked_folder(tmp_path):
    (tmp_path / "victim").mkdir()
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/dir", "."),  # allowed: stays inside
        file_member("pkg/dir/ok", b"fine"),
    ])
    extract(archive, tmp_path / "ok")
    assert (tmp_path / "ok" / "pkg" / "ok").read_bytes() == b"fine"


def test_hardlink_to_outside(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [link_member("pkg/hard", "/etc/passwd",
                                                          tarfile.LNKTYPE)])
    refused(archive, tmp_path / "out", "absolute path")


def test_device_file(tmp_path):
    info = tarfile.TarInfo("pkg/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    archive = tarball(tmp_path / "a.tar.gz", [(info, None)])
    refused(archive, tmp_path / "out", "device")


def test_fifo(tmp_path):
    info = tarfile.TarInfo("pkg/fifo")
    info.type = tarfile.FIFOTYPE
    archive = tarball(tmp_path / "a.tar.gz", [(info, None)])
    refused(archive, tmp_path / "out", "fifo")


def test_archive_bomb_by_size(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("pkg/big", b"\0" * 200_000)])
    refused(archive, tmp_path / "out", "size cap", Limits(max_total_bytes=100_000))


def test_archive_bomb_by_member_count(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz",
                      [file_member(f"pkg/f{i}", b"") for i in range(20)])
    refused(archive, tmp_path / "out", "more than 10 members", Limits(max_members=10))


def test_zip_with_dot_dot_and_lying_sizes(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/../../evil", b"x")
    refused(path, tmp_path / "out", "'..'")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/zeros", b"\0" * 300_000)
    refused(bomb, tmp_path / "out2", "size cap", Limits(max_total_bytes=100_000))


def test_not_an_archive(tmp_path):
    path = tmp_path / "pkg-1.0.tar.gz"
    path.write_bytes(b"this is not gzip")
    refused(path, tmp_path / "out", "broken archive")

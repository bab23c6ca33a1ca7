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


def test_write_through_a_chain_of_links_that_leaves_the_folder(tmp_path):
    # Each link alone looks inside: l1 -> .. is the top folder, and l1/l2 -> .. reads as
    # "pkg" on paper; but l1 is a link, so l2 really lands in the top folder and points above it.
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/l1", ".."),
        link_member("pkg/l1/l2", ".."),
        file_member("pkg/l1/l2/evil", b"pwned"),
    ])
    refused(archive, tmp_path / "out", "through a link that leaves the folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_a_chain_of_links_that_leaves_the_folder_is_refused_even_if_unused(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/l1", ".."),
        link_member("pkg/l1/l2", ".."),  # really <out>/l2 -> <out>/..
    ])
    refused(archive, tmp_path / "out", "leads outside the folder")


def test_a_link_re_pointed_by_a_later_link_is_refused(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/x", "a/../.."),  # <out> while "a" is nothing or a folder
        link_member("pkg/a", ".."),  # now x is <out>/.. : above the folder
    ])
    refused(archive, tmp_path / "out", "'pkg/x' leads outside the folder")


def test_hard_link_through_a_link_that_leaves_the_folder_copies_nothing(tmp_path):
    (tmp_path / "secret").write_bytes(b"private key")
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/l1", ".."),
        link_member("pkg/l1/l2", ".."),
        link_member("pkg/stolen", "l2/secret", tarfile.LNKTYPE),
        file_member("l2", b"the link that led out is gone by the end"),
    ])
    with pytest.raises(UnsafeArchiveError, match="not a file in the archive"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hard_link_inside_is_a_copy(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [
        file_member("pkg/a.py", b"A", mode=0o755),
        link_member("pkg/b.py", "pkg/a.py", tarfile.LNKTYPE),
    ])
    top = extract(archive, tmp_path / "out")
    assert (top / "b.py").read_bytes() == b"A"
    assert (top / "b.py").stat().st_mode & 0o777 == 0o755
    assert not (top / "b.py").is_symlink()


def test_hard_link_to_a_folder_or_a_missing_file(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [
        file_member("pkg/sub/f", b""),
        link_member("pkg/hard", "pkg/sub", tarfile.LNKTYPE),
    ])
    refused(archive, tmp_path / "out", "not a file in the archive")
    archive = tarball(tmp_path / "b.tar.gz", [link_member("pkg/hard", "pkg/nothing",
                                                          tarfile.LNKTYPE)])
    refused(archive, tmp_path / "out", "not a file in the archive")


def test_file_written_over_a_link_replaces_the_link(tmp_path):
    (tmp_path / "victim").write_bytes(b"untouched")
    archive = tarball(tmp_path / "a.tar.gz", [
        link_member("pkg/l1", ".."),
        link_member("pkg/f", "l1/../victim"),  # dangling inside: <out>/victim
        file_member("pkg/f", b"new"),
    ])
    top = extract(archive, tmp_path / "out")
    assert (top / "f").read_bytes() == b"new" and not (top / "f").is_symlink()
    assert (tmp_path / "victim").read_bytes() == b"untouched"


@pytest.mark.parametrize(("name", "words"), [
    ("pkg\\..\\evil", "backslash or NUL"),
    ("C:/evil", "absolute path"),
    ("pkg/./../../evil", "'..'"),
])
def test_odd_member_names(tmp_path, name, words):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("pkg/ok"), b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"x")
    refused(path, tmp_path / "out", words)


def test_zip_symlink_climbing_out(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../outside")
    refused(path, tmp_path / "out", "outside the archive")


def test_zip_special_file(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("pkg/fifo")
        info.external_attr = (0o010644 << 16)
        zf.writestr(info, b"")
    refused(path, tmp_path / "out", "special file")


def test_zip_modes_lose_setuid(tmp_path):
    path = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("pkg-1.0/run.sh")
        info.external_attr = (0o104755 << 16)
        zf.writestr(info, b"#!/bin/sh\n")
        plain = zipfile.ZipInfo("pkg-1.0/plain")
        plain.external_attr = (0o100000 << 16)  # a file with no permission bits at all
        zf.writestr(plain, b"")
    top = extract(path, tmp_path / "out")
    assert (top / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (top / "plain").stat().st_mode & 0o777 == 0o644


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("pkg/f", b"x")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine").write_bytes(b"keep")
    with pytest.raises(UnsafeArchiveError, match="not empty"):
        extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "mine").read_bytes() == b"keep"


def test_size_cap_counts_every_member_and_an_exact_fit_passes(tmp_path):
    members = [file_member(f"pkg/f{i}", b"\0" * 40_000) for i in range(3)]
    archive = tarball(tmp_path / "a.tar.gz", members)
    refused(archive, tmp_path / "out", "size cap", Limits(max_total_bytes=100_000))
    extract(archive, tmp_path / "fits", Limits(max_total_bytes=120_000))
    assert (tmp_path / "fits" / "pkg" / "f2").stat().st_size == 40_000


def test_a_member_claiming_more_than_the_cap_is_refused_before_reading(tmp_path):
    info = tarfile.TarInfo("pkg/huge")
    info.size = 1 << 40  # the header lies; the data is never there
    path = tmp_path / "a.tar"
    with path.open("wb") as fh:
        fh.write(info.tobuf(format=tarfile.GNU_FORMAT))
        fh.write(b"\0" * 1024)
    refused(path, tmp_path / "out", "claims", Limits(max_total_bytes=100_000))


def test_member_count_cap_allows_exactly_the_limit(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz",
                      [file_member(f"pkg/f{i}", b"") for i in range(10)])
    extract(archive, tmp_path / "out", Limits(max_members=10))
    assert len(list((tmp_path / "out" / "pkg").iterdir())) == 10


def test_unknown_archive_kind(tmp_path):
    path = tmp_path / "pkg-1.0.rar"
    path.write_bytes(b"Rar!")
    refused(path, tmp_path / "out", "not an sdist archive")


def test_read_members_reads_at_most_the_cap(tmp_path):
    from kiln.archive import read_members

    archive = tarball(tmp_path / "pkg-1.0.tar.gz", [file_member("pkg-1.0/big", b"y" * 5000)])
    with read_members(archive, max_bytes=100) as (names, read):
        assert names == ["pkg-1.0/big"]
        assert read("pkg-1.0/big") == b"y" * 100
    path = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0/big", b"z" * 5000)
    with read_members(path, max_bytes=100) as (names, read):
        assert names == ["pkg-1.0/big"]
        assert read("pkg-1.0/big") == b"z" * 100


def test_folders_in_any_order_and_files_listed_twice(tmp_path):
    def folder(name: str) -> tuple[tarfile.TarInfo, None]:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        return info, None

    archive = tarball(tmp_path / "a.tar.gz", [
        folder("pkg-1.0/deep/er"),  # its parents are not listed
        file_member("pkg-1.0/a/f", b"first"),
        folder("pkg-1.0/a"),  # listed after what it holds
        file_member("pkg-1.0/a/f", b"second"),  # appended again: the later one wins
    ])
    top = extract(archive, tmp_path / "out")
    assert (top / "deep" / "er").is_dir()
    assert (top / "a" / "f").read_bytes() == b"second"
    path = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0/", b"")
        zf.writestr("pkg-1.0/sub/", b"")
        zf.writestr("pkg-1.0/sub/f", b"z")
    assert (extract(path, tmp_path / "zip") / "sub" / "f").read_bytes() == b"z"


def test_a_file_may_not_replace_a_folder(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [
        file_member("pkg/sub/f", b"x"),
        file_member("pkg/sub", b"now a file"),
    ])
    refused(archive, tmp_path / "out", "replaces a folder")


def test_the_top_folder_is_returned_only_when_it_is_alone_and_real(tmp_path):
    two = tarball(tmp_path / "two.tar.gz", [file_member("a/f"), file_member("b/f")])
    assert extract(two, tmp_path / "two") == tmp_path / "two"
    loose = tarball(tmp_path / "loose.tar.gz", [file_member("a/f"), file_member("setup.py")])
    assert extract(loose, tmp_path / "loose") == tmp_path / "loose"
    single = tarball(tmp_path / "single.tar.gz", [file_member("setup.py")])
    assert extract(single, tmp_path / "single") == tmp_path / "single"
    link = tarball(tmp_path / "link.tar.gz", [link_member("top", ".")])
    assert extract(link, tmp_path / "link") == tmp_path / "link"


def test_a_one_letter_name_and_a_bare_drive(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("a", b"1")])
    assert (extract(archive, tmp_path / "out") / "a").read_bytes() == b"1"
    refused(tarball(tmp_path / "b.tar.gz", [file_member("C:", b"x")]), tmp_path / "out2",
            "absolute path")


def test_a_new_folder_may_be_nested(tmp_path):
    archive = tarball(tmp_path / "pkg-1.0.tar.gz", [file_member("pkg-1.0/f")])
    dest = tmp_path / "a" / "b" / "out"
    assert extract(archive, dest) == dest / "pkg-1.0"


def test_a_member_exactly_at_the_size_cap_fits(tmp_path):
    archive = tarball(tmp_path / "a.tar.gz", [file_member("pkg/f", b"\0" * 1000)])
    extract(archive, tmp_path / "out", Limits(max_total_bytes=1000))
    assert (tmp_path / "out" / "pkg" / "f").stat().st_size == 1000


def test_zip_member_count_cap(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(11):
            zf.writestr(f"pkg/f{i}", b"")
    refused(path, tmp_path / "out", "more than 10 members", Limits(max_members=10))


def test_zip_links_inside_are_kept_and_chains_out_are_refused(tmp_path):
    def link(zf: zipfile.ZipFile, name: str, target: str) -> None:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, target)

    path = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0/real.py", b"x")
        link(zf, "pkg-1.0/alias.py", "real.py")
    top = extract(path, tmp_path / "out")
    assert (top / "alias.py").is_symlink() and (top / "alias.py").read_bytes() == b"x"
    chain = tmp_path / "chain.zip"
    with zipfile.ZipFile(chain, "w") as zf:
        link(zf, "pkg/l1", "..")
        link(zf, "pkg/l1/l2", "..")
    refused(chain, tmp_path / "out2", "leads outside the folder")


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_bomb_is_never_read_whole_into_memory(tmp_path, kind):
    import tracemalloc

    big = b"\0" * (32 << 20)
    path = tmp_path / f"a.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("pkg/zeros", big)
    else:
        tarball(path, [file_member("pkg/zeros", big)])
    del big
    tracemalloc.start()
    try:
        # Past the cap it is refused; under it, unpacked; either way a chunk at a time.
        refused(path, tmp_path / "out", "size cap", Limits(max_total_bytes=4 << 20))
        extract(path, tmp_path / "fits", Limits(max_total_bytes=64 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "fits" / "pkg" / "zeros").stat().st_size == 32 << 20
    assert peak < 12 << 20, f"{peak:,} bytes held at once"


@pytest.mark.parametrize(("name", "target"), [("top", ".."), ("pkg/up", "../.."),
                                              ("pkg/abs", "/")])
def test_a_link_to_exactly_the_folder_above(tmp_path, name, target):
    archive = tarball(tmp_path / "a.tar.gz", [link_member(name, target)])
    refused(archive, tmp_path / "out", "absolute path" if target == "/" else "outside the archive")

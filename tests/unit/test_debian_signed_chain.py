"""The chain from Debian's signed Release to each .deb: every link checked, every break refused.

gpgv is replaced by a stand-in that reports what the real one would (the real gpgv, with
a real key, is tests/integration/test_debian_release_signature.py); the archive is a
folder served through file:// urls.
"""

from __future__ import annotations

import email.utils
import hashlib
import lzma
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kiln.errors import (
    EnvironmentSetupError,
    FetchError,
    HashMismatchError,
    VerificationError,
)
from kiln.toolchain import debian

GOOD_STATUS = ("[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 0E98404D386FA1D9 Debian Archive\n"
               "[GNUPG:] VALIDSIG 4D64FEC119C2029067D6E791F8D2585B8783D481 2026-07-11\n")
VALID_UNTIL = "Sat, 18 Jul 2026 10:16:37 UTC"
VALID_UNTIL_SECONDS = email.utils.parsedate_to_datetime(VALID_UNTIL).timestamp()

PACKAGES = """\
Package: python3.11-minimal
Version: 3.11.2-6+deb12u8
Architecture: arm64
Filename: pool/main/p/python3.11/python3.11-minimal_3.11.2-6+deb12u8_arm64.deb
Size: 8
SHA256: {sha256}
"""


def release(codename: str = "bookworm", suite: str = "oldstable", *, extra: str = "",
            index: bytes = b"", index_size: int | None = None) -> str:
    digest = hashlib.sha256(index).hexdigest()
    size = len(index) if index_size is None else index_size
    return (f"Origin: Debian\nSuite: {suite}\nCodename: {codename}\n"
            f"Date: Sat, 11 Jul 2026 10:16:37 UTC\n{extra}"
            "MD5Sum:\n 0ed6d4c8891eb86358b94bb35d9e4da4 8689464 main/binary-arm64/Packages.xz\n"
            f"SHA256:\n {digest} {size} main/binary-arm64/Packages.xz\n")


@dataclass
class FakeGpgv:
    """Answers like gpgv: writes the signed text to --output, status lines to fd 1."""

    returncode: int = 0
    status: str = GOOD_STATUS
    stderr: str = ""
    signed_text: str | None = None  # None: the file as given (a clearsigned text's body)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: list[object], *, error: type[Exception], check: bool = True,
                 **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        args = [str(a) for a in argv]
        self.calls.append(args)
        assert args[1:3] == ["--status-fd", "1"]
        output = Path(args[args.index("--output") + 1])
        assert not output.exists(), "gpgv will not write over a file"
        body = Path(args[-1]).read_text()
        output.write_text(body if self.signed_text is None else self.signed_text)
        if check and self.returncode != 0:  # as kiln.proc.capture does
            raise error(f"gpgv exited with {self.returncode}")
        return subprocess.CompletedProcess(args, self.returncode, self.status.encode(),
                                           self.stderr.encode())


@pytest.fixture
def gpgv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeGpgv:
    fake = FakeGpgv()
    monkeypatch.setattr(debian.shutil, "which",
                        lambda name: "/usr/bin/gpgv" if name == "gpgv" else None)
    monkeypatch.setattr(debian.proc, "capture", fake)
    keyring = tmp_path / "archive-keyring.gpg"
    keyring.write_bytes(b"keys")
    monkeypatch.setenv("KILN_DEBIAN_KEYRING", str(keyring))
    return fake


def inrelease_file(folder: Path, text: str) -> Path:
    path = folder / "InRelease"
    path.write_text(text)
    return path


def test_what_gpgv_vouched_for_is_returned(gpgv: FakeGpgv, tmp_path: Path) -> None:
    inrelease = inrelease_file(tmp_path, "-----BEGIN PGP SIGNED MESSAGE-----\n…")
    (tmp_path / "InRelease.verified").write_text("stale, from a run that died")
    gpgv.signed_text = release()
    assert debian.verify_release(inrelease, "bookworm") == release()
    (argv,) = gpgv.calls
    assert argv[0] == "/usr/bin/gpgv"
    assert argv[argv.index("--keyring") + 1] == str(tmp_path / "archive-keyring.gpg")
    assert argv[-1] == str(inrelease)
    assert not (tmp_path / "InRelease.verified").exists()


def test_keys_given_win_over_the_environment(gpgv: FakeGpgv, tmp_path: Path) -> None:
    other = tmp_path / "ubuntu-keyring.gpg"
    other.write_bytes(b"keys")
    debian.verify_release(inrelease_file(tmp_path, release()), "bookworm", keys=other)
    assert gpgv.calls[0][gpgv.calls[0].index("--keyring") + 1] == str(other)


def test_a_zero_exit_without_validsig_is_refused(gpgv: FakeGpgv, tmp_path: Path) -> None:
    gpgv.status = "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 0E98404D386FA1D9 22 8 01 1 9\n"
    with pytest.raises(VerificationError, match="did not verify: no valid signature"):
        debian.verify_release(inrelease_file(tmp_path, release()), "bookworm")


def test_validsig_with_a_failing_exit_is_refused(gpgv: FakeGpgv, tmp_path: Path) -> None:
    gpgv.returncode = 1
    gpgv.stderr = ("gpgv: Signature made today\ngpgv: Good signature from \"a\"\n"
                   "gpgv: BAD signature from \"b\"\n")
    with pytest.raises(VerificationError, match='did not verify: gpgv: BAD signature from "b"'):
        debian.verify_release(inrelease_file(tmp_path, release()), "bookworm")


@pytest.mark.parametrize("suite", ["bookworm", "oldstable"])
def test_the_codename_or_the_suite_must_be_the_one_asked_for(gpgv: FakeGpgv, tmp_path: Path,
                                                             suite: str) -> None:
    assert debian.verify_release(inrelease_file(tmp_path, release()), suite)


def test_another_suite_is_refused(gpgv: FakeGpgv, tmp_path: Path) -> None:
    inrelease = inrelease_file(tmp_path, release("trixie", "testing"))
    with pytest.raises(VerificationError, match="is for 'trixie'"):
        debian.verify_release(inrelease, "bookworm")
    inrelease = inrelease_file(tmp_path, release("trixie", "bookworm-ish"))
    with pytest.raises(VerificationError):
        debian.verify_release(inrelease, "bookworm")


def test_valid_until_is_honoured_to_the_second(gpgv: FakeGpgv, tmp_path: Path) -> None:
    inrelease = inrelease_file(tmp_path, release(extra=f"Valid-Until: {VALID_UNTIL}\n"))
    assert debian.verify_release(inrelease, "bookworm", now=VALID_UNTIL_SECONDS)
    with pytest.raises(VerificationError, match=f"expired {VALID_UNTIL}"):
        debian.verify_release(inrelease, "bookworm", now=VALID_UNTIL_SECONDS + 1)
    with pytest.raises(VerificationError, match="expired"):  # now: the clock
        debian.verify_release(inrelease, "bookworm")


def test_the_clock_is_read_when_no_time_is_given(gpgv: FakeGpgv, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inrelease = inrelease_file(tmp_path, release(extra=f"Valid-Until: {VALID_UNTIL}\n"))
    monkeypatch.setattr(debian.time, "time", lambda: VALID_UNTIL_SECONDS - 1)
    assert debian.verify_release(inrelease, "bookworm")
    monkeypatch.setattr(debian.time, "time", lambda: VALID_UNTIL_SECONDS + 1)
    with pytest.raises(VerificationError, match="expired"):
        debian.verify_release(inrelease, "bookworm")


def test_without_gpgv_nothing_is_trusted(gpgv: FakeGpgv, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentSetupError, match="needs gpgv"):
        debian.verify_release(inrelease_file(tmp_path, release()), "bookworm")
    assert gpgv.calls == []


# ----------------------------------------------------------------------- the index and debs

@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-suite archive folder: dists/bookworm/{InRelease, main/binary-arm64/Packages.xz}.

    Downloads take file:// urls; the small GET that fetches InRelease takes only https, so
    here it reads the folder instead.
    """
    root = tmp_path / "mirror"

    def get_bytes(url: str, **kwargs: object) -> bytes:
        assert url.startswith(root.as_uri() + "/"), url
        return Path(urllib.parse.urlparse(url).path).read_bytes()

    monkeypatch.setattr(debian.http, "get_bytes", get_bytes)
    deb = b"!<arch>\n"
    (root / "pool/main/p/python3.11").mkdir(parents=True)
    (root / "pool/main/p/python3.11/python3.11-minimal_3.11.2-6+deb12u8_arm64.deb").write_bytes(
        deb)
    index = lzma.compress(PACKAGES.format(sha256=hashlib.sha256(deb).hexdigest()).encode())
    dists = root / "dists/bookworm"
    (dists / "main/binary-arm64").mkdir(parents=True)
    (dists / "main/binary-arm64/Packages.xz").write_bytes(index)
    (dists / "InRelease").write_text(release(index=index))
    return root


def test_a_suite_whose_chain_holds_is_loaded(gpgv: FakeGpgv, mirror: Path,
                                             tmp_path: Path) -> None:
    ubuntu_keys = tmp_path / "ubuntu-keyring.gpg"
    ubuntu_keys.write_bytes(b"keys")
    suite = debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri(),
                              keys=ubuntu_keys)
    (argv,) = gpgv.calls  # the keyring asked for, not Debian's
    assert argv[argv.index("--keyring") + 1] == str(ubuntu_keys)
    assert (suite.name, suite.arch) == ("bookworm", "arm64")
    assert suite.packages["python3.11-minimal"].version == "3.11.2-6+deb12u8"
    assert suite.release_date == "Sat, 11 Jul 2026 10:16:37 UTC"
    again = debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri(),
                              keys=ubuntu_keys)  # the downloads folder is there already
    assert again.packages == suite.packages
    (tmp_path / "debs").mkdir()
    (deb,) = debian.download_debs(suite.packages.values(), tmp_path / "debs",
                                  mirror=mirror.as_uri())
    assert deb.read_bytes() == b"!<arch>\n"


def test_an_index_whose_sha256_differs_from_the_signed_release(gpgv: FakeGpgv, mirror: Path,
                                                               tmp_path: Path) -> None:
    index = mirror / "dists/bookworm/main/binary-arm64/Packages.xz"
    index.write_bytes(lzma.compress(b"Package: evil\n"))
    with pytest.raises(HashMismatchError, match="sha256"):
        debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri())


def test_an_index_whose_size_differs_from_the_signed_release(gpgv: FakeGpgv, mirror: Path,
                                                             tmp_path: Path) -> None:
    index = (mirror / "dists/bookworm/main/binary-arm64/Packages.xz").read_bytes()
    inrelease_file(mirror / "dists/bookworm", release(index=index, index_size=len(index) + 1))
    with pytest.raises(HashMismatchError, match="size differs"):
        debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri())


def test_a_release_that_does_not_verify_stops_before_the_index(gpgv: FakeGpgv, mirror: Path,
                                                               tmp_path: Path) -> None:
    gpgv.returncode, gpgv.status = 1, "[GNUPG:] BADSIG 0E98404D386FA1D9 Debian\n"
    with pytest.raises(VerificationError):
        debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri())
    assert not list((tmp_path / "dl").rglob("*Packages*"))


def test_an_architecture_the_release_does_not_sign(gpgv: FakeGpgv, mirror: Path,
                                                   tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="no sha256 for main/binary-amd64"):
        debian.load_suite("bookworm", "amd64", tmp_path / "dl", mirror=mirror.as_uri())


@pytest.mark.parametrize("name", ["../bookworm", "Bookworm", "bookworm/../x", ""])
def test_suite_names_are_checked_before_any_url_is_made(gpgv: FakeGpgv, tmp_path: Path,
                                                        name: str) -> None:
    with pytest.raises(EnvironmentSetupError, match="not a Debian suite name"):
        debian.load_suite(name, "arm64", tmp_path / "dl", mirror="file:///nonexistent")


def _package(mirror: Path, sha256: str | None = None,
             filename: str = "pool/main/p/python3.11/python3.11-minimal_3.11.2-6+deb12u8_arm64.deb"
             ) -> debian.DebPackage:
    real = hashlib.sha256(b"!<arch>\n").hexdigest()
    return debian.DebPackage("python3.11-minimal", "3.11.2-6+deb12u8", "arm64", filename,
                             sha256 or real, 8, (), ())


def test_a_deb_is_kept_only_with_the_sha256_the_index_gives(mirror: Path, tmp_path: Path) -> None:
    (deb,) = debian.download_debs([_package(mirror)], tmp_path, mirror=mirror.as_uri())
    assert deb.read_bytes() == b"!<arch>\n"
    assert deb.name.startswith(hashlib.sha256(b"!<arch>\n").hexdigest()[:16] + "-")
    with pytest.raises(HashMismatchError, match="was expected"):  # checked as it arrives
        debian.download_debs([_package(mirror, sha256="ab" * 32)], tmp_path,
                             mirror=mirror.as_uri())
    assert not list(tmp_path.glob("abababab*.deb"))


def test_a_cached_deb_changed_since_is_removed_and_refused(mirror: Path, tmp_path: Path) -> None:
    (deb,) = debian.download_debs([_package(mirror)], tmp_path, mirror=mirror.as_uri())
    deb.write_bytes(b"swapped")
    with pytest.raises(HashMismatchError, match="differs from Debian's index"):
        debian.download_debs([_package(mirror)], tmp_path, mirror=mirror.as_uri())
    assert not deb.exists()


@pytest.mark.parametrize("filename", ["../../etc/passwd", "pool/../../outside.deb",
                                      "dists/bookworm/x.deb", "/pool/x.deb"])
def test_odd_file_names_in_the_index_are_refused(mirror: Path, tmp_path: Path,
                                                 filename: str) -> None:
    with pytest.raises(FetchError, match="odd file name"):
        debian.download_debs([_package(mirror, filename=filename)], tmp_path,
                             mirror=mirror.as_uri())


def test_a_release_without_a_date(gpgv: FakeGpgv, mirror: Path, tmp_path: Path) -> None:
    inrelease = mirror / "dists/bookworm/InRelease"
    inrelease.write_text("".join(line for line in inrelease.read_text().splitlines(True)
                                 if not line.startswith("Date:")))
    suite = debian.load_suite("bookworm", "arm64", tmp_path / "dl", mirror=mirror.as_uri())
    assert suite.release_date == ""

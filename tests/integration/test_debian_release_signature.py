"""Debian's signed Release, checked with the real gpgv against a throwaway archive key.

Each test clearsigns an InRelease-like text with a key made here (no network, no
Debian keyring), points kiln at that key's public keyring, and checks that only a good
signature over the right, unexpired suite gets through.
"""

from __future__ import annotations

import email.utils
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.errors import VerificationError
from kiln.toolchain import debian

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None,
                                reason="needs gpg and gpgv")

SHA256_LINE = ("2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00 8689 "
               "main/binary-arm64/Packages.xz")


@dataclass(frozen=True)
class ArchiveKeys:
    home: Path  # GNUPGHOME holding both secret keys
    archive: str  # fingerprint of the key the keyring trusts
    stranger: str  # fingerprint of a key it does not
    keyring: Path  # the archive key's public half, as gpgv reads it

    def gpg(self, *args: str) -> str:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        result = subprocess.run(["gpg", "--batch", "--quiet", *args], capture_output=True,
                                text=True, check=True, env=env)
        return result.stdout

    def clearsign(self, text: str, target: Path, key: str | None = None) -> Path:
        plain = target.with_name(target.name + ".txt")
        plain.write_text(text)
        self.gpg("--yes", "--local-user", key or self.archive, "--clearsign",
                 "--output", str(target), str(plain))
        return target


def _new_key(home: Path, uid: str) -> str:
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", uid,
                    "ed25519", "sign", "1d"], capture_output=True, check=True, env=env)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys", uid],
                             capture_output=True, text=True, check=True, env=env).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveKeys]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    archive = _new_key(home, "kiln test archive <archive@kiln.invalid>")
    stranger = _new_key(home, "someone else <stranger@kiln.invalid>")
    keyring = home.parent / "archive-keyring.gpg"
    with keyring.open("wb") as fh:
        subprocess.run(["gpg", "--batch", "--export", archive], stdout=fh, check=True,
                       env={**os.environ, "GNUPGHOME": str(home)})
    try:
        yield ArchiveKeys(home, archive, stranger, keyring)
    finally:  # the agent gpg started for this home
        if shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False, capture_output=True,
                           env={**os.environ, "GNUPGHOME": str(home)})


@pytest.fixture(autouse=True)
def empty_gnupg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kiln's gpgv runs with an empty home: only the keyring kiln names can vouch."""
    home = tmp_path / "verifier-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    monkeypatch.delenv("KILN_DEBIAN_KEYRING", raising=False)


def release(codename: str = "bookworm", suite: str = "oldstable",
            valid_until: float | None = None) -> str:
    lines = ["Origin: Debian", f"Suite: {suite}", f"Codename: {codename}",
             "Date: " + email.utils.formatdate(time.time() - 3600, usegmt=True)]
    if valid_until is not None:
        lines.append("Valid-Until: " + email.utils.formatdate(valid_until, usegmt=True))
    return "\n".join([*lines, "SHA256:", f" {SHA256_LINE}", ""])


def test_a_good_signature_gives_the_signed_text(keys: ArchiveKeys, tmp_path: Path) -> None:
    inrelease = keys.clearsign(release(valid_until=time.time() + 7 * 86400),
                               tmp_path / "InRelease")
    text = debian.verify_release(inrelease, "bookworm", keys=keys.keyring)
    assert text == release_text(inrelease)
    assert debian.release_fields(text)["Codename"] == "bookworm"
    assert debian.release_sha256(text, "main/binary-arm64/Packages.xz")[1] == 8689
    assert debian.verify_release(inrelease, "oldstable", keys=keys.keyring) == text  # Suite too
    assert not inrelease.with_name("InRelease.verified").exists()


def test_the_keyring_can_come_from_the_environment(keys: ArchiveKeys, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    inrelease = keys.clearsign(release(), tmp_path / "InRelease")
    monkeypatch.setenv("KILN_DEBIAN_KEYRING", str(keys.keyring))
    assert "Codename: bookworm" in debian.verify_release(inrelease, "bookworm")


def test_text_altered_after_signing_is_refused(keys: ArchiveKeys, tmp_path: Path) -> None:
    inrelease = keys.clearsign(release(), tmp_path / "InRelease")
    forged = SHA256_LINE.replace("2ddb1737", "deadbeef")
    inrelease.write_text(inrelease.read_text().replace(SHA256_LINE, forged))
    with pytest.raises(VerificationError, match="signature did not verify"):
        debian.verify_release(inrelease, "bookworm", keys=keys.keyring)


def test_a_signature_by_another_key_is_refused(keys: ArchiveKeys, tmp_path: Path) -> None:
    inrelease = keys.clearsign(release(), tmp_path / "InRelease", key=keys.stranger)
    with pytest.raises(VerificationError, match="signature did not verify"):
        debian.verify_release(inrelease, "bookworm", keys=keys.keyring)


def test_an_unsigned_release_is_refused(keys: ArchiveKeys, tmp_path: Path) -> None:
    inrelease = tmp_path / "InRelease"
    inrelease.write_text(release())
    with pytest.raises(VerificationError, match="signature did not verify"):
        debian.verify_release(inrelease, "bookworm", keys=keys.keyring)


def test_only_the_signed_part_is_returned(keys: ArchiveKeys, tmp_path: Path) -> None:
    inrelease = keys.clearsign(release(), tmp_path / "InRelease")
    with inrelease.open("a") as fh:  # gpgv ignores what follows the signature block
        fh.write("SHA256:\n deadbeef 1 main/binary-arm64/Packages.xz\n")
    text = debian.verify_release(inrelease, "bookworm", keys=keys.keyring)
    assert "deadbeef" not in text
    assert debian.release_sha256(text, "main/binary-arm64/Packages.xz")[0].startswith("2ddb")


def test_the_wrong_suite_is_refused(keys: ArchiveKeys, tmp_path: Path) -> None:
    # A good signature over another suite's Release: a mirror replaying trixie for bookworm.
    inrelease = keys.clearsign(release(codename="trixie", suite="testing"),
                               tmp_path / "InRelease")
    with pytest.raises(VerificationError, match="the signed Release is for 'trixie'"):
        debian.verify_release(inrelease, "bookworm", keys=keys.keyring)


def test_an_expired_release_is_refused(keys: ArchiveKeys, tmp_path: Path) -> None:
    expired = time.time() - 86400
    inrelease = keys.clearsign(release(valid_until=expired), tmp_path / "InRelease")
    with pytest.raises(VerificationError, match="the signed Release expired") as exc:
        debian.verify_release(inrelease, "bookworm", keys=keys.keyring)
    assert "replayed" in (exc.value.hint or "")
    # Checked against the clock it is given: the same Release was fine the day before.
    assert debian.verify_release(inrelease, "bookworm", keys=keys.keyring,
                                 now=expired - 60)


def release_text(inrelease: Path) -> str:
    """The text between the clearsign header and the signature, as gpg hands it back."""
    body = inrelease.read_text().split("\n\n", 1)[1]
    return body.split("-----BEGIN PGP SIGNATURE-----", 1)[0]

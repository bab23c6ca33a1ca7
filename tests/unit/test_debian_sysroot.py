"""Reading Debian's archive (Release, Packages, dependencies) and naming foreign wheels."""

from __future__ import annotations

import json
import zipfile

import pytest

from kiln.cli.emulation import import_smoke_test, wheel_target_and_python
from kiln.errors import EnvironmentSetupError, UnsupportedError, UsageError, VerificationError
from kiln.toolchain import debian, emulation
from kiln.toolchain.targets import TARGETS

RELEASE = """\
Origin: Debian
Suite: oldstable
Codename: bookworm
Date: Sat, 11 Jul 2026 10:16:37 UTC
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  8689464 main/binary-arm64/Packages.xz
SHA256:
 c7c883a61f348283050d3a754e7c8119117c4019bf65da804c78fdae315866f1 49434 main/binary-arm64/Packages
 2ddb1737692e8c45c53e8d57c0ce4cd21c78c5703b830c3226b1423566a06c00 8689 main/binary-arm64/Packages.xz
"""

PACKAGES = """\
Package: python3.11-minimal
Version: 3.11.2-6+deb12u8
Architecture: arm64
Pre-Depends: libc6 (>= 2.36)
Depends: libpython3.11-minimal (= 3.11.2-6+deb12u8), libexpat1 (>= 2.1~beta3), zlib1g (>= 1:1.2.0)
Recommends: python3.11
Filename: pool/main/p/python3.11/python3.11-minimal_3.11.2-6+deb12u8_arm64.deb
Size: 1861304
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
Description: Minimal subset of the Python language
 (continuation line: Depends: not-a-field)

Package: libpython3.11-minimal
Version: 3.11.2-6+deb12u8
Architecture: arm64
Depends: libc6 (>= 2.14), libssl3 (>= 3.0.0) | libssl-virtual
Filename: pool/main/p/python3.11/libpython3.11-minimal_3.11.2-6+deb12u8_arm64.deb
Size: 810796
SHA256: 2222222222222222222222222222222222222222222222222222222222222222

Package: libc6
Version: 2.36-9+deb12u14
Architecture: arm64
Depends: libgcc-s1, dpkg
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u14_arm64.deb
Size: 2324660
SHA256: 3333333333333333333333333333333333333333333333333333333333333333

Package: libgcc-s1
Version: 12.2.0-14
Architecture: arm64
Filename: pool/main/g/gcc-12/libgcc-s1_12.2.0-14_arm64.deb
Size: 34816
SHA256: 4444444444444444444444444444444444444444444444444444444444444444

Package: openssl-provider
Version: 3.0.20
Architecture: arm64
Provides: libssl3
Filename: pool/main/o/openssl/openssl-provider_3.0.20_arm64.deb
Size: 100
SHA256: 5555555555555555555555555555555555555555555555555555555555555555

Package: zlib1g
Version: 1:1.2.13.dfsg-1
Architecture: arm64
Filename: pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_arm64.deb
Size: 82744
SHA256: 6666666666666666666666666666666666666666666666666666666666666666

Package: dpkg
Version: 1.21.23
Architecture: arm64
Filename: pool/main/d/dpkg/dpkg_1.21.23_arm64.deb
Size: 1
SHA256: 7777777777777777777777777777777777777777777777777777777777777777
"""


def test_release_gives_the_signed_sha256_of_an_index():
    sha, size = debian.release_sha256(RELEASE, "main/binary-arm64/Packages.xz")
    assert sha.startswith("2ddb1737") and size == 8689
    with pytest.raises(VerificationError, match="no sha256"):
        debian.release_sha256(RELEASE, "main/binary-amd64/Packages.xz")
    fields = debian.release_fields(RELEASE)
    assert fields["Codename"] == "bookworm"


def test_packages_index_is_parsed_with_relations():
    index = debian.parse_packages(PACKAGES.splitlines())
    py = index["python3.11-minimal"]
    assert py.version == "3.11.2-6+deb12u8"
    assert py.depends[0] == ("libc6",)  # Pre-Depends first
    assert ("libexpat1",) in py.depends
    assert py.filename.endswith("_arm64.deb")
    assert index["libpython3.11-minimal"].depends[1] == ("libssl3", "libssl-virtual")
    assert index["openssl-provider"].provides == ("libssl3",)


def test_closure_follows_dependencies_providers_and_skips():
    index = debian.parse_packages(PACKAGES.splitlines())
    chosen, missing = debian.closure(index, ["python3.11-minimal"], frozenset({"dpkg"}))
    names = [p.name for p in chosen]
    assert names == sorted(names)
    assert {"python3.11-minimal", "libpython3.11-minimal", "libc6", "libgcc-s1", "zlib1g",
            "openssl-provider"} == set(names)
    assert missing == ["libexpat1"]  # reported, not silently dropped
    with pytest.raises(EnvironmentSetupError, match=r"no package python3\.12"):
        debian.closure(index, ["python3.12-minimal"])


def test_release_verification_needs_gpgv_and_the_keyring(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_DEBIAN_KEYRING", str(tmp_path / "missing.gpg"))
    (tmp_path / "InRelease").write_text(RELEASE)
    with pytest.raises(EnvironmentSetupError, match="gpgv"):
        debian.verify_release(tmp_path / "InRelease", "bookworm")


def test_a_debian_suite_for_each_python_or_a_plain_no():
    assert emulation.suite_for("3.11") == "bookworm"
    assert emulation.suite_for("3.13") == "trixie"
    for minor in ("3.10", "3.12"):
        with pytest.raises(UnsupportedError, match=f"no Debian suite ships CPython {minor}"):
            emulation.suite_for(minor)


def test_uv_platform_follows_the_sysroot_glibc(tmp_path):
    def root(glibc: str) -> emulation.Sysroot:
        return emulation.Sysroot(tmp_path, TARGETS["linux-aarch64"], "3.11", "bookworm",
                                 "3.11.2", glibc, ())

    assert root("2.36").uv_platform == "aarch64-manylinux_2_36"
    assert root("2.42").uv_platform == "aarch64-manylinux_2_40"
    assert root("2.36").argv(tmp_path / "qemu")[1:3] == ["-L", str(tmp_path)]


def test_a_wheel_name_says_its_target_and_python():
    wheel = "m-1.0-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    target, minor = wheel_target_and_python(tmp_wheel_path(wheel), None)
    assert (target.name, minor) == ("linux-aarch64", "3.11")
    assert wheel_target_and_python(tmp_wheel_path(wheel), "3.13")[1] == "3.13"
    with pytest.raises(UsageError, match="CPython tag"):
        wheel_target_and_python(tmp_wheel_path("m-1.0-py3-none-manylinux_2_17_aarch64.whl"),
                                None)


def tmp_wheel_path(name: str):  # type: ignore[no-untyped-def]
    from pathlib import Path

    return Path("/nowhere") / name


def test_without_a_recipe_the_wheel_modules_are_imported(tmp_path):
    wheel = tmp_path / "m-1.0-cp311-cp311-linux_aarch64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/_ext.cpython-311-aarch64-linux-gnu.so", "")
        zf.writestr("_top.cpython-311-aarch64-linux-gnu.so", "")
        zf.writestr("m.libs/libfoo-12345678.so", "")
        zf.writestr("m-1.0.dist-info/METADATA", "")
    spec = import_smoke_test(wheel)
    assert spec.smoke and not spec.commands
    from kiln.wheeltest import smoke_command

    script = smoke_command(wheel)[-1]  # type: ignore[index]
    # the compiled modules by their full names; never the .libs folder auditwheel adds
    assert "['_top', 'pkg._ext']" in script and "libfoo" not in script


def test_a_sysroot_made_of_other_packages_is_made_again(tmp_path):
    """The emulated system has what manylinux counts on (libstdc++, libgcc_s): numpy's own
    aarch64 wheels link libstdc++.so.6 without carrying it. A sysroot an older kiln made
    of CPython alone is not used."""
    assert {"libstdc++6", "libgcc-s1", "python3.13-minimal"} <= set(
        emulation.sysroot_roots("3.13"))
    manifest = {"suite": "trixie", "arch": "arm64", "python": "3.13", "python_version": "3.13.5",
                "glibc": "2.41", "packages": []}
    (tmp_path / emulation.MANIFEST).write_text(json.dumps(manifest))
    assert emulation._load(tmp_path, TARGETS["linux-aarch64"]) is None
    manifest["roots"] = emulation.sysroot_roots("3.13")
    (tmp_path / emulation.MANIFEST).write_text(json.dumps(manifest))
    assert emulation._load(tmp_path, TARGETS["linux-aarch64"]) is not None

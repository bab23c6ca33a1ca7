"""Rust crates: Cargo.lock read, crates fetched by checksum from a local registry, refused
when they do not check out, unpacked safely, cached, and laid out for cargo."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from kiln import toml
from kiln.crates.fetch import (
    CHECKSUM_FILE,
    DEFAULT_CRATES_URL,
    check_crates_url,
    crate_url,
    fetch_crate,
    fetch_crates,
    registry_name,
)
from kiln.crates.lockfile import LockedCrate, has_rust, parse_cargo_lock, rust_sources
from kiln.crates.vendor import cargo_config, vendor_crates
from kiln.errors import (
    BuildError,
    FetchError,
    HashMismatchError,
    UnsafeArchiveError,
    UnsupportedError,
    UsageError,
)
from tests.conftest import make_sdist
from tests.crates_support import (
    ADD_CRATE,
    CRATES_IO,
    PackedCrate,
    cargo_lock,
    pack_crate,
    serve_crates,
)

SHA_A = "a" * 64
GIT_SOURCE = "git+https://github.com/example/widget?rev=abc#0123456789abcdef"


def _add_crate(tmp_path: Path) -> PackedCrate:
    return pack_crate(tmp_path / "registry", "kiln-fixture-add", "0.1.0", ADD_CRATE)


def _locked(crate: PackedCrate, checksum: str | None = None) -> LockedCrate:
    return LockedCrate(crate.name, crate.version, checksum or crate.sha256, CRATES_IO)


# Cargo.lock


def test_registry_crates_are_read_with_their_checksums_and_path_crates_left_out() -> None:
    lock = cargo_lock("demo", (PackedCrate("kiln-fixture-add", "0.1.0", Path("x"), SHA_A),
                               PackedCrate("libc", "0.2.170", Path("y"), "b" * 64)))
    crates = parse_cargo_lock(lock, "Cargo.lock")
    assert crates == (LockedCrate("kiln-fixture-add", "0.1.0", SHA_A, CRATES_IO),
                      LockedCrate("libc", "0.2.170", "b" * 64, CRATES_IO))


def test_a_version_1_lock_gives_its_checksums_in_metadata() -> None:
    lock = (f'[[package]]\nname = "libc"\nversion = "0.2.1"\nsource = "{CRATES_IO}"\n\n'
            f'[metadata]\n"checksum libc 0.2.1 ({CRATES_IO})" = "{SHA_A}"\n')
    assert parse_cargo_lock(lock, "Cargo.lock") == (
        LockedCrate("libc", "0.2.1", SHA_A, CRATES_IO),)


def test_a_git_crate_is_refused_by_name() -> None:
    lock = (f'version = 4\n[[package]]\nname = "widget"\nversion = "0.3.0"\n'
            f'source = "{GIT_SOURCE}"\n')
    with pytest.raises(UnsupportedError) as caught:
        parse_cargo_lock(lock, "pkg-1.0.tar.gz: Cargo.lock")
    message = str(caught.value)
    assert "crate widget 0.3.0 comes from git" in message
    assert "github.com/example/widget" in message
    assert "pkg-1.0.tar.gz: Cargo.lock" in message
    assert caught.value.hint and "vendor it into the sdist" in caught.value.hint


def test_a_crate_of_another_registry_is_refused_by_name() -> None:
    lock = ('[[package]]\nname = "inhouse"\nversion = "1.0.0"\n'
            f'source = "registry+https://crates.example.com/index"\nchecksum = "{SHA_A}"\n')
    with pytest.raises(UnsupportedError, match=r"crate inhouse 1\.0\.0 comes from the registry "
                                               r"registry\+https://crates\.example\.com/index"):
        parse_cargo_lock(lock, "Cargo.lock")


def test_a_registry_crate_without_a_checksum_is_refused() -> None:
    lock = f'[[package]]\nname = "libc"\nversion = "0.2.1"\nsource = "{CRATES_IO}"\n'
    with pytest.raises(BuildError, match=r"crate libc 0\.2\.1 has no sha256 checksum"):
        parse_cargo_lock(lock, "Cargo.lock")


def test_a_broken_lock_names_its_file() -> None:
    with pytest.raises(BuildError, match=r"src/rust/Cargo\.lock: not a Cargo\.lock"):
        parse_cargo_lock("[[package]\n", "src/rust/Cargo.lock")


def test_every_cargo_lock_of_the_sdist_is_read(tmp_path: Path) -> None:
    one = PackedCrate("base64", "0.22.1", Path("x"), SHA_A)
    two = PackedCrate("libc", "0.2.170", Path("y"), "b" * 64)
    sdist = make_sdist(tmp_path, "pkg", "1.0", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools", "setuptools-rust>=1.9"]\n',
        "src/rust/Cargo.toml": "",
        "src/rust/Cargo.lock": cargo_lock("pkg", (one, two)),
        "tools/helper/Cargo.lock": cargo_lock("helper", (one,)),
    })
    found = rust_sources(sdist.path)
    assert found is not None
    assert found.locks == ("src/rust/Cargo.lock", "tools/helper/Cargo.lock")
    assert [c.label for c in found.crates] == ["base64 0.22.1", "libc 0.2.170"]


def test_an_sdist_without_cargo_toml_has_no_rust(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "pkg", "1.0", {"pyproject.toml": "", "setup.py": ""})
    assert rust_sources(sdist.path) is None


def test_cargo_files_in_a_package_built_without_rust_are_data(tmp_path: Path) -> None:
    """numpy vendors meson, whose test cases hold Cargo.toml and Cargo.lock files: its build
    compiles no Rust, so kiln fetches no crates for it (it used to stop at crates.io)."""
    crate = PackedCrate("bar", "0.1.0", Path("x"), SHA_A)
    cases = "vendored-meson/meson/test cases/rust/25 cargo lock"
    sdist = make_sdist(tmp_path, "numpy", "2.5.5", {
        "pyproject.toml": '[build-system]\nbuild-backend = "mesonpy"\n'
                          'requires = ["meson-python>=0.15", "Cython>=3.0.6"]\n',
        f"{cases}/Cargo.toml": "", f"{cases}/Cargo.lock": cargo_lock("bar", (crate,))})
    assert rust_sources(sdist.path) is None
    assert not has_rust(sdist.path)


@pytest.mark.parametrize("files", [
    {"pyproject.toml": '[build-system]\nbuild-backend = "maturin"\nrequires = ["maturin>=1"]\n',
     "rust/Cargo.toml": ""},
    {"pyproject.toml": "[build-system]\n"
                       'requires = ["setuptools_rust[toml] ; python_version>\'3\'"]\n',
     "src/Cargo.toml": ""},
    {"setup.py": "from setuptools_rust import RustExtension\n", "native/Cargo.toml": ""},
    {"pyproject.toml": "", "Cargo.toml": ""},  # a crate at the top
], ids=["maturin", "setuptools-rust", "setup.py", "top"])
def test_a_package_whose_build_compiles_rust_is_found(tmp_path: Path, files: dict) -> None:
    sdist = make_sdist(tmp_path, "pkg", "1.0", files)
    assert has_rust(sdist.path)
    assert rust_sources(sdist.path) is not None


def test_two_locks_that_disagree_on_a_checksum_are_refused(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "pkg", "1.0", {
        "Cargo.toml": "", "Cargo.lock": cargo_lock("a", (PackedCrate("libc", "1.0.0",
                                                                   Path("x"), SHA_A),)),
        "sub/Cargo.lock": cargo_lock("b", (PackedCrate("libc", "1.0.0", Path("x"), "b" * 64),)),
    })
    with pytest.raises(BuildError, match=r"crate libc 1\.0\.0 has checksum"):
        rust_sources(sdist.path)


# The registry's address


def test_the_default_registry_is_crates_io_layout() -> None:
    crate = LockedCrate("base64", "0.22.1", SHA_A, CRATES_IO)
    assert crate_url(DEFAULT_CRATES_URL, crate) == \
        "https://static.crates.io/crates/base64/base64-0.22.1.crate"
    assert registry_name(DEFAULT_CRATES_URL) == "https://static.crates.io/crates/"


@pytest.mark.parametrize("url", ["http://mirror.example/{name}/{version}",
                                 "https://mirror.example/crates/",
                                 "ftp://mirror.example/{name}-{version}.crate"])
def test_a_registry_url_kiln_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(UsageError):
        check_crates_url(url, "--crates-url")


# Fetching


def test_a_crate_is_fetched_checked_and_unpacked_for_cargo(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    with serve_crates((crate,)) as registry:
        fetched = fetch_crate(_locked(crate), registry.template, tmp_path / "cache")
    assert fetched.url.endswith("/crates/kiln-fixture-add/kiln-fixture-add-0.1.0.crate")
    assert fetched.archive.read_bytes() == crate.path.read_bytes()
    assert (fetched.unpacked / "src" / "lib.rs").is_file()
    checksums = json.loads((fetched.unpacked / CHECKSUM_FILE).read_text())
    assert checksums["package"] == crate.sha256
    assert sorted(checksums["files"]) == ["Cargo.toml", "src/lib.rs"]
    import hashlib
    assert checksums["files"]["src/lib.rs"] == hashlib.sha256(
        (fetched.unpacked / "src" / "lib.rs").read_bytes()).hexdigest()


def test_a_checksum_mismatch_names_the_crate_and_both_digests(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    cache = tmp_path / "cache"
    with serve_crates((crate,)) as registry, pytest.raises(HashMismatchError) as caught:
        fetch_crate(_locked(crate, checksum=SHA_A), registry.template, cache)
    message = str(caught.value)
    assert "crate kiln-fixture-add 0.1.0" in message
    assert f"sha256 {crate.sha256}" in message
    assert f"Cargo.lock's checksum is {SHA_A}" in message
    assert not list((cache / "crates").rglob("*.crate")), "the bad crate must not stay cached"


def test_a_crate_missing_from_the_registry_fails_in_one_line(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    with serve_crates(()) as registry, pytest.raises(FetchError) as caught:
        fetch_crate(_locked(crate), registry.template, tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message
    assert "crate kiln-fixture-add 0.1.0" in message
    assert registry_name(registry.template) in message
    assert "HTTP 404" in message
    assert caught.value.hint and "KILN_CRATES_URL" in caught.value.hint
    assert not (tmp_path / "cache" / "crates" / crate.sha256).exists()


def test_a_registry_that_is_not_there_fails_in_one_line(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    template = (tmp_path / "no-registry").as_uri() + "/{name}/{name}-{version}.crate"
    with pytest.raises(FetchError) as caught:
        fetch_crate(_locked(crate), template, tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message
    assert f"crate kiln-fixture-add 0.1.0 from the crate registry {registry_name(template)}" \
        in message
    assert not (tmp_path / "cache" / "crates" / crate.sha256).exists()


def test_a_cached_crate_is_not_fetched_again(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    cache = tmp_path / "cache"
    with serve_crates((crate,)) as registry:
        first = fetch_crate(_locked(crate), registry.template, cache)
        second = fetch_crate(_locked(crate), registry.template, cache)
    assert len(registry.requests) == 1
    assert second == first
    # Not even a registry is needed once it is cached.
    gone = (tmp_path / "gone").as_uri() + "/{name}-{version}.crate"
    assert fetch_crate(_locked(crate), gone, cache).unpacked == first.unpacked


def test_a_cached_crate_changed_behind_kilns_back_is_refused(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    cache = tmp_path / "cache"
    with serve_crates((crate,)) as registry:
        fetched = fetch_crate(_locked(crate), registry.template, cache)
    fetched.archive.write_bytes(b"not the crate")
    with pytest.raises(HashMismatchError, match=r"kiln-fixture-add 0\.1\.0"):
        fetch_crate(_locked(crate), registry.template, cache)


def _member(name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 0 if kind != tarfile.REGTYPE else 1
    return info


@pytest.mark.parametrize("member", [
    _member("../escape.rs"),
    _member("/etc/cron.d/kiln"),
    _member("kiln-fixture-add-0.1.0/out", kind=tarfile.SYMTYPE, link="../../../etc/passwd"),
])
def test_a_crate_that_writes_outside_its_folder_is_refused(tmp_path: Path,
                                                           member: tarfile.TarInfo) -> None:
    crate = pack_crate(tmp_path / "registry", "kiln-fixture-add", "0.1.0", ADD_CRATE,
                       extra_members=(member,))
    cache = tmp_path / "cache"
    with serve_crates((crate,)) as registry, pytest.raises(UnsafeArchiveError):
        fetch_crate(_locked(crate), registry.template, cache)
    assert not (cache / "crates" / crate.sha256 / "kiln-fixture-add-0.1.0").exists()
    assert not (tmp_path / "escape.rs").exists()


def test_a_crate_with_another_top_folder_is_refused(tmp_path: Path) -> None:
    crate = pack_crate(tmp_path / "registry", "kiln-fixture-add", "0.1.0", ADD_CRATE)
    renamed = PackedCrate("other", "0.1.0", crate.path, crate.sha256)
    served = PackedCrate("other", "0.1.0", crate.path, crate.sha256)
    with serve_crates((served,)) as registry, \
            pytest.raises(UnsafeArchiveError, match=r"does not hold one folder other-0\.1\.0/"):
        fetch_crate(_locked(renamed), registry.template, tmp_path / "cache")


# Laying them out for cargo


def test_the_vendor_folder_and_cargo_home_replace_crates_io(tmp_path: Path) -> None:
    crate = _add_crate(tmp_path)
    sdist = make_sdist(tmp_path / "sdists", "demo", "1.0", {
        "Cargo.toml": "", "Cargo.lock": cargo_lock("demo", (crate,))})
    found = rust_sources(sdist.path)
    assert found is not None
    with serve_crates((crate,)) as registry:
        vendored = fetch_crates(found, registry.template, tmp_path / "cache")
    env = vendor_crates(vendored, tmp_path / "cargo", "/kiln/cargo")
    assert env == {"CARGO_HOME": "/kiln/cargo/home", "CARGO_NET_OFFLINE": "true"}
    assert (tmp_path / "cargo" / "vendor" / "kiln-fixture-add-0.1.0" / CHECKSUM_FILE).is_file()
    config = toml.loads((tmp_path / "cargo" / "home" / "config.toml").read_text())
    assert config["source"]["crates-io"] == {"replace-with": "kiln-vendored"}
    assert config["source"]["kiln-vendored"] == {"directory": "/kiln/cargo/vendor"}
    assert config["net"] == {"offline": True}
    assert cargo_config("/a b/vendor").count('"/a b/vendor"') == 1


# The recipe's crates-url


def _recipe(tmp_path: Path, build: str) -> Path:
    path = tmp_path / "demo.toml"
    path.write_text('[package]\nname = "demo"\nversion = "1.0"\n\n[source]\n'
                    f'url = "https://example.org/demo-1.0.tar.gz"\nsha256 = "{SHA_A}"\n\n'
                    f"[build]\n{build}\n")
    return path


def test_a_recipe_names_its_crate_registry(tmp_path: Path) -> None:
    from kiln.recipe import load_recipe

    url = "https://mirror.example/crates/{name}/{name}-{version}.crate"
    assert load_recipe(_recipe(tmp_path, f'crates-url = "{url}"')).crates_url == url
    assert load_recipe(_recipe(tmp_path, "")).crates_url is None


@pytest.mark.parametrize(("url", "problem"), [
    ("http://mirror.example/{name}/{name}-{version}.crate", "must start with https://"),
    ("https://mirror.example/crates/", "must name {name} and {version}"),
])
def test_a_recipe_crate_registry_kiln_cannot_use_is_refused(tmp_path: Path, url: str,
                                                            problem: str) -> None:
    from kiln.errors import RecipeError
    from kiln.recipe import load_recipe

    with pytest.raises(RecipeError, match=r"\[build\] crates-url: .*" + problem.replace(
            "{", r"\{").replace("}", r"\}")):
        load_recipe(_recipe(tmp_path, f'crates-url = "{url}"'))


def test_an_sdist_that_vendors_its_crates_needs_nothing_fetched(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "pkg", "1.0", {
        "Cargo.toml": "", "Cargo.lock": cargo_lock("pkg", (PackedCrate("libc", "1.0.0",
                                                                     Path("x"), SHA_A),)),
        ".cargo/config.toml": '[source.crates-io]\nreplace-with = "vendored-sources"\n'
                              '[source.vendored-sources]\ndirectory = "vendor"\n',
        "vendor/libc/Cargo.toml": ""})
    found = rust_sources(sdist.path)
    assert found is not None
    assert found.crates == () and found.vendored_by == ".cargo/config.toml"

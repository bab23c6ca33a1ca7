"""A Rust package built for real, offline: its crate fetched by checksum from a local
registry the test makes, vendored for cargo, compiled by rustc and linked by zig's cc in
the sandbox (no network), a manylinux_2_17 wheel that calls the crate, twice the same bytes.

Needs rustc and cargo on PATH, and setuptools-rust in the test wheels (`.ci/setup`).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TEST_WHEELS, RunKiln, make_sdist, recipe_text
from tests.crates_support import (
    ADD_CRATE,
    CRATES_IO,
    PackedCrate,
    cargo_lock,
    pack_crate,
    rust_cli_files,
    rust_demo_files,
    serve_crates,
)

# The crate's own source file, as the wheel's binary names it: the vendor folder's fixed name.
VENDORED_LIB_RS = "/kiln/cargo/vendor/kiln-fixture-add-0.1.0/src/lib.rs"
ADD_TEST = ("python -c 'import kiln_rust_demo as d; assert d.add(40, 2) == 42; "
            "assert d.add(-5, 3) == -2; assert d.mul(6, 7) == 42; "
            f"assert d.where() == \\\"{VENDORED_LIB_RS}\\\", d.where()'")


# The program's wheel puts it among the venv's scripts; the test runs it there.
CLI_TEST = ("python -c 'import os, subprocess, sysconfig; "
            "exe = os.path.join(sysconfig.get_path(\\\"scripts\\\"), \\\"kiln-add\\\"); "
            "out = subprocess.run([exe, \\\"40\\\", \\\"2\\\"], capture_output=True, text=True, "
            "check=True).stdout; assert out.strip() == \\\"42\\\", out'")


@pytest.fixture(scope="module", autouse=True)
def _rust_and_its_backends() -> None:
    rustup_bin = Path.home() / ".cargo" / "bin"
    if shutil.which("rustc") is None and (rustup_bin / "rustc").is_file():
        # rustup installs into ~/.cargo/bin and asks the shell's profile to add it to PATH,
        # which a CI step's shell may not have read.
        os.environ["PATH"] = f"{rustup_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which("cargo") is None or shutil.which("rustc") is None:
        pytest.fail("rustc and cargo must be on PATH for the Rust tests (https://rustup.rs)")
    for wheel in ("setuptools_rust", "maturin"):
        if not any(TEST_WHEELS.glob(f"{wheel}-*.whl")):
            pytest.fail(f"{TEST_WHEELS} has no {wheel} wheel: run `bash .ci/setup` first")


def _rust_recipe(tmp_path: Path, crate: PackedCrate, *, lock: str | None = None) -> Path:
    files = rust_demo_files(lock if lock is not None else cargo_lock("kiln-rust-demo", (crate,)))
    sdist = make_sdist(tmp_path / "sdists", "kiln-rust-demo", "1.0", files)
    path = tmp_path / "recipes" / "kiln-rust-demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, tests=(ADD_TEST,)))
    return path


@pytest.fixture
def add_crate(tmp_path: Path) -> PackedCrate:
    return pack_crate(tmp_path / "registry", "kiln-fixture-add", "0.1.0", ADD_CRATE)


@pytest.mark.slow
def test_a_rust_package_builds_offline_from_a_local_registry(
        run_kiln: RunKiln, tmp_path: Path, add_crate: PackedCrate) -> None:
    recipe = _rust_recipe(tmp_path, add_crate)
    with serve_crates((add_crate,)) as registry:
        run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wheelhouse",
                 env={"KILN_CRATES_URL": registry.template}, check=True)
    # Fetched once, before the build; the rebuild found it in the cache.
    assert registry.requests == ["/crates/kiln-fixture-add/kiln-fixture-add-0.1.0.crate"]

    [wheel] = (tmp_path / "wheelhouse").glob("*.whl")
    assert wheel.name.endswith("manylinux_2_17_x86_64.whl"), wheel.name
    record = json.loads(Path(f"{wheel}.build.json").read_text())
    assert record["crates"] == [{
        "name": "kiln-fixture-add", "version": "0.1.0", "checksum": add_crate.sha256,
        "source": CRATES_IO,
        "url": registry.template.replace("{name}", "kiln-fixture-add").replace(
            "{version}", "0.1.0")}]
    tools = {t["name"]: t for t in record["toolchain"]}
    for name in ("rustc", "rustc driver", "cargo"):
        assert len(tools[name]["sha256"]) == 64 and tools[name]["path"].startswith("/kiln/rust/")
    assert tools["rustc"]["version"].startswith("rustc 1.")
    assert tools["cargo"]["version"].startswith("cargo 1.")
    assert record["hermetic"] is True, record["not_hermetic"]
    env = record["environment"]
    assert env["CARGO_NET_OFFLINE"] == "true"
    assert env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"] == "/kiln/toolchain/bin/cc"
    assert record["sandbox"]["network"].startswith("off")
    # The recipe's test imported the wheel and called the crate's function through it.
    assert record["test"]["ran"] and record["test"]["passed"]
    repro = record["repro"]
    assert repro["reproducible"] is True
    assert "build_path" in repro["variations"]
    assert "libfaketime deadlocks rustc" in repro["skipped"]["time"]

    with zipfile.ZipFile(wheel) as zf:
        [native] = [n for n in zf.namelist() if n.startswith("kiln_rust_demo/_native")]
        binary = zf.read(native)
    for host_path in (str(tmp_path), "/root/", "/kiln-rebuild"):
        assert host_path.encode() not in binary, f"{host_path} is in {native}"


@pytest.mark.slow
def test_a_maturin_program_builds_offline_and_a_host_build_uses_the_same_crates(
        run_kiln: RunKiln, tmp_path: Path, add_crate: PackedCrate) -> None:
    sdist = make_sdist(tmp_path / "sdists", "kiln-rust-cli", "1.0",
                       rust_cli_files(cargo_lock("kiln-rust-cli", (add_crate,))))
    recipe = tmp_path / "recipes" / "kiln-rust-cli.toml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    # maturin's SBOM (.dist-info/sboms) names the crate by its folder (path+file:///kiln/src/…),
    # which kiln fixes at /kiln/src but the rebuild's build_path variation moves.
    recipe.write_text(recipe_text(sdist, tests=(CLI_TEST,),
                                  extra='\n[repro]\nskip-variations = ["build_path"]\n'))
    with serve_crates((add_crate,)) as registry:
        run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wheelhouse",
                 env={"KILN_CRATES_URL": registry.template}, check=True)
        run_kiln("build", "--backend", "host", recipe, "-o", tmp_path / "host",
                 env={"KILN_CRATES_URL": registry.template}, check=True)
    assert len(registry.requests) == 1  # the host build found the crate in the cache
    [wheel] = (tmp_path / "wheelhouse").glob("*.whl")
    assert wheel.name.endswith("manylinux_2_17_x86_64.whl"), wheel.name
    record = json.loads(Path(f"{wheel}.build.json").read_text())
    assert [c["name"] for c in record["crates"]] == ["kiln-fixture-add"]
    assert record["hermetic"] is True and record["test"]["passed"] is True
    assert record["repro"]["reproducible"] is True
    [host_wheel] = (tmp_path / "host").glob("*.whl")
    host = json.loads(Path(f"{host_wheel}.build.json").read_text())
    assert host["crates"] == record["crates"] and host["test"]["passed"] is True
    assert host["environment"]["CARGO_NET_OFFLINE"] == "true"


def test_an_unreachable_registry_fails_before_the_build_naming_it_and_the_crate(
        run_kiln: RunKiln, tmp_path: Path, add_crate: PackedCrate) -> None:
    recipe = _rust_recipe(tmp_path, add_crate)
    registry = (tmp_path / "no-registry").as_uri() + "/{name}/{name}-{version}.crate"
    out = run_kiln("build", recipe, "-o", tmp_path / "wheelhouse",
                   env={"KILN_CRATES_URL": registry})
    assert out.returncode == 4, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    assert (f"crate kiln-fixture-add 0.1.0 from the crate registry "
            f"{(tmp_path / 'no-registry').as_uri()}/") in errors[0]
    assert "KILN_CRATES_URL" in out.stderr  # the hint
    assert not list((tmp_path / "wheelhouse").glob("*.whl"))
    assert not list((tmp_path / "wheelhouse").glob("**/*.build.json"))


def test_a_crate_that_is_not_what_cargo_lock_pins_is_refused(
        run_kiln: RunKiln, tmp_path: Path, add_crate: PackedCrate) -> None:
    recipe = _rust_recipe(tmp_path, add_crate)
    other = pack_crate(tmp_path / "other-registry", "kiln-fixture-add", "0.1.0",
                       {**ADD_CRATE, "src/lib.rs": "pub fn add(a: i64, b: i64) -> i64 { a - b }"})
    with serve_crates((other,)) as registry:
        out = run_kiln("build", recipe, "-o", tmp_path / "wheelhouse",
                       env={"KILN_CRATES_URL": registry.template})
    assert out.returncode == 5, out.stderr
    assert (f"crate kiln-fixture-add 0.1.0: the .crate file has sha256 {other.sha256}, but "
            f"Cargo.lock's checksum is {add_crate.sha256}") in " ".join(out.stderr.split())
    assert not list((tmp_path / "wheelhouse").glob("*.whl"))


def test_a_git_crate_is_refused_by_name_before_anything_is_fetched(
        run_kiln: RunKiln, tmp_path: Path, add_crate: PackedCrate) -> None:
    lock = cargo_lock("kiln-rust-demo", (add_crate,), extra=(
        '\n[[package]]\nname = "widget"\nversion = "0.3.0"\n'
        'source = "git+https://github.com/example/widget#0123456789abcdef"\n'))
    recipe = _rust_recipe(tmp_path, add_crate, lock=lock)
    with serve_crates((add_crate,)) as registry:
        out = run_kiln("build", recipe, "-o", tmp_path / "wheelhouse",
                       env={"KILN_CRATES_URL": registry.template})
    assert out.returncode == 64, out.stderr
    assert "crate widget 0.3.0 comes from git" in out.stderr
    assert registry.requests == []

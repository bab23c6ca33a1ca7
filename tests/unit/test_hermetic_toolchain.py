"""The hermetic toolchain's pure parts: the zig pin, the target triple, the wrappers, the
host tools it hides, cross refusals."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kiln.backends import hermetic
from kiln.errors import EnvironmentSetupError, UnsupportedError
from kiln.pep517 import BuildSystem
from kiln.repair import _meets
from kiln.toolchain import zig
from kiln.toolchain.sandbox import Sandbox
from kiln.toolchain.targets import TARGETS

SHA = "a" * 64


def test_shipped_pin_names_a_version_and_a_digest_per_host():
    pin = zig.zig_pin()
    assert pin.package == "ziglang"
    assert pin.version.count(".") >= 2
    hosts = dict(pin.wheels)
    assert {"linux-x86_64", "linux-aarch64"} <= set(hosts)
    assert pin.wheel_sha256(TARGETS["linux-x86_64"]) == hosts["linux-x86_64"]
    with pytest.raises(UnsupportedError, match="no pinned ziglang"):
        zig.ZigPin("ziglang", "1.0.0", (("linux-x86_64", SHA),)).wheel_sha256(
            TARGETS["linux-aarch64"])


@pytest.mark.parametrize(("text", "problem"), [
    ("[other]\n", "no \\[zig\\] table"),
    ('[zig]\npackage = "ziglang"\nversion = "latest"\n[zig.wheels]\nx = "' + SHA + '"\n',
     "version"),
    ('[zig]\npackage = "ziglang"\nversion = "0.15.2"\n[zig.wheels]\nx = "abc"\n',
     "not a sha256"),
    ('[zig]\npackage = "zig lang"\nversion = "0.15.2"\n[zig.wheels]\nx = "' + SHA + '"\n',
     "package"),
])
def test_a_bad_pin_is_refused_with_the_field(text, problem):
    with pytest.raises(EnvironmentSetupError, match=problem):
        zig.parse_pin(text)


def test_triples_follow_target_and_glibc():
    assert zig.zig_triple(TARGETS["linux-aarch64"], "2.17") == "aarch64-linux-gnu.2.17"
    assert zig.zig_triple(TARGETS["linux-x86_64"], "2.28") == "x86_64-linux-gnu.2.28"
    with pytest.raises(UnsupportedError, match="macos-arm64"):
        zig.zig_triple(TARGETS["macos-arm64"], "2.17")
    with pytest.raises(UnsupportedError, match="glibc"):
        zig.zig_triple(TARGETS["linux-aarch64"], "2.17; rm -rf /")


def test_wrappers_quote_every_path_and_carry_the_target(tmp_path):
    odd = tmp_path / "cache with space/$HOME/`x`"
    layout = zig.ZigLayout(str(odd / "ziglang-0.15.2"), str(odd / "zig-cache"), str(odd / "bin"))
    scripts = zig.wrapper_scripts(layout, "0.15.2", "aarch64-linux-gnu.2.17",
                                  ((str(odd / "python"), "/kiln/python"),))
    assert {"cc", "c++", "ar", "ranlib", "gcc", "g++", "ld"} <= set(scripts)
    assert shlex.split(scripts["ld"].splitlines()[-1])[2] == "ld.lld"  # zig's lld, by name
    for name, text in scripts.items():
        assert text.startswith("#!/bin/sh\n")
        exec_line = text.splitlines()[-1]
        words = shlex.split(exec_line)  # what sh will see: no expansion inside quotes
        assert words[0] == "exec"
        assert words[1] == f"{layout.install}/ziglang/zig"
        assert words[-1] == "$@"
        if name in ("cc", "gcc", "c++", "g++"):
            assert words[3:5] == ["-target", "aarch64-linux-gnu.2.17"]
            assert "-fno-sanitize=undefined" in words
            assert (f"-ffile-prefix-map={layout.install}/ziglang/lib="
                    f"{zig.ZIG_INSIDE}/ziglang/lib") in words
            assert f"-ffile-prefix-map={odd / 'zig-cache'}={zig.ZIG_CACHE_INSIDE}" in words
            assert f"-ffile-prefix-map={odd / 'python'}=/kiln/python" in words
    assert shlex.split(scripts["ar"].splitlines()[-1])[2] == "ar"
    exports = [line for line in scripts["cc"].splitlines() if line.startswith("ZIG_GLOBAL")]
    assert shlex.split(exports[0])[0] == f"ZIG_GLOBAL_CACHE_DIR={odd / 'zig-cache'}"
    # zig's own runtime compiles (libc++ …) get a fixed debug folder through clang's edits;
    # a folder with a space in its name cannot travel there, and is left out.
    edits = next(line for line in scripts["cc"].splitlines()
                 if line.startswith("CCC_OVERRIDE_OPTIONS="))
    value = shlex.split(edits)[0].split("=", 1)[1]
    assert value.split()[:2] == ["#", "+-fdebug-compilation-dir=."]
    assert "export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR CCC_OVERRIDE_OPTIONS" in scripts["cc"]
    plain = zig.wrapper_scripts(zig.ZigLayout("/opt/zig", "/var/cache/zig", "/opt/bin"),
                                "0.15.2", "x86_64-linux-gnu.2.17")["c++"]
    assert "+-ffile-prefix-map=/opt/zig/ziglang/lib=/kiln/toolchain/zig/ziglang/lib" in plain


def test_wrappers_at_fixed_paths_need_no_prefix_maps():
    scripts = zig.wrapper_scripts(zig.ZigLayout.fixed(), "0.15.2", "x86_64-linux-gnu.2.17")
    assert "-ffile-prefix-map" not in scripts["cc"]
    assert f"exec {zig.ZIG_INSIDE}/ziglang/zig cc -target x86_64-linux-gnu.2.17" in scripts["cc"]


def test_cmake_toolchain_names_the_target_only_when_cross(tmp_path):
    bin_dir = str(tmp_path / 'a "quoted" $dir')
    cross = zig.cmake_toolchain(bin_dir, TARGETS["linux-aarch64"], True)
    assert "set(CMAKE_SYSTEM_NAME Linux)" in cross
    assert "set(CMAKE_SYSTEM_PROCESSOR aarch64)" in cross
    assert '\\"quoted\\" \\$dir/cc"' in cross
    # FindPython (CMake 4.1, CMP0190) runs the interpreter through kiln's emulator.
    assert '\\"quoted\\" \\$dir/cross-emulator")' in cross
    assert "set(CMAKE_CROSSCOMPILING_EMULATOR " in cross
    native = zig.cmake_toolchain(bin_dir, TARGETS["linux-x86_64"], False)
    assert "CMAKE_SYSTEM_NAME" not in native
    assert "CMAKE_CROSSCOMPILING_EMULATOR" not in native
    assert "CMAKE_C_COMPILER" in native


def test_the_pin_digest_is_the_same_from_every_host():
    pin = zig.zig_pin()
    assert zig.pin_digest(pin) == zig.pin_digest(zig.ZigPin(pin.package, pin.version,
                                                            tuple(reversed(pin.wheels))[::-1]))
    other = zig.ZigPin(pin.package, "0.16.0", pin.wheels)
    assert zig.pin_digest(other) != zig.pin_digest(pin)


class _Job:
    label = "demo 1.0 (cp311, linux-aarch64)"
    target = TARGETS["linux-aarch64"]


@pytest.mark.parametrize(("backend", "requires", "why"), [
    ("maturin", ("maturin>=1",), "Rust"),
    ("setuptools.build_meta", ("setuptools", "setuptools_rust>=1.5"), "setuptools-rust"),
])
def test_backends_kiln_cannot_cross_configure_are_refused(backend, requires, why):
    with pytest.raises(UnsupportedError, match=why) as caught:
        hermetic.refuse_cross_backend(BuildSystem(requires, backend, ()), _Job())  # type: ignore[arg-type]
    assert "cibuildwheel" in (caught.value.hint or "")


@pytest.mark.parametrize("backend", ["setuptools.build_meta", "setuptools.build_meta:__legacy__",
                                     "scikit_build_core.build", "hatchling.build", "mesonpy"])
def test_backends_that_cross_compile_pass(backend):
    hermetic.refuse_cross_backend(BuildSystem(("setuptools",), backend, ()), _Job())  # type: ignore[arg-type]


def test_a_log_that_ran_a_target_binary_is_recognised(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("compiling\nOSError: [Errno 8] Exec format error: './gen'\n")
    assert hermetic.ran_target_binary(log)
    log.write_text("error: too many arguments\n")
    assert not hermetic.ran_target_binary(log)
    assert not hermetic.ran_target_binary(tmp_path / "missing.log")


def test_manylinux_policy_is_met_by_older_glibc_of_the_same_arch():
    assert _meets(("manylinux2014_aarch64", "manylinux_2_17_aarch64"), "manylinux_2_17_aarch64")
    assert _meets(("manylinux_2_5_x86_64",), "manylinux_2_17_x86_64")
    assert not _meets(("manylinux_2_28_aarch64",), "manylinux_2_17_aarch64")
    assert not _meets(("manylinux_2_17_x86_64",), "manylinux_2_17_aarch64")
    assert not _meets(("linux_aarch64",), "manylinux_2_17_aarch64")


def test_writable_paths_are_bound_writable_where_they_are(tmp_path, monkeypatch):
    import kiln.toolchain.sandbox

    monkeypatch.setattr(kiln.toolchain.sandbox, "bwrap_path", lambda: Path("/usr/bin/bwrap"))
    monkeypatch.setattr(kiln.toolchain.sandbox, "pid_namespace_works", lambda: True)
    cache = tmp_path / "zig-cache"
    argv = Sandbox(binds=(), tmp=tmp_path / "tmp", writable=(cache,)).wrap(["true"])
    i = argv.index(str(cache))
    assert argv[i - 1] == "--bind" and argv[i + 1] == str(cache)
    assert argv.index(str(cache)) > argv.index("/tmp")  # after /tmp, so it shows through


def test_hermetic_takes_the_recipe_targets_it_can_build(tmp_path):
    from kiln.pipeline import BuildOptions, _targets
    from kiln.recipe import parse_recipe

    recipe = parse_recipe(f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{SHA}"
[build]
targets = ["linux-x86_64", "linux-aarch64", "linux-ppc64le", "macos-arm64"]
""", tmp_path / "demo.toml")
    chosen, skipped = _targets(recipe, BuildOptions(), "hermetic")
    assert [t.name for t in chosen] == ["linux-x86_64", "linux-aarch64"]
    assert dict(skipped).keys() == {"linux-ppc64le", "macos-arm64"}
    assert "cibuildwheel" in dict(skipped)["linux-ppc64le"]


def test_x86_wrappers_let_target_attributes_turn_features_on(tmp_path, monkeypatch):
    def edits(triple: str) -> list[str]:
        text = zig.wrapper_scripts(zig.ZigLayout.fixed(), "0.15.2", triple)["cc"]
        line = next(x for x in text.splitlines() if x.startswith("CCC_OVERRIDE_OPTIONS="))
        return shlex.split(line)[0].split("=", 1)[1].split()

    x86 = edits("x86_64-linux-gnu.2.17")
    for feature in ("crc32", "popcnt", "xsave", "evex512"):
        assert f"s/^-{feature}$/-avx512f/" in x86
    assert not [e for e in edits("aarch64-linux-gnu.2.17") if e.startswith("s/")]
    # zig's cache keys leave the edits out: other edits, another cache folder.
    root = zig.zig_cache_root(tmp_path)
    assert root.parent == tmp_path and root.name.startswith("zigcache-")
    monkeypatch.setattr(zig, "X86_FEATURE_EDITS", ())
    assert zig.zig_cache_root(tmp_path) != root


class _RustJob:
    target = TARGETS["linux-x86_64"]
    crates = object()  # fetched crates: the sdist has Rust


def _fake_rust(tmp_path, monkeypatch):
    from kiln.toolchain.rust import RustToolchain

    sysroot = tmp_path / "toolchains" / "stable"
    (sysroot / "lib" / "rustlib" / "x86_64-unknown-linux-gnu" / "lib").mkdir(parents=True)
    rust = RustToolchain(sysroot=sysroot, rustc_version="rustc 1.95.0 (59807616e 2026-04-14)",
                         commit="5980", cargo_version="cargo 1.95.0", rustc_sha256="1" * 64,
                         driver_sha256="2" * 64, cargo_sha256="3" * 64)
    monkeypatch.setattr(hermetic, "find_rust", lambda: rust)
    return rust


def test_rust_is_bound_at_a_fixed_path_and_links_with_zigs_cc(tmp_path, monkeypatch):
    rust = _fake_rust(tmp_path, monkeypatch)
    parts = hermetic.rust_parts(_RustJob(), True, "/kiln/toolchain/bin",  # type: ignore[arg-type]
                                "/kiln/toolchain/bin")
    env = dict(parts.env)
    assert env["RUSTC"] == "/kiln/rust/bin/rustc" and env["CARGO"] == "/kiln/rust/bin/cargo"
    assert env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"] == "/kiln/toolchain/bin/cc"
    assert env["CC_x86_64_unknown_linux_gnu"] == "/kiln/toolchain/bin/cc"
    assert [(b.host, b.inside, b.writable) for b in parts.binds] == [
        (rust.sysroot, "/kiln/rust", False)]
    assert parts.tool_dirs == ("/kiln/rust/bin",)
    assert [t.name for t in parts.tools] == ["rustc", "rustc driver", "cargo"]


def test_without_bubblewrap_rust_is_remapped_and_the_build_id_names_no_host_path(
        tmp_path, monkeypatch):
    rust = _fake_rust(tmp_path, monkeypatch)
    seen_bin = str(tmp_path / "wrappers")
    parts = hermetic.rust_parts(_RustJob(), False, seen_bin,  # type: ignore[arg-type]
                                "/kiln/toolchain/bin")
    assert dict(parts.env)["RUSTC"] == f"{rust.sysroot}/bin/rustc"
    assert parts.maps == ((str(rust.sysroot), "/kiln/rust"),)
    assert parts.binds == () and parts.visible == (rust.sysroot,)
    identity = dict(parts.identity)
    assert identity["RUSTC"] == "/kiln/rust/bin/rustc"
    assert identity["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"] == "/kiln/toolchain/bin/cc"
    assert identity["rustc"] == "1" * 64 and identity["rust target"] == "x86_64-unknown-linux-gnu"
    assert str(tmp_path) not in repr(parts.identity)


def test_a_job_without_rust_adds_nothing():
    class _Plain:
        crates = None

    assert hermetic.rust_parts(_Plain(), True, "/b", "/b") == hermetic.RustParts()  # type: ignore[arg-type]


def test_a_rust_toolchain_in_usr_is_refused_rather_than_showing_the_hosts_compilers(
        tmp_path, monkeypatch):
    import dataclasses

    rust = _fake_rust(tmp_path, monkeypatch)
    in_usr = dataclasses.replace(rust, sysroot=Path("/usr"))
    monkeypatch.setattr(hermetic, "find_rust", lambda: in_usr)
    with pytest.raises(UnsupportedError, match="holds the host's other compilers") as caught:
        hermetic.rust_parts(_RustJob(), True, "/b", "/b")  # type: ignore[arg-type]
    assert "rustup" in (caught.value.hint or "")


def test_the_wrappers_edits_of_a_compile_are_part_of_its_identity(monkeypatch):
    """A change in how the wrappers rewrite a compile's arguments changes what it makes, so
    it changes every key built on the toolchain's identity (builds, libraries)."""
    x86 = dict(zig.compile_identity("x86_64-linux-gnu.2.17"))
    arm = dict(zig.compile_identity("aarch64-linux-gnu.2.17"))
    assert x86["wrappers"] != arm["wrappers"]  # only aarch64's rewrite -march
    monkeypatch.setattr(zig, "CPU_NAME_EDIT", zig.CPU_NAME_EDIT.replace("-mtune=*", "-mtune=x"))
    assert dict(zig.compile_identity("x86_64-linux-gnu.2.17"))["wrappers"] != x86["wrappers"]

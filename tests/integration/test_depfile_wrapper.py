"""The zig wrappers take a dependency file's options off a plain compile (zig caches no
compile that writes its own) and write the file themselves; anything else is passed on as
given. A fake zig records the arguments it gets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kiln.toolchain import zig

FAKE_ZIG = """#!/bin/sh
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" > "$ZIG_ARGS"
"""


def _compiler(tmp_path: Path, triple: str):  # type: ignore[no-untyped-def]
    install = tmp_path / "zig"
    (install / "ziglang").mkdir(parents=True)
    (install / "ziglang" / "zig").write_text(FAKE_ZIG)
    (install / "ziglang" / "zig").chmod(0o755)
    layout = zig.ZigLayout(str(install), str(tmp_path / "cache"), str(tmp_path / "bin"))
    script = tmp_path / "cc"
    script.write_text(zig.wrapper_scripts(layout, "0.15.2", triple)["cc"])
    script.chmod(0o755)
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)

    def run(*args: str) -> list[str]:
        seen = tmp_path / "args.json"
        subprocess.run([str(script), *args], cwd=work, check=True,
                       env={"PATH": "/usr/bin:/bin", "ZIG_ARGS": str(seen)})
        given = json.loads(seen.read_text())
        # what the wrapper always adds: "cc -target … -fno-sanitize=undefined" and, as this
        # zig is not at its fixed path, prefix maps
        assert given[:4] == ["cc", "-target", triple, "-fno-sanitize=undefined"], given
        return [a for a in given[4:] if not a.startswith("-ffile-prefix-map=")]

    run.work = work  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cc(tmp_path: Path):
    return _compiler(tmp_path, "x86_64-linux-gnu.2.17")


@pytest.fixture
def aarch64_cc(tmp_path: Path):
    return _compiler(tmp_path, "aarch64-linux-gnu.2.17")


@pytest.fixture
def ar(tmp_path: Path):
    install = tmp_path / "zig"
    (install / "ziglang").mkdir(parents=True)
    (install / "ziglang" / "zig").write_text(FAKE_ZIG)
    (install / "ziglang" / "zig").chmod(0o755)
    layout = zig.ZigLayout(str(install), str(tmp_path / "cache"), str(tmp_path / "bin"))
    script = tmp_path / "ar"
    script.write_text(zig.wrapper_scripts(layout, "0.15.2", "x86_64-linux-gnu.2.17")["ar"])
    script.chmod(0o755)

    def run(*args: str) -> list[str]:
        seen = tmp_path / "args.json"
        subprocess.run([str(script), *args], cwd=tmp_path, check=True,
                       env={"PATH": "/usr/bin:/bin", "ZIG_ARGS": str(seen)})
        given = json.loads(seen.read_text())
        assert given[0] == "ar", given
        return given[1:]

    return run


@pytest.mark.parametrize(("args", "expected"), [
    (("csrDT", "lib.a", "a.o", "b.o"), ["csrD", "lib.a", "a.o", "b.o"]),   # meson's
    (("-rcT", "lib.a", "T.o"), ["-rc", "lib.a", "T.o"]),                    # only the operation
    (("rc", "--thin", "lib.a", "a.o"), ["rc", "lib.a", "a.o"]),
    (("qc", "lib.a", "a.o"), ["qc", "lib.a", "a.o"]),                       # CMake's, untouched
    (("--format=gnu", "rcs", "lib.a"), ["--format=gnu", "rcs", "lib.a"]),
])
def test_the_archiver_makes_no_thin_archive(ar, args, expected):
    assert ar(*args) == expected


def test_gccs_cpu_names_reach_zig_as_zigs_own(cc):
    """zig reads -march=x86-64-v3 as "CPU x86, minus feature 64-v3" and stops; its name is
    x86_64_v3. -mtune goes: zig would compile for the CPU it names, not only tune for it.
    "native" goes too: the build machine's CPU is no part of a wheel."""
    given = cc("-march=x86-64-v3", "-mtune=generic", "-mcpu=cortex-a72", "-march=native",
               "-mtune=skylake-avx512", "-mtune=native", "-mcpu=native", "-DNAME=a-b c", "-c",
               "src/a.c", "-o", "a.o")
    assert given == ["-march=x86_64_v3", "-mcpu=cortex_a72", "-DNAME=a-b c", "-c", "src/a.c",
                     "-o", "a.o"]


@pytest.mark.parametrize(("given", "expected"), [
    ("-march=armv8-a", "-mcpu=generic"),
    ("-march=armv8-a+crc", "-mcpu=generic+crc"),
    ("-march=armv8.2-a+sve+nofp16", "-mcpu=generic+v8_2a+sve-fullfp16"),
    ("-march=armv8.2-a+fp16+dotprod", "-mcpu=generic+v8_2a+fullfp16+dotprod"),
    ("-march=armv9-a+sve2-bitperm+memtag", "-mcpu=generic+v9a+sve2_bitperm+mte"),
    ("-march=armv8.4-a+nosimd+rng", "-mcpu=generic+v8_4a-neon+rand"),
])
def test_gccs_aarch64_architectures_reach_zig_as_a_cpu_with_features(aarch64_cc, given,
                                                                    expected):
    """zig takes no -march for aarch64: it lists its CPUs and stops. The aarch64 wrappers
    give the architecture as zig's generic CPU with the version and extensions as features,
    and to the assembler (a .S file's, which zig's CPU model does not reach) as GCC's."""
    assert aarch64_cc(given, "-mtune=cortex-a72", "-c", "src/a.S", "-o", "a.o") == \
        [expected, f"-Wa,{given}", "-c", "src/a.S", "-o", "a.o"]


def test_the_x86_64_wrappers_leave_an_arm_architecture_alone(cc):
    """An x86-64 compile that names armv8-a is wrong already; zig says so, not kiln."""
    assert cc("-march=armv8-a+crc", "-c", "src/a.c", "-o", "a.o") == \
        ["-march=armv8_a+crc", "-c", "src/a.c", "-o", "a.o"]

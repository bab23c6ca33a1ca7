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


@pytest.fixture
def cc(tmp_path: Path):
    install = tmp_path / "zig"
    (install / "ziglang").mkdir(parents=True)
    (install / "ziglang" / "zig").write_text(FAKE_ZIG)
    (install / "ziglang" / "zig").chmod(0o755)
    layout = zig.ZigLayout(str(install), str(tmp_path / "cache"), str(tmp_path / "bin"))
    script = tmp_path / "cc"
    script.write_text(zig.wrapper_scripts(layout, "0.15.2", "x86_64-linux-gnu.2.17")["cc"])
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
        assert given[:4] == ["cc", "-target", "x86_64-linux-gnu.2.17",
                             "-fno-sanitize=undefined"], given
        return [a for a in given[4:] if not a.startswith("-ffile-prefix-map=")]

    run.work = work  # type: ignore[attr-defined]
    return run


def test_meson_and_cmake_compiles_reach_zig_without_their_dependency_file(cc):
    # meson: -MD -MQ target -MF file
    given = cc("-Isrc", "-O2", "-MD", "-MQ", "src/a.c.o", "-MF", "src/a.c.o.d", "-o",
               "src/a.c.o", "-c", "../src/a.c")
    assert given == ["-Isrc", "-O2", "-o", "src/a.c.o", "-c", "../src/a.c"]
    assert (cc.work / "src" / "a.c.o.d").read_text() == "src/a.c.o: ../src/a.c\n"
    # CMake: -MD -MT target -MF file, the source last
    (cc.work / "x.dir").mkdir()
    given = cc("-fPIC", "-MD", "-MT", "x.dir/b.cc.o", "-MF", "x.dir/b.cc.o.d", "-o",
               "x.dir/b.cc.o", "-c", "/kiln/src/b.cc")
    assert given == ["-fPIC", "-o", "x.dir/b.cc.o", "-c", "/kiln/src/b.cc"]
    assert (cc.work / "x.dir" / "b.cc.o.d").read_text() == "x.dir/b.cc.o: /kiln/src/b.cc\n"


def test_joined_options_and_a_default_dependency_file_name(cc):
    (cc.work / "obj").mkdir()
    given = cc("-MMD", "-MP", "-MTobj/c.o", "-c", "c.c", "-o", "obj/c.o", "-DX=1")
    assert given == ["-c", "c.c", "-o", "obj/c.o", "-DX=1"]
    # no -MF: next to the object, as gcc names it
    assert (cc.work / "obj" / "c.d").read_text() == "obj/c.o: c.c\n"


@pytest.mark.parametrize("args", [
    ("-MD", "-MF", "a.d", "-E", "a.c", "-o", "a.i"),             # not a compile to an object
    ("-MD", "-MF", "a.d", "-c", "a.c", "b.c"),                    # two sources
    ("-Wp,-MD,a.d", "-c", "a.c", "-o", "a.o"),                    # the preprocessor's own
    ("-MD", "-MF", "a.d", "-x", "c", "-c", "a.txt", "-o", "a.o"),  # a language by name
    ("-MD", "-MT", "a o", "-MF", "a.d", "-c", "a.c", "-o", "a.o"),  # a target make would split
    ("-c", "a.c", "-o", "a.o"),                                  # no dependency file asked for
])
def test_anything_else_is_passed_on_as_given(cc, args):
    assert cc(*args) == list(args)
    assert not (cc.work / "a.d").exists()


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
    x86_64_v3. -mtune=generic is no CPU zig knows, and asks for nothing."""
    given = cc("-march=x86-64-v3", "-mtune=generic", "-mcpu=cortex-a72", "-march=native",
               "-mtune=skylake-avx512", "-DNAME=a-b c", "-c", "src/a.c", "-o", "a.o")
    assert given == ["-march=x86_64_v3", "-mcpu=cortex_a72", "-march=native",
                     "-mtune=skylake_avx512", "-DNAME=a-b c", "-c", "src/a.c", "-o", "a.o"]

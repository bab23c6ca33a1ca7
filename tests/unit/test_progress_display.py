"""What a long build shows while the compiler runs: heartbeats per build, files compiled,
and a line even while the tool is silent. The clock is passed in; nothing runs."""

from __future__ import annotations

import io
import threading
import time

import pytest
from rich.console import Console

from kiln.cli import console
from kiln.cli.console import TerminalReporter, summarise
from kiln.progress import (
    Expectation,
    PrefixedReporter,
    compiles_in,
    last_build,
    remember_build,
)

GCC = ("/kiln/env/bin/kiln-c++ -Wsign-compare -DNDEBUG -g -fwrapv -O3 -Wall -fPIC "
       "-DGRPC_XDS=1 -Iinclude -I/root/.pyenv/versions/3.11.7/include/python3.11 "
       "-c src/core/lib/surface/call.cc -o pyb/temp/src/core/lib/surface/call.o -std=c++17")


@pytest.fixture
def screen(monkeypatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=buffer, width=300, force_terminal=False))
    return buffer


def reporter() -> TerminalReporter:
    shown = TerminalReporter()
    shown.tty = False
    shown._start_ticker = lambda: None  # type: ignore[method-assign]  # the test ticks
    return shown


@pytest.mark.parametrize(("line", "expected"), [
    (GCC, ("compile", "src/core/lib/surface/call.cc")),
    ("[rebuild] " + GCC, ("compile", "src/core/lib/surface/call.cc")),
    ("gcc -pthread -shared build/a.o build/b.o -L/usr/lib -o build/lib/grpc/_cython/"
     "cygrpc.cpython-311-x86_64-linux-gnu.so", ("link", "cygrpc.cpython-311-x86_64-linux-gnu.so")),
    ("   Compiling pyo3-ffi v0.25.1", ("compile", "pyo3-ffi v0.25.1")),
    ("[181/476] Compiling C object numpy/_core/libloops.a.p/loops.c.o",
     ("compile", "numpy/_core/libloops.a.p/loops.c.o [181/476]")),
    ("[2/3] Building C object CMakeFiles/_zmq.dir/_src/_zmq.c.o",
     ("compile", "CMakeFiles/_zmq.dir/_src/_zmq.c.o [2/3]")),
    ("[300/476] Generating numpy/_core/__umath_generated", ("", "[300/476] Generating "
                                                           "numpy/_core/__umath_generated")),
    ("Compiling C object numpy/_core/x.c.o", ("compile", "numpy/_core/x.c.o")),
    ("python -c 'import x'", ("", "python -c 'import x'")),
    ("In file included from ./src/core/lib/promise/activity.h:30,",
     ("", "In file included from ./src/core/lib/promise/activity.h:30,")),
])
def test_log_lines_are_summarised(line, expected):
    assert summarise(line) == expected


def test_heartbeat_counts_compiles_and_names_the_current_file(screen):
    shown = reporter()
    shown.stage("build", "grpcio 1.85.3 (cp311, linux-x86_64)")
    started = time.monotonic()
    shown.command(["python", "-m", "build"])
    for _ in range(3):
        shown.output(GCC)
    shown.output("warning: something")
    shown.tick(started + 10)  # before the first heartbeat is due
    assert "…" not in screen.getvalue()
    shown.tick(started + 31)
    beat = screen.getvalue().splitlines()[-1]
    assert "build grpcio 1.85.3 (cp311, linux-x86_64): 31 s, 3 files compiled, 4 log lines" \
        in beat
    assert beat.endswith("last: warning: something")


def test_a_silent_tool_still_gets_heartbeats(screen):
    shown = reporter()
    shown.stage("build", "grpcio")
    started = time.monotonic()
    shown.command(["cc"])
    shown.output(GCC.replace("call.cc", "huge.cc"))
    shown.tick(started + 200)  # no output for minutes: a long compile or the final link
    beat = screen.getvalue().splitlines()[-1]
    assert "3m20s" in beat and "no output for 3m" in beat and "compiling src/core/lib/surface/" \
        "huge.cc" in beat


def test_no_heartbeat_once_the_tool_has_finished(screen):
    shown = reporter()
    shown.stage("test", "demo")
    started = time.monotonic()
    shown.command(["python", "-c", "pass"])
    shown.finished(["python", "-c", "pass"], 0, 0.1)
    shown.tick(started + 100)
    assert "…" not in screen.getvalue()


def test_a_build_and_its_rebuild_each_get_their_own_heartbeat(screen):
    shown = reporter()
    # Both builds alive at once, as in kiln's thread pool (a finished thread's id is reused).
    working, done = threading.Barrier(3), threading.Event()

    def build(label: str | None) -> None:
        target = PrefixedReporter(shown, label) if label else shown
        target.stage("build", "grpcio (cp311)")
        target.command(["cc"])
        target.output(GCC.replace("call.cc", f"{label or 'first'}.cc"))
        working.wait()
        done.wait()

    workers = [threading.Thread(target=build, args=(label,)) for label in (None, "rebuild")]
    for worker in workers:
        worker.start()
    working.wait()
    shown.tick(time.monotonic() + 31)
    done.set()
    for worker in workers:
        worker.join()
    beats = [line for line in screen.getvalue().splitlines() if "…" in line]
    assert len(beats) == 2
    assert any("build grpcio (cp311):" in b and "first.cc" in b for b in beats)
    assert any("build [rebuild] grpcio (cp311):" in b and "rebuild.cc" in b for b in beats)


def test_progress_counts_against_the_last_build_and_splits_new_from_cached(screen):
    shown = reporter()
    shown.stage("build", "grpcio 1.85.3 (cp312, linux-x86_64)")
    started = time.monotonic()
    shown.expect(Expectation("1.85.2", 600.0, 100), lambda: 7)
    shown.command(["python", "-m", "build"])
    for _ in range(20):
        shown.output(GCC)
    shown.tick(started + 60)
    beat = screen.getvalue().splitlines()[-1]
    # 20 of the last build's 100 compiles in a minute: four more minutes at this pace.
    assert "20 of ~100 files compiled (7 new, 13 from the cache)" in beat
    assert "about 4m00s left (the last build, 1.85.2: 10m00s)" in beat


def test_before_any_compile_the_estimate_is_the_last_build_time(screen):
    shown = reporter()
    shown.stage("build", "demo")
    started = time.monotonic()
    shown.expect(Expectation("1.0", 600.0, 0), None)
    shown.command(["cc"])
    shown.tick(started + 100)
    beat = screen.getvalue().splitlines()[-1]
    assert "about 8m" in beat and "s left (the last build, 1.0: 10m00s)" in beat


def test_ninja_gives_the_total_itself(screen):
    shown = reporter()
    shown.stage("build", "numpy")
    started = time.monotonic()
    shown.expect(None, lambda: 12)  # every compile made a new object
    shown.command(["ninja"])
    for i in range(1, 13):
        shown.output(f"[{i}/48] Compiling C object numpy/_core/x{i}.c.o")
    shown.output("[13/48] Generating numpy/_core/__umath_generated")
    shown.tick(started + 31)
    beat = screen.getvalue().splitlines()[-1]
    # 13 of 48 steps in 31 s: 35 more take about 83 s.
    assert "13 of 48 steps (12 new, 0 from the cache), about 1m2" in beat


def test_the_last_build_is_remembered_per_recipe_python_and_target(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("\n".join([GCC, "warning: x", GCC.replace("call.cc", "b.cc"),
                              "[3/9] Compiling C object y.c.o"]) + "\n")
    assert compiles_in(log) == 3
    assert last_build(tmp_path, "grpcio", "3.12", "linux-x86_64") is None
    remember_build(tmp_path, "grpcio", "3.12", "linux-x86_64",
                   Expectation("1.85.3", 1500.5, compiles_in(log)))
    assert last_build(tmp_path, "grpcio", "3.12", "linux-x86_64") == \
        Expectation("1.85.3", 1500.5, 3)
    assert last_build(tmp_path, "grpcio", "3.11", "linux-x86_64") is None


def test_a_build_is_told_its_last_time_and_counts_its_new_objects(tmp_path):
    from types import SimpleNamespace

    from kiln.build import _expect
    from kiln.progress import reporting

    class Listener:
        def expect(self, last, compiled):  # type: ignore[no-untyped-def]
            self.last, self.compiled = last, compiled

    chain = tmp_path / "zigcache" / "build"
    (chain / "o" / "old").mkdir(parents=True)
    remember_build(tmp_path, "demo", "3.12", "linux-x86_64", Expectation("0.9", 42.0, 5))
    job = SimpleNamespace(cache=tmp_path, recipe=SimpleNamespace(project="demo"),
                          interpreter=SimpleNamespace(minor="3.12"),
                          target=SimpleNamespace(name="linux-x86_64"))
    listener = Listener()
    with reporting(listener):  # type: ignore[arg-type]
        _expect(job, SimpleNamespace(compile_cache=chain))  # type: ignore[arg-type]
    assert listener.last == Expectation("0.9", 42.0, 5)
    assert listener.compiled() == 0
    (chain / "o" / "new1").mkdir()
    (chain / "o" / "new2").mkdir()
    assert listener.compiled() == 2

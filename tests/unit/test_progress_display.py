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
from kiln.progress import PrefixedReporter

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

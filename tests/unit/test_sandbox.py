"""The sandbox's command line: what bubblewrap is told, or unshare when it is missing.

Each guarantee the record relies on is a flag here: no network, fixed paths, a private
/tmp, host tools hidden from a hermetic build. These tests read the argv kiln builds; the
integration tests (test_observed.py, test_hermetic.py) check what a build then sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kiln.toolchain.sandbox as sandbox
from kiln.toolchain.sandbox import Bind, Sandbox


@pytest.fixture
def bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: Path("/usr/bin/bwrap"))
    monkeypatch.setattr(sandbox, "pid_namespace_works", lambda: True)


def _after(argv: list[str], flag: str) -> list[list[str]]:
    """Every (arg1, arg2) that follows ``flag`` in ``argv``."""
    return [argv[i + 1:i + 3] for i, a in enumerate(argv) if a == flag]


def test_no_network_unless_asked_and_the_command_comes_last(bwrap, tmp_path):
    box = Sandbox(binds=(), tmp=tmp_path / "tmp", hostname="kiln")
    argv = box.wrap(["python", "-c", "pass"], cwd="/kiln/src")
    assert argv[0] == "/usr/bin/bwrap"
    assert "--unshare-net" in argv and "--die-with-parent" in argv
    assert "--unshare-uts" in argv and "--unshare-ipc" in argv
    assert "--unshare-pid" in argv  # so nothing the build starts outlives it
    assert argv[argv.index("--hostname") + 1] == "kiln"
    assert argv[argv.index("--chdir") + 1] == "/kiln/src"
    assert argv[-4:] == ["--", "python", "-c", "pass"]
    assert "--unshare-net" not in box.wrap(["true"], network=True)


def test_the_host_is_read_only_and_tmp_is_private(bwrap, tmp_path):
    argv = Sandbox(binds=(), tmp=tmp_path / "tmp").wrap(["true"])
    ro = _after(argv, "--ro-bind")
    assert ["/usr", "/usr"] in ro
    assert not any(pair == ["/usr", "/usr"] for pair in _after(argv, "--bind"))
    assert [str(tmp_path / "tmp"), "/tmp"] in _after(argv, "--bind")
    # /tmp, /proc and /dev are never the host's own
    assert ["/tmp", "/tmp"] not in ro and ["/proc", "/proc"] not in ro


def test_binds_are_writable_only_when_they_say_so(bwrap, tmp_path):
    box = Sandbox(binds=(Bind(tmp_path / "src", "/kiln/src"),
                         Bind(tmp_path / "zig", "/kiln/toolchain/zig", writable=False)),
                  tmp=tmp_path / "tmp", writable=(tmp_path / "cache",))
    argv = box.wrap(["true"])
    assert [str(tmp_path / "src"), "/kiln/src"] in _after(argv, "--bind")
    assert [str(tmp_path / "zig"), "/kiln/toolchain/zig"] in _after(argv, "--ro-bind")
    assert [str(tmp_path / "zig"), "/kiln/toolchain/zig"] not in _after(argv, "--bind")
    assert [str(tmp_path / "cache"), str(tmp_path / "cache")] in _after(argv, "--bind")
    assert box.inside(tmp_path / "src" / "pkg") == "/kiln/src/pkg"
    assert box.inside(tmp_path / "tmp" / "x") == "/tmp/x"


def test_hidden_files_become_the_stub_and_hidden_folders_empty(bwrap, tmp_path):
    tool = tmp_path / "usr-bin-gcc"
    tool.write_text("#!/bin/sh\n")
    headers = tmp_path / "include"
    headers.mkdir()
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\nexit 127\n")
    box = Sandbox(binds=(Bind(tmp_path / "src", "/kiln/src"),), tmp=tmp_path / "tmp",
                  hidden=(tool, headers, tmp_path / "absent"), stub=stub)
    argv = box.wrap(["true"])
    assert [str(stub), str(tool)] in _after(argv, "--ro-bind")
    assert argv[argv.index("--tmpfs", argv.index(str(headers)) - 1) + 1] == str(headers)
    assert [str(headers), "--remount-ro"] in _after(argv, "--tmpfs")
    assert str(tmp_path / "absent") not in argv
    # Hidden after the host's root is bound (else the root would show them again), and
    # before kiln's own binds (so a bind at a fixed path is never hidden).
    last_root = max(i for i, a in enumerate(argv) if a == "/usr")
    assert last_root < argv.index(str(tool)) < argv.index("/kiln/src")


def test_without_bubblewrap_the_network_is_cut_with_unshare(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(sandbox, "_unshare_flags", lambda: ("/usr/bin/unshare", "--net"))
    box = Sandbox(binds=(Bind(tmp_path / "src", "/kiln/src"),), tmp=tmp_path / "tmp")
    assert box.wrap(["true"]) == ["/usr/bin/unshare", "--net", "true"]
    assert box.wrap(["true"], network=True) == ["true"]
    assert box.inside(tmp_path / "src") == str(tmp_path / "src")  # no fixed paths
    monkeypatch.setattr(sandbox, "_unshare_flags", lambda: ())
    assert box.wrap(["true"]) == ["true"]


def test_no_pid_namespace_where_bubblewrap_cannot_make_one(bwrap, monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "pid_namespace_works", lambda: False)
    argv = Sandbox(binds=(), tmp=tmp_path).wrap(["true"])
    assert "--unshare-pid" not in argv and "--unshare-net" in argv


def test_the_network_note_says_which_isolation(monkeypatch, tmp_path):
    box = Sandbox(binds=(), tmp=tmp_path)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: Path("/usr/bin/bwrap"))
    monkeypatch.setattr(sandbox, "bwrap_version", lambda: "bubblewrap 0.8.0")
    assert box.network_note() == "off (bubblewrap 0.8.0 --unshare-net)"
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(sandbox, "unshare_net_works", lambda: True)
    assert box.network_note() == "off (unshare --net)"
    monkeypatch.setattr(sandbox, "unshare_net_works", lambda: False)
    assert box.network_note().startswith("NOT isolated")

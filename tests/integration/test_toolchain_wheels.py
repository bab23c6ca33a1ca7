"""Toolchain wheels (zig, pkg-config, cmake, ninja) installed once into kiln's cache by their
pinned sha256, and installed again when the program they are for changed behind kiln's back.
Offline: pkgconf is among the wheels `.ci/setup` fetched."""

from __future__ import annotations

import os

from kiln.installer import IndexOptions
from kiln.toolchain.buildtools import install_tool
from tests.conftest import TEST_WHEELS


def test_a_pinned_tool_is_installed_once_as_its_own_copy_and_again_when_changed(tmp_path):
    index = IndexOptions(index_url=None, find_links=(str(TEST_WHEELS),), no_index=True)
    tool = install_tool("pkg-config", tmp_path, index)
    assert tool.program.read_bytes()[:4] == b"\x7fELF"
    # Its own copy: changing it cannot change uv's cache, or another install.
    assert os.stat(tool.program).st_nlink == 1
    marker = (tool.root / "kiln-install.json").stat().st_mtime_ns
    assert install_tool("pkg-config", tmp_path, index).root == tool.root
    assert (tool.root / "kiln-install.json").stat().st_mtime_ns == marker  # not installed again

    tool.program.write_bytes(b"#!/bin/sh\necho not pkgconf\n")
    again = install_tool("pkg-config", tmp_path, index)
    assert again.program.read_bytes()[:4] == b"\x7fELF"
    assert not list(tmp_path.joinpath("tools").glob(".pkgconf-*"))  # no staging left behind

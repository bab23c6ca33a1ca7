"""Lay fetched crates out for one build: cargo's directory source and a CARGO_HOME naming it.

The build's cargo then finds every crates.io crate in the vendor folder, checks each file
against ``.cargo-checksum.json`` and each crate against Cargo.lock, and never looks for a
network (``CARGO_NET_OFFLINE``, and ``[net] offline`` in its configuration).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kiln.crates.fetch import VendoredCrates
from kiln.files import write_atomic

VENDORED_SOURCE = "kiln-vendored"


def cargo_config(vendor_seen: str) -> str:
    """The CARGO_HOME configuration that replaces crates.io with the vendor folder."""
    quoted = vendor_seen.replace("\\", "\\\\").replace('"', '\\"')
    return ("# written by kiln: crates.io's crates come from the vendor folder kiln fetched,\n"
            "# each checked against Cargo.lock's checksum; the build has no network.\n"
            "[source.crates-io]\n"
            f'replace-with = "{VENDORED_SOURCE}"\n\n'
            f"[source.{VENDORED_SOURCE}]\n"
            f'directory = "{quoted}"\n\n'
            "[net]\n"
            "offline = true\n")


def vendor_crates(vendored: VendoredCrates, folder: Path, seen: str) -> dict[str, str]:
    """Write ``folder/vendor`` and ``folder/home/config.toml``; return the build's cargo variables.

    ``seen`` is where the build sees ``folder`` (a fixed path in the sandbox).
    """
    vendor = folder / "vendor"
    home = folder / "home"
    vendor.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    for fetched in vendored.crates:
        shutil.copytree(fetched.unpacked, vendor / fetched.crate.folder, symlinks=True)
    write_atomic(home / "config.toml", cargo_config(f"{seen}/vendor"))
    return {"CARGO_HOME": f"{seen}/home", "CARGO_NET_OFFLINE": "true"}

"""Rust crates: read from an sdist's Cargo.lock, fetched by checksum before the sealed build,
vendored into a folder cargo reads offline.

``lockfile`` reads what Cargo.lock pins; ``fetch`` downloads each crate from a registry in
crates.io's layout and checks it against Cargo.lock's checksum, once per checksum; ``vendor``
lays them out as cargo's directory source for one build.
"""

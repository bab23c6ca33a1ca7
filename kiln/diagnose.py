"""Why a build failed, in one line, from its log.

A backend's last line is seldom the one that matters ("Error: command [...] returned
non-zero exit status 1"). The first ``error:`` line of the last command's output usually
is, and a few causes are common enough, on packages kiln has never seen, to name with
what to do: a missing system header or library, a build that tries to download, Rust
crates that the sdist does not carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ERROR_LINE = re.compile(r"(^|[\s:])(error|fatal error|Error|ERROR)(\[\w+\])?:\s+\S")
_ERRNO = re.compile(r"\[Errno \d+\]")
_TAIL_BYTES = 64 * 1024


def last_command_output(log: Path) -> list[str]:
    """The lines the last command in ``log`` printed (kiln writes ``+ argv`` before each)."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - _TAIL_BYTES))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(tail) if line.startswith("+ ")]
    return tail[starts[-1] + 1 if starts else 0:]


def first_error(log: Path) -> str:
    """The first line that says ``error:`` in the last command's output, or ""."""
    last = last_command_output(log)
    for line in last:
        if _ERROR_LINE.search(line) and not line.startswith("Error: command ["):
            return line.strip()[:300]
    # No "error:" line: a failed system call that a tool only warned about may be the cause.
    return next((line.strip()[:300] for line in last if _ERRNO.search(line)), "")


@dataclass(frozen=True)
class Cause:
    line: str  # the log's own words
    hint: str | None  # what to do, when the cause is a known one


# gcc's words, then clang's (zig's)
_HEADER = re.compile(r"fatal error: ([\w./+-]+\.h(?:pp)?): No such file or directory|"
                     r"fatal error: '([\w./+-]+\.h(?:pp)?)' file not found")
_LIBRARY = re.compile(r"cannot find -l([\w.+-]+)|unable to find (?:dynamic )?system library "
                      r"'([\w.+-]+)'")
# What a host tool that a hermetic build hides says when the build runs it anyway, and what
# a decoy of the rebuild's "tools" variation says.
_HIDDEN_TOOL = re.compile(r"kiln: (\S+) is the host's, and a hermetic build runs only pinned "
                          r"tools|kiln rebuild: (\S+) is a decoy of the 'tools' variation|"
                          r"'(/\S+/decoys/[\w+.-]+)'")
_HOST_BACKEND = ("; or, if the package cannot do without the host's libraries and tools, "
                 "set [build] backend = \"host\" (the wheel is then not hermetic)")
_SHARED_LIBRARY = re.compile(r"\blib([\w+-]+?)\.so(?:\.[\d.]+)?: cannot open shared object file")
_PKG_CONFIG = re.compile(
    r"(?:Package|Dependency) ['\"]?([\w.+-]+)['\"]? (?:was not found|not found)")
_PKG_CONFIG_PROBE = re.compile(r"pkg-config --exists ([\w.+-]+)'? returned non-zero")
# automake's check that the clock is sane, which libfaketime (the "time" variation) upsets:
# `touch` writes the faked future time, while new files get the real one.
_FAKED_CLOCK = re.compile(r"newly created file is older than distributed files|"
                          r"Clock skew detected")
_NETWORK = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"Could not resolve host|getaddrinfo failed|Failed to establish a new connection|"
    r"nodename nor servname")
_CRATES = re.compile(r"no matching package named `([\w-]+)` found|failed to (?:download|get) "
                     r"`?[\w-]+`? as a dependency|offline mode \(--offline\)")
_RUST_MISSING = re.compile(r"can't find Rust compiler|cargo: (?:command )?not found|"
                           r"Cargo, the Rust package manager, is not installed")


def explain(log: Path, *, hermetic: bool = False) -> Cause | None:
    """The line of ``log`` that says why the last command failed, and what to do.

    ``hermetic``: the build saw none of the host's headers, libraries and tools.
    """
    lines = last_command_output(log)
    text = "\n".join(lines)
    line = first_error(log)
    if m := _HIDDEN_TOOL.search(text):
        tool = (m.group(1) or m.group(2) or m.group(3)).rsplit("/", 1)[-1]
        return Cause(line or m.group(0),
                     f"the build ran {tool} from PATH, which is not among its pinned tools: if "
                     f"it is a build tool PyPI has (cmake, ninja, meson), add it to the recipe's "
                     f"[build] requires and run `kiln lock`; the compilers are kiln's (CC, CXX)"
                     + _HOST_BACKEND)
    if m := _CRATES.search(text):
        return Cause(line or m.group(0),
                     "cargo looked for a Rust crate that no Cargo.lock in the sdist pins, and "
                     "builds have no network: kiln fetches (before the build) only the crates "
                     "a Cargo.lock pins by checksum; an sdist without one needs its crates "
                     "vendored (`cargo vendor`)")
    if m := _RUST_MISSING.search(text):
        if hermetic:
            return Cause(line or m.group(0), "this package needs Rust: install it (rustup) so "
                         "rustc and cargo are on kiln's PATH; a hermetic build sees that "
                         "toolchain at /kiln/rust and records it by digest")
        return Cause(line or m.group(0), "this package needs Rust: install it on the build "
                     "machine (rustup, or Debian's rustc and cargo) so cargo is on PATH")
    if m := _HEADER.search(text):
        header = m.group(1) or m.group(2)
        if hermetic:
            return Cause(m.group(0), f"{header} is not part of the sdist, and a hermetic "
                         "build sees none of the host's headers: if it is a system library's, "
                         f"list the Debian package that has it (`apt-file search {header}`) "
                         "in [build] system-requires, which builds the recipe with the host "
                         "backend")
        return Cause(m.group(0), f"a system library's headers are missing: install the "
                     f"package that has {header} (Debian: `apt-file search {header}`) "
                     "and list it in the recipe's [build] system-requires")
    if m := _LIBRARY.search(text):
        name = m.group(1) or m.group(2)
        if hermetic:
            return Cause(m.group(0), f"lib{name} is not part of the sdist, and a hermetic "
                         "build links none of the host's libraries: list its development "
                         "package in [build] system-requires (a host build)")
        return Cause(m.group(0), f"the linker cannot find lib{name}: install its "
                     "development package and list it in [build] system-requires")
    if m := _SHARED_LIBRARY.search(text):
        return Cause(line or m.group(0), f"lib{m.group(1)} is not installed: install its "
                     "development package and list it in [build] system-requires")
    if m := _PKG_CONFIG.search(text):
        return Cause(line or m.group(0), f"pkg-config knows no {m.group(1)}: install its "
                     "development package (and pkg-config) and list them in [build] "
                     "system-requires")
    if probed := list(dict.fromkeys(_PKG_CONFIG_PROBE.findall(text))):
        return Cause(line or f"pkg-config --exists {probed[0]} failed",
                     f"pkg-config finds none of {', '.join(probed)}: install the development "
                     "package of one (and pkg-config) and list them in [build] system-requires")
    if m := _FAKED_CLOCK.search(text):
        return Cause(line or m.group(0), "a shifted clock upset the build's clock check: "
                     "kiln's rebuild runs under libfaketime (the \"time\" variation), which "
                     "fakes the time `touch` writes but not the time new files get; if only "
                     "the --check-repro rebuild fails, add [repro] skip-variations = [\"time\"]")
    if m := _NETWORK.search(text):
        return Cause(line or m.group(0), "the build tried to reach the network, which builds "
                     "never have: the sdist downloads something while building; find what "
                     "(the log) and provide it another way (a build requirement, a vendored "
                     "copy, a system package)")
    return Cause(line, None) if line else None

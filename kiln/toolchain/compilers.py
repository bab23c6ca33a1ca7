"""Compiler wrappers that give every C and C++ compile kiln's prefix maps.

Setting CFLAGS would do it for some build systems and break others: setuptools replaces
the interpreter's own flags (-O3, -fwrapv, -DNDEBUG …) with CFLAGS when it is set, and
CMake ignores CPPFLAGS. A wrapper named in CC and CXX reaches every build system and
leaves their flags alone.

A link of a shared object also names the C library, whether or not anything in it calls
the C library: Debian's and Ubuntu's compilers link with ``--as-needed``, so a small
extension that only calls Python's API would record no libc at all, and auditwheel,
which learns the wheel's libc from what its extensions link, refuses it ("couldn't
detect libc for python extension"). manylinux's compilers never drop it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

WRAPPERS = {"CC": "kiln-cc", "CXX": "kiln-c++"}


def write_wrapper(target: Path, command: str, flags: list[str], *, link_libc: bool = True) -> None:
    """A POSIX sh script that runs ``command`` with ``flags`` before the caller's arguments.

    ``command`` comes from the interpreter's build configuration or the toolchain (never
    from a recipe); every word is quoted, so nothing in it is expanded.
    """
    run = shlex.join([*shlex.split(command), *flags])
    text = "#!/bin/sh\n# written by kiln: adds its prefix maps to every compile"
    if link_libc:  # not on macOS: ld64 knows no --no-as-needed, and links libSystem anyway
        text += ("; links the C library\n# into every shared object "
                 "(see kiln/toolchain/compilers.py)\n"
                 'for arg do\n'
                 '  if [ "$arg" = -shared ]; then\n'
                 f'    exec {run} "$@" -Wl,--no-as-needed -lc\n'
                 '  fi\n'
                 'done\n')
    else:
        text += "\n"
    target.write_text(text + f'exec {run} "$@"\n')
    target.chmod(0o755)


def wrap_compilers(bin_dir: Path, bin_inside: str, env: dict[str, str], *, cc: str, cxx: str,
                   flags: list[str], link_libc: bool = True) -> dict[str, str]:
    """Write kiln-cc and kiln-c++ into ``bin_dir``; return CC and CXX pointing at them.

    They wrap the compilers the build would have used: the toolchain's (``env``) or the
    interpreter's (``cc``, ``cxx``).
    """
    out = {}
    for var, name in WRAPPERS.items():
        command = env.get(var) or (cc if var == "CC" else cxx)
        write_wrapper(bin_dir / name, command, flags, link_libc=link_libc)
        out[var] = f"{bin_inside}/{name}"
    return out

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


# C++ sources, by the extensions gcc and clang read as C++.
_CXX_SOURCES = "*.cpp|*.cc|*.cxx|*.c++|*.C|*.cp|*.CPP"


def _runs(run: str, link_libc: bool, indent: str = "") -> str:
    """The lines that run ``run`` with the caller's arguments (and libc on a shared link)."""
    if not link_libc:  # not on macOS: ld64 knows no --no-as-needed, and links libSystem anyway
        return f'{indent}exec {run} "$@"\n'
    return (f"{indent}for arg do\n"
            f'{indent}  if [ "$arg" = -shared ]; then\n'
            f'{indent}    exec {run} "$@" -Wl,--no-as-needed -lc\n'
            f"{indent}  fi\n"
            f"{indent}done\n"
            f'{indent}exec {run} "$@"\n')


# A backend that compiles a copy of the sources in a folder of its own under the temporary
# folder (propcache 0.2 and frozenlist's pep517 backends: /tmp/.tmp-propcache-pep517-x1y2)
# writes that random name into the debug info, where no fixed map reaches: each compile
# that names such a folder (or runs in one) maps it to /kiln/tmp.
_TEMP_MAPS = """tmp=${TMPDIR:-/tmp}; tmp=${tmp%/}; seen=; compiles=
for arg do
  if [ "$arg" = -c ]; then compiles=1; fi
done
if [ -n "$compiles" ]; then
  for arg in "$PWD" "$@"; do
    case "$arg" in
      "$tmp"/?*)
        rest=${arg#"$tmp"/}; top=$tmp/${rest%%/*}
        case " $seen " in
          *" $top "*) ;;
          *) seen="$seen $top"; set -- "$@" "-ffile-prefix-map=$top=/kiln/tmp" ;;
        esac ;;
    esac
  done
fi
"""


def write_wrapper(target: Path, command: str, flags: list[str], *, link_libc: bool = True,
                  cxx: str | None = None) -> None:
    """A POSIX sh script that runs ``command`` with ``flags`` before the caller's arguments.

    ``command`` comes from the interpreter's build configuration or the toolchain (never
    from a recipe); every word is quoted, so nothing in it is expanded. With ``cxx``, the
    C compiler's wrapper hands C++ to the C++ compiler, as gcc does by a file's extension
    (zig's clang does not: it would miss libc++'s headers): a C++ source is compiled with
    ``cxx``, its object is marked, and a link of a marked object links as C++ (setuptools
    links every extension with CC unless it declares language="c++").
    """
    run = shlex.join([*shlex.split(command), *flags])
    text = "#!/bin/sh\n# written by kiln: adds its prefix maps to every compile"
    if link_libc:
        text += ("; links the C library\n# into every shared object "
                 "(see kiln/toolchain/compilers.py)\n")
    else:
        text += "\n"
    text += _TEMP_MAPS
    if cxx is not None:
        run_cxx = shlex.join([*shlex.split(cxx), *flags])
        text += ("as_cxx=; compile=; out=; prev=\n"
                 "for arg do\n"
                 '  case "$arg" in\n'
                 f"    {_CXX_SOURCES}) as_cxx=1 ;;\n"
                 '    *.o) if [ -e "$arg.kiln-c++" ]; then as_cxx=1; fi ;;\n'
                 "    -c) compile=1 ;;\n"
                 "  esac\n"
                 '  if [ "$prev" = -o ]; then out=$arg; fi\n'
                 "  prev=$arg\n"
                 "done\n"
                 'if [ -n "$as_cxx" ] && [ -n "$compile" ]; then\n'
                 f'  {run_cxx} "$@" || exit $?\n'
                 '  if [ -n "$out" ]; then : > "$out.kiln-c++"; fi\n'
                 "  exit 0\n"
                 "fi\n"
                 'if [ -n "$as_cxx" ]; then\n'
                 + _runs(run_cxx, link_libc, "  ") +
                 "fi\n")
    target.write_text(text + _runs(run, link_libc))
    target.chmod(0o755)


def wrap_compilers(bin_dir: Path, bin_inside: str, env: dict[str, str], *, cc: str, cxx: str,
                   flags: list[str], link_libc: bool = True) -> dict[str, str]:
    """Write kiln-cc and kiln-c++ into ``bin_dir``; return CC and CXX pointing at them.

    They wrap the compilers the build would have used: the toolchain's (``env``) or the
    interpreter's (``cc``, ``cxx``).
    """
    out = {}
    cxx_command = env.get("CXX") or cxx
    for var, name in WRAPPERS.items():
        command = env.get(var) or (cc if var == "CC" else cxx)
        write_wrapper(bin_dir / name, command, flags, link_libc=link_libc,
                      cxx=cxx_command if var == "CC" and cxx_command else None)
        out[var] = f"{bin_inside}/{name}"
    return out

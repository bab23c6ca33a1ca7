"""meson-python builds for another architecture: a meson cross file for the wheel's target.

meson takes the compilers of the machine a build is for from a cross file, never from CC
and CXX, and knows from it that the programs it compiles do not run here. kiln writes one
for the hermetic toolchain (zig's wrappers, behind the build's kiln-cc and kiln-c++) and
hands it to meson-python as one more ``setup-args``. The build's Python stays the one in
the build's venv, with the target's sysconfig (``_PYTHON_SYSCONFIGDATA_NAME``,
``_PYTHON_HOST_PLATFORM``), so meson's python module and meson-python name the extensions
and the wheel for the target.
"""

from __future__ import annotations

from collections.abc import Mapping

from kiln.pep517 import ConfigSettings
from kiln.toolchain.targets import Target

# meson's cpu_family and cpu for a wheel's architecture.
_MESON_CPU = {"x86_64": "x86_64", "aarch64": "aarch64"}
# The format of C's long double on the target, which numpy and SciPy otherwise learn by
# running a program compiled for it (they read this property when cross-compiling).
_LONGDOUBLE_FORMAT = {"x86_64": "INTEL_EXTENDED_16_BYTES_LE", "aarch64": "IEEE_QUAD_LE"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cross_file(target: Target, env: Mapping[str, str], python: str) -> str:
    """The cross file's text: the build's compilers (``env``'s CC, CXX, AR and, when a
    library build gave one, PKG_CONFIG), the build's ``python``, and the target machine."""
    cpu = _MESON_CPU.get(target.arch)
    if not target.is_linux or cpu is None:
        raise ValueError(f"kiln writes meson cross files for Linux x86_64 and aarch64, not "
                         f"{target.name}")
    binaries = {"c": env["CC"], "cpp": env["CXX"], "ar": env["AR"], "python": python}
    if env.get("PKG_CONFIG"):
        binaries["pkg-config"] = env["PKG_CONFIG"]
    lines = ["# written by kiln: the wheel's target, for meson", "[binaries]",
             *(f"{name} = {_quote(path)}" for name, path in binaries.items()),
             "", "[host_machine]", "system = 'linux'", f"cpu_family = {_quote(cpu)}",
             f"cpu = {_quote(cpu)}", "endian = 'little'",
             "", "[properties]", "needs_exe_wrapper = true",
             f"longdouble_format = {_quote(_LONGDOUBLE_FORMAT[target.arch])}"]
    return "\n".join(lines) + "\n"


def with_setup_arg(settings: Mapping[str, str | list[str]], arg: str) -> ConfigSettings:
    """``settings`` with ``arg`` after the recipe's own meson-python ``setup-args`` (a string
    is one argument to meson-python, so two become a list)."""
    out: ConfigSettings = dict(settings)
    given = out.get("setup-args")
    if given is None:
        out["setup-args"] = arg
    elif isinstance(given, str):
        out["setup-args"] = [given, arg]
    else:
        out["setup-args"] = [*given, arg]
    return out

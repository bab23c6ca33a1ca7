"""Find the CPython a build asks for, and describe it precisely enough to pin it."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln import proc
from kiln.errors import EnvironmentSetupError
from kiln.files import sha256_bytes, sha256_file
from kiln.memo import StatMemo
from kiln.memo import enabled as memo_enabled

_PROBE = r"""
import json, sys, sysconfig, platform, zlib
print(json.dumps({
    "executable": sys.executable,
    "version": platform.python_version(),
    "implementation": sys.implementation.name,
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",
    "platform": sysconfig.get_platform(),
    "zlib": getattr(zlib, "ZLIB_RUNTIME_VERSION", zlib.ZLIB_VERSION),
    "cc": sysconfig.get_config_var("CC") or "cc",
    "cxx": sysconfig.get_config_var("CXX") or "c++",
    "libpython": (sysconfig.get_config_var("LIBDIR") or "") + "/"
                 + (sysconfig.get_config_var("LDLIBRARY") or ""),
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A CPython executable, by real path and digest."""

    path: Path
    version: str  # "3.11.7"
    implementation: str
    soabi: str
    ext_suffix: str
    platform: str
    zlib: str
    sha256: str  # of the executable and, when it links one, its libpython
    cc: str
    cxx: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def tag(self) -> str:
        """The interpreter tag of wheels it builds (``cp311``)."""
        return "cp" + self.minor.replace(".", "")


def _candidates(minor: str) -> list[Path]:
    found: list[Path] = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    on_path = shutil.which(f"python{minor}")
    # A pyenv shim is a shell script that picks a version each time it runs; go to the
    # versions it would pick from directly.
    if on_path and Path(on_path).parent != pyenv_root / "shims":
        found.append(Path(on_path))
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for entry in sorted(versions.iterdir(), reverse=True):
            exe = entry / "bin" / f"python{minor}"
            if entry.name.startswith(minor + ".") and exe.exists():
                found.append(exe)
    if on_path and Path(on_path) not in found:
        found.append(Path(on_path))
    for base in ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"):
        exe = Path(base) / f"python{minor}"
        if exe.exists():
            found.append(exe)
    return found


_cache: dict[tuple[str, str], Interpreter] = {}


def describe(executable: Path) -> Interpreter:
    key = ("path", str(executable))
    if key in _cache:
        return _cache[key]
    memo = StatMemo("interpreters")
    memo_key = str(executable.absolute())
    known = memo.get(memo_key) if memo_enabled() else None
    if known is not None:
        info, digest = known["info"], known["sha256"]
    else:
        out = proc.capture([executable, "-I", "-c", _PROBE],
                           what=f"asking {executable} what it is", error=EnvironmentSetupError,
                           quiet=True)
        info = json.loads(out.stdout)
        files = [Path(info["executable"]).resolve()]
        libpython = Path(info["libpython"])
        if libpython.suffix != ".a" and ".so" in libpython.name and libpython.is_file():
            files.append(libpython.resolve())
        # The executable may be a stub that loads libpython: pin both.
        digests = [sha256_file(f) for f in files]
        digest = digests[0] if len(digests) == 1 else sha256_bytes(" ".join(digests).encode())
        if memo_enabled():
            memo.put(memo_key, [executable.resolve(), *files], {"info": info, "sha256": digest})
    interp = Interpreter(
        path=Path(info["executable"]),
        version=info["version"],
        implementation=info["implementation"],
        soabi=info["soabi"],
        ext_suffix=info["ext_suffix"],
        platform=info["platform"],
        zlib=info["zlib"],
        sha256=digest,
        cc=info["cc"],
        cxx=info["cxx"],
    )
    _cache[key] = interp
    return interp


def find_interpreter(minor: str, explicit: Path | None = None) -> Interpreter:
    """The CPython ``minor`` ("3.11"): ``explicit`` if given, else PATH, pyenv, system."""
    if explicit is not None:
        interp = describe(explicit)
        if interp.minor != minor:
            raise EnvironmentSetupError(
                f"--python-path {explicit} is Python {interp.version}, not {minor}",
                hint="give an interpreter of the version the build asks for")
        return interp
    key = ("minor", minor)
    if key in _cache:
        return _cache[key]
    for candidate in _candidates(minor):
        try:
            interp = describe(candidate)
        except EnvironmentSetupError:
            continue  # a pyenv shim for a version that is not installed
        if interp.implementation == "cpython" and interp.minor == minor:
            _cache[key] = interp
            return interp
    raise EnvironmentSetupError(
        f"no CPython {minor} found (looked for python{minor} on PATH and in pyenv)",
        hint=f"install it (`pyenv install {minor}` or `uv python install {minor}`), "
        "or pass --python-path",
    )


def other_interpreter(interp: Interpreter, explicit: tuple[Path, ...] = ()) -> Interpreter | None:
    """Another build of ``interp``'s CPython X.Y (another digest): one of ``explicit`` (the
    --python-path values given for that version, the first of which is ``interp``), else
    one found on the machine; None when there is none."""
    candidates = [*explicit, *_candidates(interp.minor)]
    for candidate in candidates:
        try:
            other = describe(candidate)
        except EnvironmentSetupError:
            continue
        if (other.implementation == "cpython" and other.minor == interp.minor
                and other.sha256 != interp.sha256 and other.soabi == interp.soabi):
            return other
    return None

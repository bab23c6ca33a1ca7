"""The target CPython as kiln fixes it: pinned headers and a build configuration per X.Y.

A hermetic build never asks the host's interpreter how to compile. For each CPython X.Y
kiln pins one ``libpython3.X-dev`` package (Debian's, or Ubuntu's for the versions no
Debian suite ships) by its sha256 in ``kiln/resources/cpython.toml``. From it kiln takes
the headers, fits the target's ``pyconfig.h`` (the x86_64 one as shipped; aarch64's by the
few architecture macros that differ, a rule checked against Debian's arm64 packages), and
writes its own ``sysconfig`` data: compile and link flags in the manner of manylinux's
CPython, the extension suffix, the include folder. The build sees it all at
``/kiln/python`` and reads the configuration through ``_PYTHON_SYSCONFIGDATA_NAME``; the
host interpreter runs the build frontend and nothing of its configuration reaches a binary.

The headers are at ``include/python3.X`` and, for every X.Y, at ``include/python`` (a link),
which is the folder kiln's sysconfig names: a compile that never reads Python.h then has the
same command line for every CPython, and zig's object cache, which keys a compile on its
command line and on the contents of the files it read, compiles it once per build chain.
A compile that reads Python.h still misses for another X.Y: the headers' contents differ.

Every file is pinned twice: the package by sha256, and the header tree kiln assembles from
it by the digest of its contents, for each target.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kiln import http, toml
from kiln.errors import EnvironmentSetupError, HashMismatchError, KilnError, UnsupportedError
from kiln.files import exclusive, sha256_file, write_atomic
from kiln.progress import reporter
from kiln.toolchain import debian
from kiln.toolchain.targets import Target

CANONICAL = "/kiln/python"  # where every hermetic build sees the CPython description
# The include folder's name for every X.Y (a link to include/python3.X): what INCLUDEPY names.
SHARED_INCLUDE = "python"
# The layout of a description in the cache, in its folder's name and its manifest; a new one
# is made beside an older kiln's. 2: include/python, and the sysconfig naming it.
LAYOUT = 2
ARCHIVES = {"debian": "https://deb.debian.org/debian",
            "ubuntu": "https://archive.ubuntu.com/ubuntu"}
# The snapshot services that keep every file an archive ever published, by date.
SNAPSHOTS = {"debian": "https://snapshot.debian.org/archive/debian",
             "ubuntu": "https://snapshot.ubuntu.com/ubuntu"}
ARCHES = ("x86_64", "aarch64")
# pyconfig.h macros that say x86 (defined on x86_64, undefined on aarch64), and the other
# way round; every other macro is the same on both (compared for 3.9, 3.11, 3.13, 3.14
# against Debian's amd64 and arm64 packages, and by `kiln toolchain pin-cpython`).
_X86_ONLY = ("HAVE_GCC_ASM_FOR_X64", "HAVE_GCC_ASM_FOR_X87", "_Py_HACL_CAN_COMPILE_VEC128",
             "_Py_HACL_CAN_COMPILE_VEC256")
_AARCH64_ONLY = ("HAVE_USABLE_WCHAR_T",)
_SUPPORT_TIER = {"x86_64": "1", "aarch64": "2"}  # PEP 11's tiers
_DEFINE = re.compile(r"#define ([A-Za-z0-9_]+)(?:[ \t]+(.*?))?[ \t]*\n")
_UNDEF = re.compile(r"/\* #undef ([A-Za-z0-9_]+) \*/\n")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_MINOR = re.compile(r"3\.\d{1,2}\Z")
MANIFEST = "kiln-cpython.json"


@dataclass(frozen=True)
class HeaderPin:
    """One ``libpython3.X-dev`` package, pinned, and the header trees kiln makes of it."""

    minor: str  # "3.11"
    version: str  # the CPython release its headers are from: "3.11.2"
    archive: str  # "debian" | "ubuntu"
    suite: str  # "bookworm"
    package: str  # "libpython3.11-dev"
    package_version: str  # "3.11.2-6+deb12u8"
    path: str  # "pool/main/p/python3.11/libpython3.11-dev_3.11.2-6+deb12u8_amd64.deb"
    sha256: str  # of the .deb
    size: int
    trees: tuple[tuple[str, str], ...]  # (arch, sha256 of the header tree kiln assembles)
    snapshot: str = ""  # a date the snapshot service has it: "20261201T000000Z"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def urls(self) -> list[str]:
        found = [f"{ARCHIVES[self.archive]}/{self.path}"]
        if self.snapshot:
            found.append(f"{SNAPSHOTS[self.archive]}/{self.snapshot}/{self.path}")
        return found

    def tree(self, arch: str) -> str:
        digest = dict(self.trees).get(arch)
        if digest is None:
            raise UnsupportedError(f"kiln has no pinned CPython {self.minor} headers for {arch}")
        return digest

    def describe(self) -> str:
        return f"{self.archive} {self.suite} {self.package} {self.package_version}"


def parse_pins(text: str, where: str = "cpython.toml") -> dict[str, HeaderPin]:
    """The pins of a ``cpython.toml``, each field checked."""
    data = toml.loads(text)
    pins: dict[str, HeaderPin] = {}
    for minor, entry in data.items():
        at = f"{where}: [{minor}]"
        if not _MINOR.match(minor) or not isinstance(entry, dict):
            raise EnvironmentSetupError(f"{at}: tables are CPython versions like \"3.11\"")
        fields = {k: entry.get(k) for k in ("version", "archive", "suite", "package",
                                             "package-version", "path", "sha256")}
        for key, value in fields.items():
            if not isinstance(value, str) or not value:
                raise EnvironmentSetupError(f"{at} {key}: must be a non-empty string")
        if fields["archive"] not in ARCHIVES:
            raise EnvironmentSetupError(f"{at} archive: one of {', '.join(ARCHIVES)}")
        if not _SHA256.match(str(fields["sha256"])):
            raise EnvironmentSetupError(f"{at} sha256: not a sha256 digest")
        path = str(fields["path"])
        if not path.startswith("pool/") or ".." in path.split("/"):
            raise EnvironmentSetupError(f"{at} path: must be a file under pool/")
        trees = entry.get("trees")
        if not isinstance(trees, dict) or set(trees) != set(ARCHES) or not all(
                isinstance(v, str) and _SHA256.match(v) for v in trees.values()):
            raise EnvironmentSetupError(f"{at} trees: one sha256 for each of {', '.join(ARCHES)}")
        size = entry.get("size")
        if not isinstance(size, int) or size <= 0:
            raise EnvironmentSetupError(f"{at} size: must be the .deb's size in bytes")
        pins[minor] = HeaderPin(
            minor=minor, version=str(fields["version"]), archive=str(fields["archive"]),
            suite=str(fields["suite"]), package=str(fields["package"]),
            package_version=str(fields["package-version"]), path=path,
            sha256=str(fields["sha256"]), size=size, trees=tuple(sorted(trees.items())),
            snapshot=str(entry.get("snapshot", "")))
    return pins


@functools.cache
def pins() -> dict[str, HeaderPin]:
    text = (resources.files("kiln") / "resources" / "cpython.toml").read_text("utf-8")
    return parse_pins(text, "kiln/resources/cpython.toml")


def pin_for(minor: str) -> HeaderPin:
    found = pins().get(minor)
    if found is None:
        raise UnsupportedError(
            f"kiln has no pinned headers for CPython {minor}, so it cannot build for it "
            "hermetically",
            hint=f"pinned: {', '.join(sorted(pins(), key=_version_key))}; build with --backend "
                 f"host, or pin {minor} with `kiln toolchain pin-cpython {minor}`")
    return found


def _version_key(minor: str) -> tuple[int, ...]:
    return tuple(int(x) for x in minor.split("."))


# --- the header tree -------------------------------------------------------------------


def derive_pyconfig(x86_64: str, arch: str) -> str:
    """``arch``'s pyconfig.h, from the x86_64 one (the same but for a few macros)."""
    if arch == "x86_64":
        return x86_64
    if arch != "aarch64":
        raise UnsupportedError(f"kiln derives pyconfig.h for {', '.join(ARCHES)}, not {arch}")

    def define(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _X86_ONLY:
            return f"/* #undef {name} */\n"
        if name == "PY_SUPPORT_TIER":
            return f"#define PY_SUPPORT_TIER {_SUPPORT_TIER[arch]}\n"
        return match.group(0)

    def undef(match: re.Match[str]) -> str:
        return f"#define {match.group(1)} 1\n" if match.group(1) in _AARCH64_ONLY \
            else match.group(0)

    return _UNDEF.sub(undef, _DEFINE.sub(define, x86_64))


def tree_digest(root: Path) -> str:
    """sha256 over every file under ``root``: its path (relative, sorted) and its bytes."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            lines.append(f"{rel} -> {os.readlink(path)}")
        else:
            lines.append(f"{rel} {sha256_file(path)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assemble_headers(unpacked: Path, minor: str, arch: str, dest: Path) -> None:
    """``dest/include/python3.X`` from an unpacked ``libpython3.X-dev``, for ``arch``."""
    source = unpacked / "usr" / "include" / f"python{minor}"
    config = unpacked / "usr" / "include" / "x86_64-linux-gnu" / f"python{minor}" / "pyconfig.h"
    if not (source / "Python.h").is_file() or not config.is_file():
        raise EnvironmentSetupError(f"the pinned package for CPython {minor} has no "
                                    f"usr/include/python{minor}/Python.h or x86_64 pyconfig.h")
    include = dest / "include" / f"python{minor}"
    # Debian's own pyconfig.h only points at the multiarch one; the target's takes its place.
    shutil.copytree(source, include, symlinks=True,
                    ignore=lambda folder, names: ["pyconfig.h"] if Path(folder) == source else [])
    (include / "pyconfig.h").write_text(derive_pyconfig(config.read_text(), arch))
    for path in dest.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


# --- the build configuration ----------------------------------------------------------


def parse_pyconfig(text: str) -> dict[str, str | int]:
    """pyconfig.h's macros as CPython's own sysconfig records them (``parse_config_h``)."""
    found: dict[str, str | int] = {}
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            line += "\n"
        if match := _DEFINE.match(line):
            name, value = match.group(1), match.group(2) or "1"
            try:
                found[name] = int(value)
            except ValueError:
                found[name] = value
        elif match := _UNDEF.match(line):
            found[match.group(1)] = 0
    return found


def multiarch(arch: str) -> str:
    return f"{arch}-linux-gnu"


def ext_suffix(minor: str, arch: str) -> str:
    return f".cpython-{minor.replace('.', '')}-{multiarch(arch)}.so"


def config_vars(minor: str, arch: str, pyconfig: str) -> dict[str, str | int]:
    """kiln's sysconfig for CPython ``minor`` on Linux ``arch``: pyconfig.h's macros, and
    the Makefile's variables as manylinux's CPython has them, at ``/kiln/python``.

    The compilers are named, not located: the hermetic toolchain's ``cc``, ``c++`` and ``ar``
    come first on the build's PATH, and CC, CXX and LDSHARED are set besides.
    """
    version = tuple(int(x) for x in minor.split("."))
    nodot = minor.replace(".", "")
    triple = multiarch(arch)
    prefix = CANONICAL
    libpl = f"{prefix}/lib/python{minor}/config-{minor}-{triple}"
    # One set of flags for every X.Y, 3.12's: CPython 3.12 replaced -fwrapv by
    # -fno-strict-overflow (gh-96821), which in zig's clang implies -fwrapv (and, from LLVM 20,
    # -fwrapv-pointer): what 3.11's code asks for, and a little more. With 3.11's spelling kept
    # for 3.10 and 3.11, every compile of theirs had another command line than 3.12's, and
    # zig's cache compiled the Python-independent objects twice per chain.
    opt = "-DNDEBUG -g -O3 -Wall"
    base = "-fno-strict-overflow -Wsign-compare"
    cflags = f"{base} {opt}"
    # The same for every X.Y, so that only the compiles that read Python.h differ by version.
    include = f"{prefix}/include/{SHARED_INCLUDE}"
    made: dict[str, str | int] = dict(parse_pyconfig(pyconfig))
    made.update({
        "ABIFLAGS": "", "AR": "ar", "ARFLAGS": "rcs", "BASECFLAGS": base, "BINDIR": f"{prefix}/bin",
        "BINLIBDEST": f"{prefix}/lib/python{minor}", "BLDLIBRARY": f"-L. -lpython{minor}",
        "BLDSHARED": "cc -pthread -shared", "BUILD_GNU_TYPE": f"{arch}-pc-linux-gnu",
        "CC": "cc -pthread", "CCSHARED": "-fPIC", "CFLAGS": cflags, "CFLAGSFORSHARED": "",
        "CFLAGS_NODIST": "", "CONFIGURE_CFLAGS": "", "CONFIGURE_CFLAGS_NODIST": "",
        "CONFIGURE_CPPFLAGS": "", "CONFIGURE_LDFLAGS": "", "CONFIGURE_LDFLAGS_NODIST": "",
        "CONFIG_ARGS": f"'--prefix={prefix}' (kiln: a fixed description of CPython {minor} "
                       f"for {triple}, not a configure run)",
        "CONFINCLUDEDIR": f"{prefix}/include", "CONFINCLUDEPY": include,
        "CPPFLAGS": "", "CXX": "c++ -pthread",
        "DESTSHARED": f"{prefix}/lib/python{minor}/lib-dynload",
        "EXE": "", "EXT_SUFFIX": ext_suffix(minor, arch), "GNULD": "yes",
        "HOST_GNU_TYPE": f"{arch}-pc-linux-gnu", "INCLUDEDIR": f"{prefix}/include",
        "INCLUDEPY": include, "INSTSONAME": f"libpython{minor}.a",
        "LDCXXSHARED": "c++ -pthread -shared", "LDFLAGS": "", "LDFLAGS_NODIST": "",
        "LDLIBRARY": f"libpython{minor}.a", "LDSHARED": "cc -pthread -shared", "LDVERSION": minor,
        "LIBDEST": f"{prefix}/lib/python{minor}", "LIBDIR": f"{prefix}/lib",
        "LIBPC": f"{prefix}/lib/pkgconfig", "LIBPL": libpl, "LIBRARY": f"libpython{minor}.a",
        # Empty on Linux since 3.8: extensions do not link libpython. meson reads a missing
        # LIBPYTHON as "yes", looks for libpython3.X.so, and finds no python3 dependency
        # (Cython's sanity check: "Cython requires python3 dependency for link testing").
        "LIBPYTHON": "",
        "LIBS": "-ldl -lpthread", "LINKFORSHARED": "-Xlinker -export-dynamic",
        "MACHDEP": "linux", "MODLIBS": "", "MULTIARCH": triple,
        "MULTIARCH_CPPFLAGS": f'-DMULTIARCH=\\"{triple}\\"', "OPT": opt,
        "PY_CFLAGS": cflags, "PY_CFLAGS_NODIST": "", "PY_CORE_CFLAGS": cflags,
        "PY_CORE_LDFLAGS": "", "PY_CPPFLAGS": f"-I{include}",
        "PY_LDFLAGS": "", "PY_LDFLAGS_NODIST": "", "PY_STDMODULE_CFLAGS": cflags,
        "Py_DEBUG": 0, "Py_ENABLE_SHARED": 0, "Py_TRACE_REFS": 0, "RANLIB": "ranlib",
        "SHLIB_SUFFIX": ".so", "SOABI": f"cpython-{nodot}-{triple}", "SYSLIBS": "-lm",
        "TZPATH": "/usr/share/zoneinfo:/usr/lib/zoneinfo:/usr/share/lib/zoneinfo:/etc/zoneinfo",
        "VERSION": minor, "WITH_PYMALLOC": 1, "exec_prefix": prefix, "prefix": prefix,
        "srcdir": libpl,
        # sysconfig.get_paths()' include and platinclude are made from these: kiln's headers
        # at include/python3.X, where CMake's FindPython and meson, which ask for those
        # paths, find them.
        "installed_base": prefix, "installed_platbase": prefix,
    })
    if version >= (3, 13):
        made["Py_GIL_DISABLED"] = 0
    return made


def module_name(arch: str) -> str:
    """What ``_PYTHON_SYSCONFIGDATA_NAME`` names: kiln's configuration for ``arch``."""
    return f"_sysconfigdata_kiln_linux_{arch}"


def render_sysconfigdata(values: dict[str, str | int], what: str) -> str:
    # One entry a line, sorted (pprint took a tenth of a second for each, on every build).
    body = "".join(f"    {key!r}: {value!r},\n" for key, value in sorted(values.items()))
    return (f"# written by kiln: {what}\n# build_time_vars is what sysconfig.get_config_vars() "
            "returns in a hermetic build\nbuild_time_vars = {\n" + body + "}\n")


# --- the description a build uses ------------------------------------------------------


@dataclass(frozen=True)
class CPythonDescription:
    """CPython X.Y for one target, as the hermetic build sees it at ``/kiln/python``."""

    minor: str
    arch: str
    pin: HeaderPin
    root: Path  # on the host: include/python3.X/…, include/python (a link), kiln-cpython.json
    headers_sha256: str
    sysconfig_text: str

    @property
    def sysconfig_name(self) -> str:
        return module_name(self.arch)

    @property
    def sysconfig_sha256(self) -> str:
        return hashlib.sha256(self.sysconfig_text.encode()).hexdigest()

    @property
    def include(self) -> Path:
        return self.root / "include"

    @property
    def digest(self) -> str:
        """What a build id takes of it: the pin, the headers, the configuration."""
        blob = json.dumps([self.pin.sha256, self.headers_sha256, self.sysconfig_sha256])
        return hashlib.sha256(blob.encode()).hexdigest()

    def install_sysconfig(self, venv: Path, prefix: str = CANONICAL) -> Path:
        """Write kiln's configuration into a build's venv (where its python finds it).

        ``prefix`` is where the build sees the description: ``/kiln/python`` in the sandbox,
        the cache folder without one (the compilers' prefix maps then give the same names).
        """
        site = venv / "lib" / f"python{self.minor}" / "site-packages"
        path = site / f"{self.sysconfig_name}.py"
        site.mkdir(parents=True, exist_ok=True)
        path.write_text(self.sysconfig_text.replace(CANONICAL, prefix))
        return path



def sysconfig_text(minor: str, arch: str, pin: HeaderPin, pyconfig: str) -> str:
    """kiln's sysconfigdata module for CPython ``minor`` on ``arch``. Made from the cached
    headers' pyconfig.h on every use, never kept: a sysconfig kept in the cache outlived the
    code that wrote it (a change of the compile flags reached no warm cache)."""
    return render_sysconfigdata(config_vars(minor, arch, pyconfig),
                                f"CPython {minor} for linux-{arch}, headers from "
                                f"{pin.describe()}")


def _load(root: Path, pin: HeaderPin, arch: str) -> CPythonDescription | None:
    try:
        info = json.loads((root / MANIFEST).read_text())
        pyconfig = (root / "include" / f"python{pin.minor}" / "pyconfig.h").read_text()
    except (OSError, ValueError):
        return None
    if info.get("deb_sha256") != pin.sha256 or info.get("headers_sha256") != pin.tree(arch) \
            or info.get("layout") != LAYOUT:
        return None
    return CPythonDescription(pin.minor, arch, pin, root, pin.tree(arch),
                              sysconfig_text(pin.minor, arch, pin, pyconfig))


def fetch_package(pin: HeaderPin, downloads: Path, find_links: tuple[str, ...] = ()) -> Path:
    """The pinned .deb: from a local folder that has it (``--find-links``), else the archive
    or its snapshot service. Its sha256 is always checked."""
    target = downloads / f"{pin.sha256[:16]}-{pin.filename}"
    for folder in find_links:
        local = Path(folder.removeprefix("file://")) / pin.filename
        if "://" not in folder.removeprefix("file://") and local.is_file() \
                and sha256_file(local) == pin.sha256:
            return local
    if target.is_file() and sha256_file(target) == pin.sha256:
        return target
    errors: list[str] = []
    for url in pin.urls():
        try:
            http.download(url, target, sha256=pin.sha256,
                          what=f"CPython {pin.minor} headers ({pin.describe()})")
        except HashMismatchError:
            raise
        except KilnError as exc:  # the next mirror may have it
            errors.append(f"{url}: {exc.message}")
        else:
            return target
    raise EnvironmentSetupError(
        f"cannot fetch the pinned CPython {pin.minor} headers ({pin.describe()}): "
        + "; ".join(errors),
        hint=f"put {pin.filename} (sha256 {pin.sha256[:12]}…) in a --find-links folder "
             "(KILN_FIND_LINKS), or let kiln reach the archive once")


def prepare(minor: str, target: Target, cache: Path, *,
            find_links: tuple[str, ...] = ()) -> CPythonDescription:
    """CPython ``minor`` for ``target``, unpacked and checked into the cache on first use."""
    if not target.is_linux or target.arch not in ARCHES:
        raise UnsupportedError(f"kiln describes CPython for linux-{' and linux-'.join(ARCHES)}, "
                               f"not {target.name}")
    pin = pin_for(minor)
    arch = target.arch
    root = cache / "toolchain" / "cpython" / f"{minor}-{arch}-{pin.tree(arch)[:16]}-l{LAYOUT}"
    found = _load(root, pin, arch)
    if found is not None:
        return found
    with exclusive(root.with_name(root.name + ".lock")):
        found = _load(root, pin, arch)
        if found is not None:
            return found
        reporter().stage("toolchain", f"CPython {minor} headers for {target.name} "
                                      f"({pin.describe()})")
        deb = fetch_package(pin, cache / "downloads" / "cpython", find_links)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            unpacked = staging / "deb"
            debian.unpack_debs([deb], unpacked)
            made = staging / "made"
            assemble_headers(unpacked, minor, arch, made)
            digest = tree_digest(made)
            if digest != pin.tree(arch):
                raise HashMismatchError(
                    f"the CPython {minor} headers kiln assembled for {target.name} have sha256 "
                    f"{digest[:12]}…, not the pinned {pin.tree(arch)[:12]}…",
                    hint="kiln/resources/cpython.toml and kiln's code disagree: reinstall kiln")
            # After the digest, which pins the headers as the package has them.
            (made / "include" / SHARED_INCLUDE).symlink_to(f"python{minor}")
            write_atomic(made / MANIFEST, json.dumps({
                "minor": minor, "arch": arch, "deb_sha256": pin.sha256,
                "headers_sha256": digest, "layout": LAYOUT, "source": pin.describe()},
                indent=1))
            if root.exists():
                shutil.rmtree(root)
            made.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    done = _load(root, pin, arch)
    if done is None:  # pragma: no cover - only if the cache changes under us
        raise EnvironmentSetupError(f"{root}: the CPython description kiln just made is unreadable")
    return done

"""C and C++ libraries a recipe declares (``[library.NAME]``), built from pinned sources.

Each library's source is an archive pinned by sha256: an ``https://``/``file://`` URL, or a
Debian source package's ``.orig`` tarball, found through the suite's ``Sources`` index
whose digest the signed ``InRelease`` gives (the chain ``kiln sysroot`` trusts for binary
packages). It is built before the wheel, in the hermetic sandbox: the pinned zig for the
wheel's target and glibc, kiln's pinned cmake, ninja and pkg-config, no network, the
host's compilers and headers hidden, at fixed paths (the source at ``/kiln/lib/src``, the
prefix at ``/kiln/libs/NAME``), so the same inputs give the same bytes on any host.

The result is cached by content: its key is the digest of the source, the build and its
options, the toolchain and the keys of the libraries it builds against. A second recipe
that needs the same library reuses it. The ``--check-repro`` rebuild keeps its own cache
(its compile chain), so its libraries are built by it, never taken from the first build.
The wheel's build sees each prefix read-only at ``/kiln/libs/NAME``, with ``CPPFLAGS``,
``LDFLAGS`` and pkg-config pointed there.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln import http, proc
from kiln.archive import extract
from kiln.errors import BuildError, FetchError, HashMismatchError, UnsupportedError
from kiln.files import exclusive, sha256_bytes, sha256_file, write_atomic, write_if_changed
from kiln.installer import IndexOptions
from kiln.progress import reporter
from kiln.prune import touch
from kiln.recipe import LibrarySpec
from kiln.toolchain import debian
from kiln.toolchain.buildtools import InstalledTool, install_tool
from kiln.toolchain.cpython import tree_digest
from kiln.toolchain.hosttools import describe_tool
from kiln.toolchain.sandbox import Bind, Sandbox
from kiln.toolchain.targets import Target, host_target
from kiln.toolchain.tool import Tool

LIBS_INSIDE = "/kiln/libs"  # each library's prefix: /kiln/libs/NAME
WORK_INSIDE = "/kiln/lib"  # a library build's own folder: src, build, home
TOOL_BIN_INSIDE = "/kiln/toolchain/tools-bin"  # pkg-config, cmake, ninja wrappers
# Bumped whenever kiln changes how it builds a library in a way that changes its bytes.
# 2: LD is zig's lld (libtool builds shared libraries); 3: CC_FOR_BUILD, HOSTCC.
LIBRARY_BUILD_VERSION = "3"
# Every library compile: optimised, position independent (it ends up in a shared object).
LIBRARY_CFLAGS = ("-O2", "-fPIC")
# What a library build needs of the build tools, by build system.
_TOOLS_FOR = {"autotools": ("pkg-config",), "configure": ("pkg-config",),
              "make": ("pkg-config",), "openssl": (),
              "cmake": ("pkg-config", "cmake", "ninja")}
# Installed files that only name the build machine or document: not part of the library.
_DROP = ("share/man", "share/doc", "share/info", "share/gtk-doc", "share/aclocal")
_GNU_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}
# OpenSSL's Configure names the platform it builds for; CC (kiln's zig) does the rest.
_OPENSSL_TARGET = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}


@dataclass(frozen=True)
class LibrarySource:
    url: str
    filename: str
    sha256: str
    path: Path  # the archive in kiln's cache, its sha256 checked
    debian: str = ""  # "libyaml 0.2.5-2 (trixie)": the source package that gave it


@dataclass(frozen=True)
class BuiltLibrary:
    spec: LibrarySpec
    source: LibrarySource
    key: str  # its cache key: every input's digest
    prefix: Path  # on the host
    digest: str  # of the installed tree (tree_digest)
    cached: bool  # taken from the cache rather than built now

    @property
    def inside(self) -> str:
        return f"{LIBS_INSIDE}/{self.spec.name}"


@dataclass(frozen=True)
class LibraryToolchain:
    """What every library of one build is built with (the wheel's own toolchain)."""

    triple: str  # zig's target: x86_64-linux-gnu.2.17
    target: Target
    identity: tuple[tuple[str, str], ...]  # the wheel toolchain's pins (zig, flags, target)
    binds: tuple[Bind, ...]  # zig, its compile cache, its wrappers
    bin_inside: str  # where the wrappers are: cc, c++, ar, ranlib, toolchain.cmake
    hidden: tuple[Path, ...]  # the host's compilers and headers
    chain: str  # "build" or "rebuild": whose cache the libraries go to
    cache: Path
    index: IndexOptions
    jobs: int = 0  # compiles at once (kiln build -j); 0: the CPU count
    # Cross builds: where the build machine's compiler wrappers are (cc, c++), for the
    # programs a library's build compiles and runs itself (OpenBLAS's getarch)
    build_bin_inside: str = ""


def fetch_source(spec: LibrarySpec, cache: Path) -> LibrarySource:
    """The library's source archive in ``cache/downloads/libraries``, its sha256 checked.

    A Debian source is looked up in the signed index once; the URL it gave is kept beside
    the archive, whose sha256 is what the recipe pins either way.
    """
    folder = cache / "downloads" / "libraries"
    found = folder / f"{spec.sha256[:16]}-{spec.name}.json"
    try:
        said = json.loads(found.read_text())
        target = folder / said["file"]
        if said["sha256"] == spec.sha256 and said["source"] == spec.source and \
                sha256_file(target) == spec.sha256:
            return LibrarySource(url=said["url"], filename=said["filename"], sha256=spec.sha256,
                                 path=target, debian=said["debian"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if spec.debian:
        url, filename, described = _debian_orig(spec, cache / "downloads" / "debian")
    else:
        url, described = spec.url, ""
        filename = spec.url.rstrip("/").rsplit("/", 1)[-1] or f"{spec.name}.tar.gz"
    target = folder / f"{spec.sha256[:16]}-{filename}"
    if not (target.is_file() and sha256_file(target) == spec.sha256):
        target.unlink(missing_ok=True)
        try:
            http.download(url, target, sha256=spec.sha256,
                          what=f"[library.{spec.name}] source {filename}")
        except FetchError as exc:
            if spec.debian and http.not_found(exc):
                # Seen here: an index that lists a stable update the mirror does not have.
                versions = debian.load_sources(spec.suite, cache / "downloads" / "debian")
                exc.hint = (f"Debian {spec.suite}'s signed index lists {described}, but the "
                            "mirror has no such file; pin another version it lists ("
                            f"{_origs(versions.get(spec.debian, []))}) or another suite")
            raise
    write_atomic(found, json.dumps({"source": spec.source, "url": url, "filename": filename,
                                    "file": target.name, "sha256": spec.sha256,
                                    "debian": described}))
    return LibrarySource(url=url, filename=filename, sha256=spec.sha256, path=target,
                         debian=described)


def _debian_orig(spec: LibrarySpec, downloads: Path) -> tuple[str, str, str]:
    """The URL of the ``.orig`` tarball of ``spec.debian`` whose sha256 is ``spec.sha256``,
    found through the suite's signed Sources index."""
    suite = debian.load_sources(spec.suite, downloads)
    versions = suite.get(spec.debian, [])
    if not versions:
        raise FetchError(f"[library.{spec.name}] debian: Debian {spec.suite} has no source "
                         f"package '{spec.debian}'",
                         hint="check the name (https://packages.debian.org/src:NAME) or set "
                              "suite to one that has it")
    for package in versions:
        for sha, _size, filename in package.files:
            if ".orig." in filename and not filename.endswith(".asc") and sha == spec.sha256:
                return (f"{debian.MIRROR}/{package.directory}/{filename}", filename,
                        f"{package.name} {package.version} ({spec.suite})")
    raise HashMismatchError(
        f"[library.{spec.name}] sha256: no .orig tarball of Debian {spec.suite}'s "
        f"{spec.debian} has sha256 {spec.sha256}",
        hint=f"the signed index lists {_origs(versions)}; pin one of those (check it is the "
             "version you want), or name the suite that still has yours")


def _origs(versions: Sequence[debian.SourcePackage]) -> str:
    """Each version's .orig tarballs with their sha256, for a hint."""
    return "; ".join(
        f"{p.version}: " + ", ".join(f"{f} {s}" for s, _, f in p.files
                                     if ".orig." in f and not f.endswith(".asc"))
        for p in versions)


def library_key(spec: LibrarySpec, lt: LibraryToolchain, deps: Sequence[BuiltLibrary],
                tools: Sequence[InstalledTool]) -> str:
    """The digest of everything that may change a library's bytes."""
    inputs = {
        "kiln": LIBRARY_BUILD_VERSION,
        "name": spec.name, "version": spec.version, "source": spec.sha256,
        "build": spec.build, "options": list(spec.options), "link": spec.link,
        "subdir": spec.subdir, "cflags": list(LIBRARY_CFLAGS),
        "toolchain": dict(lt.identity),
        "tools": sorted([t.pin.package, t.pin.version, t.wheel_sha256] for t in tools),
        "requires": sorted([d.spec.name, d.key] for d in deps),
    }
    return sha256_bytes(json.dumps(inputs, sort_keys=True).encode())


def install_tools(specs: Sequence[LibrarySpec], cache: Path,
                  index: IndexOptions) -> tuple[InstalledTool, ...]:
    """The pinned build tools the libraries of ``specs`` need (pkg-config always)."""
    names = dict.fromkeys(name for spec in specs for name in _TOOLS_FOR[spec.build])
    names.setdefault("pkg-config")
    return tuple(install_tool(name, cache, index) for name in names)


def prepare(specs: Sequence[LibrarySpec], lt: LibraryToolchain) -> tuple[BuiltLibrary, ...]:
    """Every library of a recipe, in order: from the cache, or built now and cached."""
    built: dict[str, BuiltLibrary] = {}
    for spec in specs:
        deps = [built[name] for name in spec.requires]
        tools = [install_tool(name, lt.cache, lt.index) for name in _TOOLS_FOR[spec.build]]
        source = fetch_source(spec, lt.cache)
        key = library_key(spec, lt, deps, tools)
        built[spec.name] = _cached_or_built(spec, source, key, deps, tools, lt)
    return tuple(built.values())


def _entry(lt: LibraryToolchain, spec: LibrarySpec, key: str) -> Path:
    return lt.cache / "libraries" / lt.chain / f"{spec.name}-{spec.version}-{key[:16]}"


def _load(entry: Path, spec: LibrarySpec, source: LibrarySource,
          key: str) -> BuiltLibrary | None:
    try:
        info = json.loads((entry / "kiln-library.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("key") != key or not (entry / "prefix").is_dir():
        return None
    touch(entry / "kiln-library.json")  # its age for pruning counts from its last use
    return BuiltLibrary(spec, source, key, entry / "prefix", info["digest"], cached=True)


def _cached_or_built(spec: LibrarySpec, source: LibrarySource, key: str,
                     deps: Sequence[BuiltLibrary], tools: Sequence[InstalledTool],
                     lt: LibraryToolchain) -> BuiltLibrary:
    entry = _entry(lt, spec, key)
    found = _load(entry, spec, source, key)
    if found is not None:
        reporter().note(f"library {spec.name} {spec.version}: cached ({key[:12]})")
        return found
    with exclusive(entry.with_name(entry.name + ".lock")):
        found = _load(entry, spec, source, key)
        if found is not None:
            return found
        reporter().stage("library", f"{spec.name} {spec.version} ({spec.build}, {spec.link}, "
                                    f"{lt.triple})")
        work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            prefix = _build(spec, source, deps, tools, lt, work)
            digest = tree_digest(prefix)
            staged = work / "entry"
            staged.mkdir()
            prefix.rename(staged / "prefix")
            write_atomic(staged / "kiln-library.json", json.dumps({
                "key": key, "digest": digest, "name": spec.name, "version": spec.version,
                "source": source.url, "sha256": source.sha256,
            }, indent=1))
            if entry.exists():
                shutil.rmtree(entry)
            staged.rename(entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return BuiltLibrary(spec, source, key, entry / "prefix", digest, cached=False)


def tool_wrappers(folder: Path, tools: Sequence[InstalledTool]) -> Path:
    """Scripts named pkg-config, cmake and ninja that run the pinned ones (seen inside)."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        text = (f"#!/bin/sh\n# written by kiln: {tool.pin.package} {tool.pin.version}\n"
                f'exec {shlex.quote(f"{tool.inside}/{tool.pin.binary}")} "$@"\n')
        write_if_changed(folder / tool.pin.name, text, 0o755)
    return folder


def _build(spec: LibrarySpec, source: LibrarySource, deps: Sequence[BuiltLibrary],
           tools: Sequence[InstalledTool], lt: LibraryToolchain, work: Path) -> Path:
    """Unpack and build one library in the sandbox; return its installed prefix (in work)."""
    for sub in ("build", "home", "tmp", "prefix"):
        (work / sub).mkdir()
    top = extract(source.path, work / "src")
    _same_times(top)
    src_host = top / spec.subdir if spec.subdir else top
    if not src_host.is_dir():
        raise BuildError(f"[library.{spec.name}] subdir: {spec.subdir!r} is not a folder of "
                         f"{source.filename}")
    src = f"{WORK_INSIDE}/src"
    prefix = f"{LIBS_INSIDE}/{spec.name}"
    wrappers = tool_wrappers(work / "tools-bin", tools)
    binds = (
        *lt.binds,
        Bind(top, src, writable=True),
        Bind(work / "build", f"{WORK_INSIDE}/build", writable=True),
        Bind(work / "home", f"{WORK_INSIDE}/home", writable=True),
        Bind(work / "prefix", prefix, writable=True),
        Bind(wrappers, TOOL_BIN_INSIDE, writable=False),
        *(Bind(t.root, t.inside, writable=False) for t in tools),
        *(Bind(d.prefix, d.inside, writable=False) for d in deps),
    )
    sandbox = Sandbox(binds=binds, tmp=work / "tmp", hidden=lt.hidden, stub=_stub(work))
    cwd = src + (f"/{spec.subdir}" if spec.subdir else "")
    env = _environment(spec, deps, lt)
    # Kept beside the cache entry, built or not: the work folder goes away.
    log = work.parent / "logs" / f"{work.name.lstrip('.').rsplit('.', 1)[0]}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    jobs = str(lt.jobs or os.cpu_count() or 1)
    for argv, where in _commands(spec, lt, cwd, prefix, deps, jobs):
        proc.run(sandbox.wrap(argv, cwd=where), env=env, log=log,
                 what=f"library {spec.name} {spec.version}: {' '.join(argv[:2])}",
                 error=BuildError,
                 hint=f"the library's own build failed; its log says why. Check "
                      f"[library.{spec.name}] options and build")
    installed = work / "prefix"
    for drop in _DROP:
        shutil.rmtree(installed / drop, ignore_errors=True)
    for la in installed.rglob("*.la"):  # libtool archives name the build's folders
        la.unlink()
    if spec.link == "static":
        # Some builds make a shared library whatever they are told (zlib's CMake): a
        # static library is linked from its archive only, so a wheel never needs the .so.
        for shared in [*installed.glob("lib/*.so"), *installed.glob("lib/*.so.*")]:
            shared.unlink()
    if not any(installed.iterdir()):
        raise BuildError(f"library {spec.name} {spec.version}: installed nothing into its "
                         "prefix", hint="check that the build's install step honours the "
                                        "prefix kiln gives it")
    return installed


def _same_times(top: Path) -> None:
    """Give every unpacked file one time: make then regenerates nothing the archive ships
    (configure, aclocal.m4, Makefile.in), which needs autotools kiln does not pin."""
    stamp = 315532800
    for path in (top, *top.rglob("*")):
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def _stub(work: Path) -> Path:
    stub = work / "hidden-tool"
    stub.write_text("#!/bin/sh\necho \"kiln: $0 is the host's; a library build runs only "
                    "kiln's pinned tools\" >&2\nexit 127\n")
    stub.chmod(0o755)
    return stub


def _environment(spec: LibrarySpec, deps: Sequence[BuiltLibrary],
                 lt: LibraryToolchain) -> dict[str, str]:
    cflags = " ".join(LIBRARY_CFLAGS)
    pc = ":".join(f"{d.inside}/lib/pkgconfig:{d.inside}/share/pkgconfig" for d in deps)
    path = [lt.bin_inside, TOOL_BIN_INSIDE, *(f"{d.inside}/bin" for d in deps),
            "/usr/bin", "/bin"]
    return {
        "PATH": ":".join(path),
        "HOME": f"{WORK_INSIDE}/home",
        "TMPDIR": "/tmp",
        "LC_ALL": "C", "LANG": "C", "TZ": "UTC",
        "SOURCE_DATE_EPOCH": "315532800",
        "CC": f"{lt.bin_inside}/cc", "CXX": f"{lt.bin_inside}/c++",
        "AR": f"{lt.bin_inside}/ar", "RANLIB": f"{lt.bin_inside}/ranlib",
        "LD": f"{lt.bin_inside}/ld",
        "CFLAGS": cflags, "CXXFLAGS": cflags,
        "CPPFLAGS": " ".join(f"-I{d.inside}/include" for d in deps),
        "LDFLAGS": " ".join(f"-L{d.inside}/lib" for d in deps),
        "PKG_CONFIG": f"{TOOL_BIN_INSIDE}/pkg-config",
        "PKG_CONFIG_PATH": pc, "PKG_CONFIG_LIBDIR": pc,
        # The build machine's compiler, under the names builds look for it by (autoconf's
        # CC_FOR_BUILD, OpenBLAS's and Linux's HOSTCC): the wheel's own when not crossing.
        **{name: f"{lt.build_bin_inside or lt.bin_inside}/{tool}"
           for name, tool in (("CC_FOR_BUILD", "cc"), ("CXX_FOR_BUILD", "c++"),
                              ("HOSTCC", "cc"), ("BUILD_CC", "cc"))},
    }


def _commands(spec: LibrarySpec, lt: LibraryToolchain, cwd: str, prefix: str,
              deps: Sequence[BuiltLibrary], jobs: str) -> list[tuple[list[str], str]]:
    """Each step of the library's build as argv, and the folder it runs in. Recipe options
    are arguments, one word each; nothing goes through a shell but the package's own
    configure script, run by sh."""
    static = spec.link == "static"
    if spec.build == "autotools":
        cross: list[str] = []
        if lt.target != host_target():
            gnu = _GNU_ARCH[lt.target.arch]
            cross = [f"--host={gnu}-linux-gnu", f"--build={_GNU_ARCH[host_target().arch]}"
                                                f"-linux-gnu"]
        configure = ["sh", f"{cwd}/configure", f"--prefix={prefix}", f"--libdir={prefix}/lib",
                     "--disable-dependency-tracking",
                     *(["--disable-shared", "--enable-static"] if static else
                       ["--enable-shared", "--disable-static"]),
                     *cross, *spec.options]
        return [(configure, cwd), (["make", f"-j{jobs}"], cwd), (["make", "install"], cwd)]
    if spec.build == "configure":
        configure = ["sh", f"{cwd}/configure", f"--prefix={prefix}", *spec.options]
        return [(configure, cwd), (["make", f"-j{jobs}"], cwd), (["make", "install"], cwd)]
    if spec.build == "cmake":
        build = f"{WORK_INSIDE}/build"
        configure = [f"{TOOL_BIN_INSIDE}/cmake", "-S", cwd, "-B", build, "-G", "Ninja",
                     f"-DCMAKE_MAKE_PROGRAM={TOOL_BIN_INSIDE}/ninja",
                     f"-DCMAKE_TOOLCHAIN_FILE={lt.bin_inside}/toolchain.cmake",
                     f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DCMAKE_INSTALL_LIBDIR=lib",
                     "-DCMAKE_BUILD_TYPE=Release",
                     f"-DBUILD_SHARED_LIBS={'OFF' if static else 'ON'}",
                     "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
                     "-DCMAKE_POLICY_VERSION_MINIMUM=3.5",
                     f"-DCMAKE_PREFIX_PATH={';'.join(d.inside for d in deps)}",
                     *spec.options]
        return [(configure, build),
                ([f"{TOOL_BIN_INSIDE}/cmake", "--build", build, "-j", jobs], build),
                ([f"{TOOL_BIN_INSIDE}/cmake", "--install", build], build)]
    if spec.build == "openssl":
        # Its Perl Configure for the wheel's target; install_sw installs the libraries and
        # headers without building the manual pages.
        configure = ["perl", f"{cwd}/Configure", _OPENSSL_TARGET[lt.target.arch],
                     f"--prefix={prefix}", "--libdir=lib",
                     "no-shared" if static else "shared", *spec.options]
        return [(configure, cwd), (["make", f"-j{jobs}"], cwd), (["make", "install_sw"], cwd)]
    if spec.build == "make":
        args = [f"PREFIX={prefix}", f"prefix={prefix}", *spec.options]
        return [(["make", f"-j{jobs}", *args], cwd), (["make", "install", *args], cwd)]
    raise UnsupportedError(f"[library.{spec.name}] build: kiln cannot build '{spec.build}'")


def wheel_environment(libs: Sequence[BuiltLibrary],
                      recipe_env: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """What the wheel's build is given so that it finds the libraries at /kiln/libs."""
    if not libs:
        return []
    given = dict(recipe_env)
    pc = ":".join(f"{lib.inside}/lib/pkgconfig:{lib.inside}/share/pkgconfig" for lib in libs)
    cppflags = " ".join(f"-I{lib.inside}/include" for lib in libs)
    ldflags = " ".join(f"-L{lib.inside}/lib" for lib in libs)
    env = [
        ("CPPFLAGS", f"{cppflags} {given['CPPFLAGS']}".strip() if "CPPFLAGS" in given
         else cppflags),
        ("LDFLAGS", f"{ldflags} {given['LDFLAGS']}".strip() if "LDFLAGS" in given else ldflags),
        ("PKG_CONFIG", f"{TOOL_BIN_INSIDE}/pkg-config"),
        ("PKG_CONFIG_PATH", pc),
        ("PKG_CONFIG_LIBDIR", pc),
        ("CMAKE_PREFIX_PATH", ";".join(lib.inside for lib in libs)),
    ]
    for lib in libs:
        env += [(name, value.replace("{prefix}", lib.inside))
                for name, value in lib.spec.environment]
    return env


def wheel_binds(libs: Sequence[BuiltLibrary], tools: Sequence[InstalledTool],
                wrappers: Path) -> tuple[Bind, ...]:
    return (*(Bind(lib.prefix, lib.inside, writable=False) for lib in libs),
            *(Bind(t.root, t.inside, writable=False) for t in tools),
            Bind(wrappers, TOOL_BIN_INSIDE, writable=False))


def recorded_tools(libs: Sequence[BuiltLibrary], tools: Sequence[InstalledTool]) -> list[Tool]:
    """The build tools the libraries were built with, for the record's toolchain."""
    found = [Tool(t.pin.package, t.pin.version, path=t.inside, sha256=t.wheel_sha256)
             for t in tools]
    if any(lib.spec.build in ("autotools", "configure", "make", "openssl") for lib in libs):
        make = describe_tool("make", "make (the host's)")
        if make is not None:
            found.append(make)
    if any(lib.spec.build == "openssl" for lib in libs):
        perl = describe_tool("perl", "perl (the host's)")
        if perl is not None:
            found.append(perl)
    return found

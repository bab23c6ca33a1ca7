"""The pinned zig: the C and C++ compiler, linker and libc of every hermetic Linux build.

zig comes from PyPI's ``ziglang`` wheel, pinned by version and by the wheel's sha256 in
``kiln/resources/toolchains.toml``, installed by kiln into its cache. It carries glibc
stubs for any version, so ``-target aarch64-linux-gnu.2.17`` links against glibc 2.17
whatever the host has, and it never searches the host's /usr/include or /usr/lib for a
target it is given. Small wrapper scripts (``cc``, ``c++``, ``ar`` …) put the target on
every call; the build sees them as ``CC``, ``CXX``, ``LDSHARED``, ``AR`` and first on
``PATH``. Nothing from a recipe is ever written into a wrapper.

A build sees the install, its compiler cache and the wrappers at fixed paths (``/kiln/
toolchain/…``, bubblewrap binds); without bubblewrap it sees them where they are and the
wrappers' prefix maps give the same names in every binary.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kiln import proc, toml
from kiln.errors import EnvironmentSetupError, UnsupportedError
from kiln.files import sha256_bytes, write_if_changed
from kiln.installer import IndexOptions
from kiln.toolchain.targets import Target, host_target
from kiln.toolchain.wheelinstall import install_wheel

# kiln's arch names → zig's (and CMake's CMAKE_SYSTEM_PROCESSOR). Other Linux arches zig
# could target are left out until kiln can test their wheels.
ZIG_ARCHES = {"x86_64": "x86_64", "aarch64": "aarch64"}
# Where a build sees the toolchain (bubblewrap binds), and the names its paths get in every
# binary when it runs without bubblewrap (prefix maps).
ZIG_INSIDE = "/kiln/toolchain/zig"  # the ziglang wheel's files: ziglang/zig, ziglang/lib
ZIG_CACHE_INSIDE = "/kiln/toolchain/zig-cache"
BIN_INSIDE = "/kiln/toolchain/bin"
# Given to every zig cc/c++ call (and so part of the toolchain's record and build id). zig
# turns UBSan on, and links its runtime, whenever -O is missing; gcc and clang do not,
# and C extensions lean on wrapping overflow, so it is switched off.
COMPILE_FLAGS = ("-fno-sanitize=undefined",)
# zig compiles its C++ runtime (libc++, libc++abi, libunwind …) on the first link that needs
# it, into its cache, and every later link copies it into the shared object: its debug info
# would name the folder that first link ran in, whichever build that was. clang reads edits
# to every command line it runs from CCC_OVERRIDE_OPTIONS ("#": silently), zig's own runtime
# compiles included, so every compile records "." as its folder.
DEBUG_DIR_OVERRIDE = "+-fdebug-compilation-dir=."
_GLIBC = re.compile(r"2\.\d{1,2}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_VERSION = re.compile(r"\d+\.\d+\.\d+(\.post\d+)?\Z")
# zig hands clang every CPU feature of the target by name, "-crc32" included for x86-64's
# baseline. clang turns crc32, popcnt, xsave and evex512 on in a function marked
# target("sse4.2"), target("avx") or target("avx512f") only when they were not switched off
# by name, which zig always does: crc32c's hardware path ('__builtin_ia32_crc32qi' needs
# target feature crc32) and AVX-512 dispatch (evex512) that gcc compiles fail to. These edits
# switch off avx512f (off already) in their place, so the features stay off everywhere else,
# as with gcc, and come on where the code asks, as with gcc and clang.
X86_FEATURE_EDITS = tuple(f"s/^-{feature}$/-avx512f/"
                          for feature in ("crc32", "popcnt", "xsave", "evex512"))


def clang_edits(triple: str) -> tuple[str, ...]:
    """The CCC_OVERRIDE_OPTIONS edits every compile for ``triple`` gets."""
    return (DEBUG_DIR_OVERRIDE, *(X86_FEATURE_EDITS if triple.startswith("x86_64") else ()))


def compile_edits(triple: str) -> str:
    """What the wrappers change in a compile's arguments for ``triple``, as shell."""
    return (CPU_NAME_EDIT + (AARCH64_MARCH_EDIT if triple.startswith("aarch64") else "")
            + DEPFILE_EDIT)


def compile_identity(triple: str) -> tuple[tuple[str, str], ...]:
    """What a compile for ``triple`` is made with, for the keys of builds and libraries:
    zig, the target, the flags and clang edits, and the wrappers' edits of the arguments."""
    return (("zig", pin_digest(zig_pin())), ("target", triple),
            ("flags", " ".join((*COMPILE_FLAGS, *clang_edits(triple)))),
            ("wrappers", sha256_bytes(compile_edits(triple).encode())[:16]))


def zig_cache_root(tools: Path) -> Path:
    """The folder of the compile caches. zig's cache keys leave CCC_OVERRIDE_OPTIONS out, so
    objects compiled under other edits must not be found: the folder is named by them."""
    digest = sha256_bytes(" ".join((DEBUG_DIR_OVERRIDE, *X86_FEATURE_EDITS)).encode())
    return tools / f"zigcache-{digest[:12]}"


def cache_entries(cache: Path) -> int:
    """How many objects a zig cache holds (0: a cold cache)."""
    try:
        return sum(1 for _ in (cache / "o").iterdir()) if (cache / "o").is_dir() else 0
    except OSError:
        return 0


def map_edits(maps: Iterable[tuple[str, str]], *, rewrite: bool = False) -> list[str]:
    """CCC_OVERRIDE_OPTIONS edits that add ``-ffile-prefix-map=seen=canonical`` to every
    compile (clang splits the edits at spaces: a folder with one in its name is left out).

    With ``rewrite``, ``s/…/…/`` edits also point a build's own map into ``seen`` at the
    canonical folder: propcache's backend copies its sources to a random folder and maps
    that back to the folder kiln built in, which kiln's maps no longer reach, so the twin's
    folder ended up in the debug info. clang's pattern cannot hold a ``/`` (any character
    stands for it); folders with a character a pattern could not carry are not rewritten.
    """
    usable = [(a, b) for a, b in maps if not any(c.isspace() for c in a + b)]
    rewrites = [f"s/^(-f[a-z-]*prefix-map=[^=]*=){_pattern(seen)}(.*)$/\\1{canon}\\2/"
                for seen, canon in usable
                if rewrite and seen != canon and not any(c in "\\[]^" for c in seen + canon)]
    return [*rewrites, *(f"+-ffile-prefix-map={seen}={canon}" for seen, canon in usable)]


def _pattern(path: str) -> str:
    """``path`` as a POSIX extended regular expression with no ``/`` in it."""
    return "".join("." if c == "/" else c if c.isalnum() or c in "_-" else f"[{c}]"
                   for c in path)


# Wrapper name → the zig subcommand and whether it compiles (takes -target and prefix maps).
WRAPPERS: dict[str, tuple[str, bool]] = {
    "cc": ("cc", True), "gcc": ("cc", True), "clang": ("cc", True),
    "c++": ("c++", True), "g++": ("c++", True), "clang++": ("c++", True),
    "ar": ("ar", False), "ranlib": ("ranlib", False), "objcopy": ("objcopy", False),
    # The linker itself, for builds that ask for it by name (libtool's shared-library probe
    # reads `$LD -v`; lld says it is "compatible with GNU linkers").
    "ld": ("ld.lld", False),
}

# CMAKE_CROSSCOMPILING_EMULATOR of a cross build. CMake's FindPython asks it to run the
# build's Python, which is the right interpreter to ask: kiln's _PYTHON_SYSCONFIGDATA_NAME
# makes it report the target's sysconfig (SOABI, EXT_SUFFIX). Anything else it is asked to
# run is a program compiled for the target (try_run), which a cross build never runs: the
# host's binfmt and qemu must not shape a wheel. Its message is the one kiln's hint for a
# build that ran a target binary looks for.
EMULATOR = "cross-emulator"
EMULATOR_SCRIPT = """#!/bin/sh
# written by kiln: runs only the build's Python interpreter in a cross build
case "${1##*/}" in
  python|python3|python3.[0-9]|python3.[0-9][0-9]) exec "$@" ;;
esac
echo "kiln: cannot run test program while cross compiling: $1 was compiled for the target" >&2
exit 126
"""


@dataclass(frozen=True)
class ZigPin:
    """The zig kiln uses: a version of the ``ziglang`` wheel and each host's wheel digest."""

    package: str
    version: str
    wheels: tuple[tuple[str, str], ...]  # (host target name, sha256)

    def wheel_sha256(self, host: Target) -> str:
        found = dict(self.wheels).get(host.name)
        if found is None:
            raise UnsupportedError(
                f"no pinned {self.package} {self.version} wheel for a {host.name} host",
                hint=f"pinned hosts: {', '.join(h for h, _ in self.wheels)}; add this host's "
                     "wheel sha256 (from PyPI) to kiln/resources/toolchains.toml")
        return found


def parse_pin(text: str, where: str = "toolchains.toml") -> ZigPin:
    """The ``[zig]`` table of a toolchains file, checked field by field."""
    data = toml.loads(text).get("zig")
    if not isinstance(data, dict):
        raise EnvironmentSetupError(f"{where}: no [zig] table")
    package, version, wheels = data.get("package"), data.get("version"), data.get("wheels")
    if not isinstance(package, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", package):
        raise EnvironmentSetupError(f"{where}: [zig] package must be a project name")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise EnvironmentSetupError(f"{where}: [zig] version must look like 0.15.2")
    if not isinstance(wheels, dict) or not wheels:
        raise EnvironmentSetupError(f"{where}: [zig.wheels] must map hosts to sha256 digests")
    for host, digest in wheels.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise EnvironmentSetupError(f"{where}: [zig.wheels] {host}: not a sha256 digest")
    return ZigPin(package, version, tuple(sorted(wheels.items())))


@functools.cache
def zig_pin() -> ZigPin:
    text = (resources.files("kiln") / "resources" / "toolchains.toml").read_text("utf-8")
    return parse_pin(text, "kiln/resources/toolchains.toml")


def pin_digest(pin: ZigPin) -> str:
    """The pin itself, every host's wheel included: the same zig whichever host runs it."""
    return sha256_bytes(json.dumps([pin.package, pin.version, list(pin.wheels)]).encode())


@dataclass(frozen=True)
class ZigInstall:
    root: Path  # <cache>/tools/ziglang-<version>
    version: str
    wheel_sha256: str

    @property
    def zig(self) -> Path:
        return self.root / "ziglang" / "zig"

    @property
    def lib(self) -> Path:
        return self.root / "ziglang" / "lib"



def install_zig(cache: Path, index: IndexOptions, *, log: Path | None = None) -> ZigInstall:
    """The pinned zig, installed into ``cache/tools`` with ``--require-hashes`` if needed."""
    pin = zig_pin()
    sha = pin.wheel_sha256(host_target())
    root = cache / "tools" / f"{pin.package}-{pin.version}"

    def says_its_version(zig: Path) -> None:
        out = proc.capture([zig, "version"], what="zig version", error=EnvironmentSetupError,
                           quiet=True)
        said = out.stdout.decode().strip()
        if said != pin.version.split(".post")[0]:
            raise EnvironmentSetupError(f"the {pin.package} {pin.version} wheel holds zig "
                                        f"{said!r}")

    install_wheel(pin.package, pin.version, sha, root, index, program="ziglang/zig",
                  check=says_its_version, log=log,
                  hint="the zig backend needs the ziglang wheel from the index (about 90 MB, "
                       "once)")
    return ZigInstall(root, pin.version, sha)


def zig_triple(target: Target, glibc: str) -> str:
    """zig's ``-target`` for a kiln target and a glibc version (``aarch64-linux-gnu.2.17``)."""
    if not target.is_linux or target.arch not in ZIG_ARCHES:
        raise UnsupportedError(
            f"the zig backend builds for {', '.join('linux-' + a for a in ZIG_ARCHES)}, "
            f"not {target.name}",
            hint="macOS wheels need a macOS runner (--backend cibuildwheel)")
    if not _GLIBC.match(glibc):
        raise UnsupportedError(f"glibc {glibc!r} is not a version like 2.17")
    return f"{ZIG_ARCHES[target.arch]}-linux-gnu.{glibc}"




@dataclass(frozen=True)
class ZigLayout:
    """Where a build sees the zig install, the compiler cache it fills and the wrappers."""

    install: str  # the ziglang wheel's files (``ziglang/zig``)
    cache: str
    bin: str

    @classmethod
    def fixed(cls) -> ZigLayout:
        return cls(ZIG_INSIDE, ZIG_CACHE_INSIDE, BIN_INSIDE)

    def prefix_maps(self) -> list[tuple[str, str]]:
        """(seen, canonical) for each folder seen elsewhere than at its fixed path."""
        pairs = ((f"{self.install}/ziglang/lib", f"{ZIG_INSIDE}/ziglang/lib"),
                 (self.cache, ZIG_CACHE_INSIDE), (self.bin, BIN_INSIDE))
        return [(seen, canon) for seen, canon in pairs if seen != canon]


# zig caches no compile that writes its own dependency file (-MD/-MMD with -MF, as ninja,
# meson, CMake and automake ask for), so those builds compiled every object every time and
# shared nothing between Pythons. A kiln build runs once, in a fresh folder, and never
# rebuilds incrementally, which is all a dependency file is read for: the wrappers take those
# options off a plain compile (``-c``, one source, no ``-M``/``-MM``/``-E``/``-Wp,``), write
# the dependency file themselves (the object and its source; the headers it read are not
# listed), and let zig's cache see the compile. Anything else runs as it was given.
DEPFILE_EDIT = r"""depfile= deptarget= depsrc= wantdep= compiles= out= prev= odd=
for a do
  case $prev in
    -MF) depfile=$a; prev=; continue ;;
    -MT|-MQ) deptarget=${deptarget:+$deptarget }$a; prev=; continue ;;
    -o) out=$a; prev=; continue ;;
    ?*) prev=; continue ;;
  esac
  case $a in
    -MD|-MMD) wantdep=1 ;;
    -c) compiles=1 ;;
    -MF|-MT|-MQ|-o) prev=$a ;;
    -MF?*) depfile=${a#-MF} ;;
    -MT?*|-MQ?*) deptarget=${deptarget:+$deptarget }${a#-M?} ;;
    -o?*) out=${a#-o} ;;
    -M|-MM|-E|-MG|-Wp,*|-x|-Xclang|-Xpreprocessor) odd=1 ;;
    -I|-isystem|-iquote|-idirafter|-include|-imacros|-D|-U|-L|-l|-target|-Xlinker) prev=$a ;;
    -*) ;;
    *.c|*.cc|*.cpp|*.cxx|*.c++|*.C|*.cp|*.CPP|*.S|*.s|*.m|*.mm)
      if [ -n "$depsrc" ]; then odd=1; fi; depsrc=$a ;;
  esac
done
if [ -n "$wantdep" ] && [ -n "$compiles" ] && [ -z "$odd" ] && [ -n "$depsrc" ] \
    && [ -n "$out" ]; then
  [ -n "$depfile" ] || depfile=${out%.*}.d
  [ -n "$deptarget" ] || deptarget=$out
  case "$deptarget$depsrc" in
    *[!A-Za-z0-9_./+=,@%~-]*) ;;
    *)
      for a do
        shift
        case $prev in
          drop) prev=; continue ;;
        esac
        case $a in
          -MD|-MMD|-MP|-MF?*|-MT?*|-MQ?*) continue ;;
          -MF|-MT|-MQ) prev=drop; continue ;;
        esac
        set -- "$@" "$a"
      done
      printf '%s: %s\n' "$deptarget" "$depsrc" > "$depfile" || exit 1 ;;
  esac
fi
"""


# GCC and clang name CPUs with hyphens (-march=x86-64-v3, skylake-avx512, -mcpu=cortex-a72);
# zig's -march and -mcpu read a hyphen as "minus a feature" and name the same CPUs with
# underscores, so such a compile stopped with "unknown CPU feature". The wrappers pass the
# name zig knows. -mtune is left out: GCC and clang tune the schedule for that CPU and never
# use an instruction -march does not allow, but zig reads -mtune as the CPU to compile for,
# so "-march=x86-64 -mtune=haswell" made AVX2 code that stops with SIGILL on older machines.
# -march=native and -mcpu=native are left out too: they compile for the build machine's
# CPU, so the wheel would differ from one build machine to the next and stop with SIGILL on
# a CPU older than the builder's. A wheel is built for its target's baseline, and for what
# a package asks by name (-mavx2, -march=haswell, a target attribute).
CPU_NAME_EDIT = r"""for a do
  shift
  case $a in
    -mtune=*|-march=native|-mcpu=native) continue ;;
    -march=*-*|-mcpu=*-*)
      o=${a%%=*} v=${a#*=} n=
      while :; do
        case $v in
          *-*) n=$n${v%%-*}_ v=${v#*-} ;;
          *) n=$n$v; break ;;
        esac
      done
      a=$o=$n ;;
  esac
  set -- "$@" "$a"
done
"""

# GCC names an aarch64 architecture and its extensions with -march=armv8.2-a+crc+nofp16;
# zig takes no -march for aarch64 (it lists its CPUs and stops) but the same as a CPU
# model with features: -mcpu=generic+v8_2a+crc-fullfp16. Run after CPU_NAME_EDIT, so
# hyphens are already underscores (armv8.2_a, sve2_bitperm). The extensions GCC spells
# differently from LLVM are renamed; a "no" extension is taken away. zig gives the CPU
# model to C and C++ but not to the assembler of a .S file (OpenBLAS's SVE kernels), so
# the architecture also goes to the assembler as GCC spells it: -Wa,-march=armv8.2-a+crc.
AARCH64_MARCH_EDIT = r"""for a do
  shift
  case $a in
    -march=armv[89]_a|-march=armv[89]_a+*|-march=armv[89].[0-9]_a|-march=armv[89].[0-9]_a+*)
      v=${a#-march=armv} f=
      case $v in *+*) f=${v#*+} v=${v%%+*} ;; esac
      v=${v%_a}
      g=armv$v-a
      case $v in
        8) n=generic ;;
        *.*) n=generic+v${v%.*}_${v#*.}a ;;
        *) n=generic+v${v}a ;;
      esac
      while [ -n "$f" ]; do
        x=${f%%+*} s=+
        case $f in *+*) f=${f#*+} ;; *) f= ;; esac
        r=$x h=
        while :; do
          case $r in
            *_*) h=$h${r%%_*}- r=${r#*_} ;;
            *) h=$h$r; break ;;
          esac
        done
        g=$g+$h
        case $x in no?*) x=${x#no} s=- ;; esac
        case $x in
          fp16) x=fullfp16 ;; simd) x=neon ;; fp) x=fp_armv8 ;; memtag) x=mte ;;
          rng) x=rand ;; profile) x=spe ;;
        esac
        n=$n$s$x
      done
      set -- "$@" "-mcpu=$n" "-Wa,-march=$g"
      continue ;;
  esac
  set -- "$@" "$a"
done
"""

# meson makes its internal static libraries thin (`ar csrDT`): an archive that only names
# its objects. zig's linker reads no thin archive ("unexpected token in LD script: literal:
# '!<thin>'"), so the ar wrapper makes a whole one (the same objects, inside it): the T
# modifier comes off the operation, and --thin goes.
THIN_ARCHIVE_EDIT = r"""first=1
for a do
  shift
  if [ -n "$first" ]; then
    first=
    case $a in
      *[!A-Za-z-]*) ;;
      -*T*|[A-Za-z]*T*) a=$(printf '%s' "$a" | tr -d T) ;;
    esac
  fi
  case $a in
    --thin) continue ;;
  esac
  set -- "$@" "$a"
done
"""


def wrapper_scripts(layout: ZigLayout, version: str, triple: str,
                    extra_maps: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """Each wrapper's text. Every value is quoted; none comes from a recipe.

    ``extra_maps`` are more (seen, canonical) folders, for a build without fixed paths.
    """
    q = shlex.quote
    zig = f"{layout.install}/ziglang/zig"
    pairs = [*layout.prefix_maps(), *((a, b) for a, b in extra_maps if a != b)]
    # The runtime's compiles get the prefix maps this way too (clang splits the edits at
    # spaces, so a folder with one in its name keeps its own name there).
    edits = ["#", *clang_edits(triple), *map_edits(pairs)]
    # KILN_PREFIX_EDITS: the build folder's maps, which kiln sets per build (kiln.buildenv).
    exports = (f"ZIG_GLOBAL_CACHE_DIR={q(layout.cache)}\n"
               f"ZIG_LOCAL_CACHE_DIR={q(layout.cache)}\n"
               f"CCC_OVERRIDE_OPTIONS={q(' '.join(edits))}\n"
               'if [ -n "${KILN_PREFIX_EDITS:-}" ]; then\n'
               '  CCC_OVERRIDE_OPTIONS="$CCC_OVERRIDE_OPTIONS $KILN_PREFIX_EDITS"\n'
               "fi\n"
               "export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR CCC_OVERRIDE_OPTIONS\n")
    maps = " ".join(q(f"-ffile-prefix-map={seen}={canon}") for seen, canon in pairs)
    flags = " ".join(q(f) for f in COMPILE_FLAGS)
    edits_of_compiles = compile_edits(triple)
    scripts = {}
    for name, (sub, compiles) in WRAPPERS.items():
        args = " ".join(x for x in (sub, "-target", q(triple), flags, maps) if x) if compiles \
            else sub
        scripts[name] = (f"#!/bin/sh\n# written by kiln: zig {version} {sub}"
                         + (f" for {triple}" if compiles else "") + "\n"
                         + exports + (edits_of_compiles if compiles else "")
                         + (THIN_ARCHIVE_EDIT if name == "ar" else "")
                         + f'exec {q(zig)} {args} "$@"\n')
    return scripts


def _cmake_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def cmake_toolchain(bin_dir: str, target: Target, cross: bool) -> str:
    """A CMake toolchain file: zig's wrappers, and the target system when cross-compiling."""
    lines = ["# written by kiln for the hermetic toolchain"]
    if cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)",
                  f"set(CMAKE_SYSTEM_PROCESSOR {ZIG_ARCHES[target.arch]})",
                  # CMake 4.1's FindPython runs the interpreter through this when
                  # cross-compiling, and refuses to look for one without it (CMP0190).
                  "set(CMAKE_CROSSCOMPILING_EMULATOR "
                  f"{_cmake_quote(bin_dir + '/' + EMULATOR)})"]
    lines += [f"set(CMAKE_C_COMPILER {_cmake_quote(bin_dir + '/cc')})",
              f"set(CMAKE_CXX_COMPILER {_cmake_quote(bin_dir + '/c++')})",
              f"set(CMAKE_AR {_cmake_quote(bin_dir + '/ar')} CACHE FILEPATH \"\")",
              f"set(CMAKE_RANLIB {_cmake_quote(bin_dir + '/ranlib')} CACHE FILEPATH \"\")"]
    return "\n".join(lines) + "\n"


def write_wrappers(folder: Path, layout: ZigLayout, version: str, triple: str, target: Target,
                   cross: bool, extra_maps: tuple[tuple[str, str], ...] = ()) -> Path:
    """The wrappers for ``triple`` in ``folder`` (rewritten only when their text changes)."""
    files = {name: (text, 0o755) for name, text in
             wrapper_scripts(layout, version, triple, extra_maps).items()}
    files["toolchain.cmake"] = (cmake_toolchain(layout.bin, target, cross), 0o644)
    files[EMULATOR] = (EMULATOR_SCRIPT, 0o755)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (text, mode) in files.items():
        write_if_changed(folder / name, text, mode)
    return folder

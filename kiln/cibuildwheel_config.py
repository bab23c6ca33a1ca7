"""A recipe, for one Python and one target, as cibuildwheel's configuration.

The translation is pure data: the same recipe and inputs give the same ``CIBW_*``
variables (and the same ``[tool.cibuildwheel]`` table), which ``kiln build --backend
cibuildwheel --print-config`` shows and the backend hands to cibuildwheel.

How kiln's guarantees carry over:

- **Pinned images**: every manylinux/musllinux image is named by digest, from
  ``kiln/resources/cibuildwheel-images.cfg``; the recipe's ``glibc`` picks the policy.
- **Locked build requirements, hashes enforced**: cibuildwheel's ``dependency-versions``
  pins only its own tools (and not on Linux, where the image's tools are used), and it
  no longer constrains ``build-system.requires`` (cibuildwheel#2583). So kiln builds
  without isolation (``build; args: --no-isolation``) and installs the lock itself in
  ``before-build`` with ``pip install --require-hashes --no-deps``: a requirement whose
  bytes differ from the lock fails the build, exactly as on the native backend.
- **Literal environment**: cibuildwheel evaluates ``CIBW_ENVIRONMENT`` like bash
  (``$VAR``, ``$(cmd)``). Each value is put in double quotes with ``"``, ``\\``, ``$`` and
  backquote escaped, which its parser (and bash) read back as the literal value.
- **Reproducibility**: ``SOURCE_DATE_EPOCH``, ``PYTHONHASHSEED``, ``LC_ALL``/``LANG``, ``TZ``
  and ``-ffile-prefix-map`` (``--remap-path-prefix`` for Rust) as on every kiln build.
- **Tests**: the recipe's commands, each already split into words, re-joined with shell
  quoting so the shell cibuildwheel runs them with gives back exactly those words.
"""

from __future__ import annotations

import configparser
import functools
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kiln import toml
from kiln.buildenv import CANONICAL, Surroundings
from kiln.errors import UnsupportedError
from kiln.installer import PYPI_SIMPLE, IndexOptions
from kiln.recipe import Recipe
from kiln.toolchain.sandbox import CANONICAL_ROOT
from kiln.toolchain.targets import Target

# Where the backend writes the recipe's lock, relative to the folder cibuildwheel copies
# in as {project} (``/project`` in the container).
LOCK_NAME = "kiln-build-requirements.txt"
# The folder cibuildwheel copies the working directory to inside its Linux containers.
CONTAINER_PROJECT = "/project"
# The glibc each manylinux policy links against.
POLICY_GLIBC = {"manylinux2014": (2, 17), "manylinux_2_28": (2, 28), "manylinux_2_34": (2, 34)}
MUSLLINUX_POLICY = "musllinux_1_2"
_IMAGE = re.compile(r"(?P<repo>[a-z0-9./_-]+)@sha256:(?P<digest>[0-9a-f]{64})\Z")


@dataclass(frozen=True)
class PinnedImage:
    arch: str
    policy: str  # "manylinux2014"
    reference: str  # "quay.io/pypa/manylinux2014_x86_64@sha256:…"
    label: str  # the image's date tag, from the comment ("2026.10.26-1")

    @property
    def digest(self) -> str:
        """The hex sha256 the reference pins."""
        return self.reference.rsplit("@sha256:", 1)[1]

    @property
    def platform_tag(self) -> str:
        """The PEP 600/656 tag auditwheel is told to reach (``manylinux_2_17_x86_64``)."""
        glibc = POLICY_GLIBC.get(self.policy)
        if glibc is None:
            return f"{self.policy}_{self.arch}"
        return f"manylinux_{glibc[0]}_{glibc[1]}_{self.arch}"


@functools.cache
def pinned_images() -> dict[str, dict[str, PinnedImage]]:
    """arch → policy → image, from the resource file; every entry pinned by digest."""
    text = resources.files("kiln").joinpath("resources/cibuildwheel-images.cfg").read_text(
        encoding="utf-8")
    parser = configparser.ConfigParser(inline_comment_prefixes=None, interpolation=None)
    parser.read_string(text)
    images: dict[str, dict[str, PinnedImage]] = {}
    for arch in parser.sections():
        for policy, raw in parser.items(arch):
            reference, _, comment = raw.partition("#")
            reference = reference.strip()
            if not _IMAGE.match(reference):
                msg = f"cibuildwheel-images.cfg: [{arch}] {policy} is not pinned by digest"
                raise UnsupportedError(msg, hint="every image must be NAME@sha256:<64 hex>")
            images.setdefault(arch, {})[policy] = PinnedImage(arch, policy, reference,
                                                              comment.strip())
    return images


def manylinux_image(arch: str, glibc: str) -> PinnedImage:
    """The newest pinned manylinux image for ``arch`` that links no newer glibc than ``glibc``."""
    wanted = tuple(int(x) for x in glibc.split("."))
    by_policy = pinned_images().get(arch)
    if not by_policy:
        raise UnsupportedError(f"cibuildwheel: no pinned manylinux image for {arch}",
                               hint=f"kiln pins images for: {', '.join(pinned_images())}")
    fitting = [(POLICY_GLIBC[p], img) for p, img in by_policy.items()
               if p in POLICY_GLIBC and POLICY_GLIBC[p] <= wanted]
    if not fitting:
        lowest = min(".".join(map(str, POLICY_GLIBC[p])) for p in by_policy if p in POLICY_GLIBC)
        raise UnsupportedError(f"cibuildwheel: no manylinux image for glibc {glibc} or older",
                               hint=f"the oldest pinned image links glibc {lowest}; "
                                    f"set [build] glibc = \"{lowest}\" or newer")
    return max(fitting, key=lambda pair: pair[0])[1]


def musllinux_image(arch: str) -> PinnedImage | None:
    return pinned_images().get(arch, {}).get(MUSLLINUX_POLICY)


def literal(value: str) -> str:
    """``value`` as a double-quoted word that bash and cibuildwheel read back unchanged."""
    return '"' + re.sub(r'(["\\$`])', r"\\\1", value) + '"'


def quoted_inner(value: str) -> str:
    """What goes between the double quotes cibuildwheel puts around a TOML environment value."""
    return literal(value)[1:-1]


def identifier(python: str, target: Target) -> str:
    """cibuildwheel's build identifier (``cp311-manylinux_x86_64``, ``cp312-macosx_arm64``)."""
    tag = "cp" + python.replace(".", "")
    if target.is_linux:
        return f"{tag}-manylinux_{target.arch}"
    if target.is_macos:
        return f"{tag}-macosx_{target.arch}"
    raise UnsupportedError(f"cibuildwheel: kiln does not build {target.name} with cibuildwheel")


@dataclass(frozen=True)
class CibuildwheelConfig:
    """Everything cibuildwheel is told for one build, in both of the forms it reads."""

    identifier: str
    platform: str  # "linux" | "macos"
    arch: str
    options: tuple[tuple[str, str], ...]  # CIBW_* variables, in a fixed order
    table: Mapping[str, Any]  # the same as [tool.cibuildwheel]
    build_environment: tuple[tuple[str, str], ...]  # literal values the build step sees
    image: PinnedImage | None
    project_root: str  # where {project} is while building

    def env(self) -> dict[str, str]:
        return dict(self.options)

    def to_toml(self) -> str:
        return toml.dumps({"tool": {"cibuildwheel": dict(self.table)}})

    def argv(self, package_dir: str, output_dir: str) -> list[str]:
        """cibuildwheel's command line (after ``python -m cibuildwheel``)."""
        return ["--platform", self.platform, "--archs", self.arch, "--output-dir", output_dir,
                package_dir]


def source_dir(surroundings: Surroundings = CANONICAL) -> str:
    """Where under ``{project}`` the sdist is unpacked: ``src``, deeper for a varied rebuild.

    cibuildwheel always copies the project to ``/project``; the path below it is the part
    of the build path kiln can vary.
    """
    if surroundings.root_inside == CANONICAL.root_inside:
        return "src"
    return surroundings.root_inside.strip("/") + "/src"


def build_environment(recipe: Recipe, *, source_date_epoch: int, project_root: str,
                      surroundings: Surroundings = CANONICAL,
                      extra_env: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """The variables the build sees: the recipe's, then kiln's fixed ones (kiln's win)."""
    env = dict(recipe.environment)
    env.update(extra_env)
    env.update(
        SOURCE_DATE_EPOCH=str(source_date_epoch),
        PYTHONHASHSEED=surroundings.hash_seed,
        LC_ALL=surroundings.locale,
        LANG=surroundings.locale,
        TZ=surroundings.timezone,
    )
    # The sdist is unpacked under {project}: map it to the path every kiln build uses.
    seen, canonical = f"{project_root}/{source_dir(surroundings)}", f"{CANONICAL_ROOT}/src"
    for var, flag in (("CFLAGS", "-ffile-prefix-map"), ("CXXFLAGS", "-ffile-prefix-map"),
                      ("RUSTFLAGS", "--remap-path-prefix")):
        mapping = f"{flag}={seen}={canonical}"
        env[var] = f"{env[var]} {mapping}" if var in env else mapping
    if surroundings.reverse_env:
        env = dict(reversed(list(env.items())))
    return env


def _install_lock_command(index: IndexOptions, target: Target) -> str:
    """``before-build``: install the lock into the build's Python, hashes required."""
    argv = ["python", "-m", "pip", "install", "--require-hashes", "--no-deps"]
    if index.no_index:
        argv.append("--no-index")
    elif index.index_url != PYPI_SIMPLE:
        argv += ["--index-url", index.index_url]
    for link in index.find_links:
        # Linux builds run in a container that sees the host's root at /host.
        local = "://" not in link
        argv += ["--find-links", f"/host{link}" if local and target.is_linux else link]
    # {project} is a placeholder cibuildwheel fills in; it is not shell syntax.
    return shlex.join(argv) + " -r {project}/" + LOCK_NAME


def _repair_command(image: PinnedImage | None, target: Target) -> str:
    if target.is_linux:
        assert image is not None
        return f"auditwheel repair --plat {image.platform_tag} -w {{dest_dir}} {{wheel}}"
    return "delocate-wheel --require-archs {delocate_archs} -w {dest_dir} -v {wheel}"


def translate(
    recipe: Recipe,
    python: str,
    target: Target,
    *,
    source_date_epoch: int,
    project_root: str = CONTAINER_PROJECT,
    surroundings: Surroundings = CANONICAL,
    extra_env: tuple[tuple[str, str], ...] = (),
    index: IndexOptions | None = None,
    container_engine: str = "docker",
    config_settings: Mapping[str, str] | None = None,
) -> CibuildwheelConfig:
    """The cibuildwheel configuration that builds ``recipe`` for CPython ``python`` on ``target``.

    ``project_root`` is where cibuildwheel's ``{project}`` is while building: ``/project``
    in Linux containers, the host folder on macOS. ``config_settings`` are the ones the
    backend gets (``kiln.pep517.effective_config_settings``); by default, the recipe's.
    """
    settings = dict(recipe.config_settings if config_settings is None else config_settings)
    index = index or IndexOptions()
    ident = identifier(python, target)
    platform = "linux" if target.is_linux else "macos"
    image = manylinux_image(target.arch, recipe.glibc) if target.is_linux else None
    musl = musllinux_image(target.arch) if target.is_linux else None
    env = build_environment(recipe, source_date_epoch=source_date_epoch,
                            project_root=project_root, surroundings=surroundings,
                            extra_env=extra_env)
    before_build = _install_lock_command(index, target)
    repair = _repair_command(image, target)
    tests = " && ".join(shlex.join(argv) for argv in recipe.test.commands)
    # Only the lock's installs need a way to the host; everything else stays in the container.
    host_mount = any("://" not in link for link in index.find_links)

    options: list[tuple[str, str]] = [
        ("CIBW_PLATFORM", platform),
        ("CIBW_BUILD", ident),
        ("CIBW_ARCHS", target.arch),
        ("CIBW_BUILD_FRONTEND", "build; args: --no-isolation"),
        ("CIBW_BEFORE_BUILD", before_build),
        ("CIBW_ENVIRONMENT", " ".join(f"{k}={literal(v)}" for k, v in env.items())),
        ("CIBW_REPAIR_WHEEL_COMMAND", repair),
        ("CIBW_DEPENDENCY_VERSIONS", "pinned"),
        ("CIBW_BUILD_VERBOSITY", "1"),
    ]
    table: dict[str, Any] = {
        "build": ident,
        "archs": [target.arch],
        "build-frontend": {"name": "build", "args": ["--no-isolation"]},
        "before-build": before_build,
        "environment": {k: quoted_inner(v) for k, v in env.items()},
        "repair-wheel-command": repair,
        "dependency-versions": "pinned",
        "build-verbosity": 1,
    }
    if settings:
        options.append(("CIBW_CONFIG_SETTINGS", " ".join(
            shlex.quote(f"{k}={v}") for k, v in settings.items())))
        table["config-settings"] = settings
    if image is not None:
        key = target.arch.upper()
        options.append((f"CIBW_MANYLINUX_{key}_IMAGE", image.reference))
        table[f"manylinux-{target.arch}-image"] = image.reference
        if musl is not None:
            options.append((f"CIBW_MUSLLINUX_{key}_IMAGE", musl.reference))
            table[f"musllinux-{target.arch}-image"] = musl.reference
        engine = container_engine if host_mount else f"{container_engine}; disable_host_mount: true"
        options.append(("CIBW_CONTAINER_ENGINE", engine))
        table["container-engine"] = ({"name": container_engine} if host_mount else
                                     {"name": container_engine, "disable-host-mount": True})
    if tests:
        options.append(("CIBW_TEST_COMMAND", tests))
        table["test-command"] = tests
    if recipe.test.requires:
        options.append(("CIBW_TEST_REQUIRES", shlex.join(recipe.test.requires)))
        table["test-requires"] = list(recipe.test.requires)
    return CibuildwheelConfig(identifier=ident, platform=platform, arch=target.arch,
                              options=tuple(options), table=table,
                              build_environment=tuple(env.items()), image=image,
                              project_root=project_root)

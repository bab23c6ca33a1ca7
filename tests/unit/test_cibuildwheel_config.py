"""A recipe as cibuildwheel's configuration, read back by cibuildwheel's own option parser."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from kiln import toml
from kiln.buildenv import varied
from kiln.cibuildwheel_config import (
    LOCK_NAME,
    identifier,
    literal,
    manylinux_image,
    pinned_images,
    source_dir,
    translate,
)
from kiln.errors import UnsupportedError
from kiln.installer import IndexOptions
from kiln.recipe import parse_recipe
from kiln.toolchain.targets import TARGETS

cibw_options = pytest.importorskip("cibuildwheel.options", reason="cibuildwheel is not installed "
                                   "(pip install -e '.[test]')")

SHA = "b" * 64
NASTY = {
    "SHELL_SYNTAX": "$(touch /tmp/pwned) `id` $HOME ${X:-y}",
    "QUOTES": "it's \"quoted\"",
    "SPACES": "a  b\tc",
    "BACKSLASH": "C:\\path\\n",
    "EMPTY": "",
    "NEWLINE": "one\ntwo",
    "UNICODE": "ünï €",
}


def make_recipe(tmp_path: Path, *, environment: dict[str, str] | None = None,
                glibc: str = "2.17", tests: tuple[str, ...] = (),
                test_requires: tuple[str, ...] = (), config: dict[str, str] | None = None):
    data = {
        "package": {"name": "demo", "version": "1.0"},
        "source": {"url": "https://example.org/demo-1.0.tar.gz", "sha256": SHA},
        "build": {
            "python": ["3.10", "3.11"], "targets": ["linux-x86_64"], "backend": "cibuildwheel",
            "glibc": glibc, "config-settings": config or {},
            "environment": (environment if environment is not None
                            else {"GRPC_JOBS": "2", "CFLAGS": "-O2"}),
        },
        "test": {"requires": list(test_requires), "commands": list(tests)},
    }
    return parse_recipe(toml.dumps(data), tmp_path / "demo.toml")


def cibuildwheel_reads(config, package_dir: Path, *, from_toml: bool = False):
    """The BuildOptions cibuildwheel itself makes of kiln's variables (or of the TOML)."""
    args = cibw_options.CommandLineArguments.defaults()
    args.package_dir = package_dir
    args.platform = config.platform
    env = {"CIBW_PLATFORM": config.platform} if from_toml else config.env()
    if from_toml:
        (package_dir / "pyproject.toml").write_text(config.to_toml())
    options = cibw_options.compute_options(config.platform, args, env)
    return options, options.build_options(config.identifier)


def no_commands(command: list[str], env: dict[str, str]) -> str:
    raise AssertionError(f"cibuildwheel would run {command} to evaluate the environment")


@pytest.mark.parametrize("target_name", ["linux-x86_64", "linux-aarch64", "linux-ppc64le",
                                         "linux-s390x", "macos-x86_64", "macos-arm64"])
def test_every_target_translates_field_by_field(tmp_path, target_name):
    target = TARGETS[target_name]
    recipe = make_recipe(tmp_path, tests=("python -c 'import demo; assert demo.ok()'",
                                          "pytest -q --pyargs demo"),
                         test_requires=("pytest >= 8", "hypothesis"),
                         config={"--build-option": "--use-speedups"})
    root = "/project" if target.is_linux else "/Users/runner/work/build-x"
    config = translate(recipe, "3.11", target, source_date_epoch=1700000000, project_root=root)
    env = config.env()
    package = tmp_path / "pkg"
    package.mkdir()
    options, build = cibuildwheel_reads(config, package)

    ident = identifier("3.11", target)
    assert config.identifier == ident == env["CIBW_BUILD"]
    assert ident == (f"cp311-manylinux_{target.arch}" if target.is_linux
                     else f"cp311-macosx_{target.arch}")
    # Only this one build is selected, for this architecture.
    assert options.globals.build_selector(ident)
    assert not options.globals.build_selector(identifier("3.10", target))
    if target.is_linux:
        assert not options.globals.build_selector(ident.replace("manylinux", "musllinux"))
    assert [a.value for a in options.globals.architectures] == [target.arch]
    assert env["CIBW_ARCHS"] == target.arch
    assert env["CIBW_PLATFORM"] == ("linux" if target.is_linux else "macos")
    assert config.argv("src/demo-1.0", "/out") == ["--platform", config.platform, "--archs",
                                                   target.arch, "--output-dir", "/out",
                                                   "src/demo-1.0"]

    # The environment: the recipe's variables, then kiln's reproducibility settings.
    seen = build.environment.as_dictionary({}, executor=no_commands)
    prefix_map = f"-ffile-prefix-map={root}/src=/kiln/src"
    assert seen == {
        "GRPC_JOBS": "2",
        "CFLAGS": f"-O2 {prefix_map}",
        "SOURCE_DATE_EPOCH": "1700000000",
        "PYTHONHASHSEED": "0",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "CXXFLAGS": prefix_map,
        "RUSTFLAGS": f"--remap-path-prefix={root}/src=/kiln/src",
    }
    assert dict(config.build_environment) == seen

    # Build requirements: exactly the lock, hashes required, no isolated environment.
    assert build.build_frontend.name == "build"
    assert list(build.build_frontend.args) == ["--no-isolation"]
    assert build.before_build == ("python -m pip install --require-hashes --no-deps "
                                  f"-r {{project}}/{LOCK_NAME}")
    assert build.config_settings == "--build-option=--use-speedups"

    # Repair, and images pinned by digest.
    if target.is_linux:
        image = pinned_images()[target.arch]["manylinux2014"]
        assert config.image == image
        assert build.repair_command == (f"auditwheel repair --plat manylinux_2_17_{target.arch} "
                                        "-w {dest_dir} {wheel}")
        assert build.manylinux_images is not None and build.musllinux_images is not None
        assert build.manylinux_images[target.arch] == image.reference
        assert "@sha256:" in image.reference
        assert build.musllinux_images[target.arch] == (
            pinned_images()[target.arch]["musllinux_1_2"].reference)
        assert build.container_engine.name == "docker"
        assert build.container_engine.disable_host_mount is True
    else:
        assert config.image is None
        assert build.repair_command.startswith("delocate-wheel --require-archs {delocate_archs}")

    # Tests: the recipe's commands, word for word, and its test requirements.
    assert build.test_command is not None
    parts = build.test_command.split(" && ")
    assert [shlex.split(p) for p in parts] == [list(argv) for argv in recipe.test.commands]
    assert build.test_requires == ["pytest >= 8", "hypothesis"]

    # The TOML form says the same thing to cibuildwheel.
    toml_options, from_toml = cibuildwheel_reads(config, package, from_toml=True)
    assert from_toml.environment.as_dictionary({}, executor=no_commands) == seen
    for field in ("build_frontend", "before_build", "repair_command", "manylinux_images",
                  "musllinux_images", "test_command", "test_requires", "container_engine",
                  "config_settings", "dependency_constraints", "build_verbosity"):
        assert getattr(from_toml, field) == getattr(build, field), field
    assert toml_options.globals.build_selector(ident)
    assert toml_options.globals.architectures == options.globals.architectures


def test_recipe_values_reach_the_build_literally_never_through_a_shell(tmp_path):
    recipe = make_recipe(tmp_path, environment=NASTY)
    config = translate(recipe, "3.11", TARGETS["linux-x86_64"], source_date_epoch=1700000000)
    package = tmp_path / "pkg"
    package.mkdir()
    for from_toml in (False, True):
        _, build = cibuildwheel_reads(config, package, from_toml=from_toml)
        seen = build.environment.as_dictionary({}, executor=no_commands)
        for name, value in NASTY.items():
            assert seen[name] == value, (name, from_toml)


def test_literal_quoting_survives_bash_rules():
    # Inside double quotes only " \ $ and ` are special: each is escaped, nothing else.
    assert literal('a"b\\c$d`e f') == '"a\\"b\\\\c\\$d\\`e f"'
    assert literal("") == '""'


def test_varied_surroundings_change_what_a_rebuild_sees(tmp_path, with_bwrap):
    recipe = make_recipe(tmp_path)
    rebuild = varied()
    config = translate(recipe, "3.11", TARGETS["linux-x86_64"], source_date_epoch=1700000000,
                       surroundings=rebuild)
    env = dict(config.build_environment)
    assert env["TZ"] == rebuild.timezone != "UTC"
    assert env["PYTHONHASHSEED"] == rebuild.hash_seed != "0"
    assert env["LC_ALL"] == rebuild.locale
    # The sdist sits deeper under /project, and the prefix map still names /kiln/src.
    deeper = source_dir(rebuild)
    assert deeper != "src" and deeper.endswith("/src")
    assert f"-ffile-prefix-map=/project/{deeper}=/kiln/src" in env["CXXFLAGS"]
    # The variables come in the other order (reprotest's environment-order variation).
    canonical = translate(recipe, "3.11", TARGETS["linux-x86_64"], source_date_epoch=1700000000)
    names = [k for k, _ in config.build_environment]
    assert names == list(reversed([k for k, _ in canonical.build_environment]))


def test_recipe_glibc_picks_the_image():
    assert manylinux_image("x86_64", "2.17").policy == "manylinux2014"
    assert manylinux_image("x86_64", "2.27").policy == "manylinux2014"
    assert manylinux_image("aarch64", "2.28").policy == "manylinux_2_28"
    assert manylinux_image("x86_64", "2.39").policy == "manylinux_2_34"
    assert manylinux_image("x86_64", "2.28").platform_tag == "manylinux_2_28_x86_64"
    with pytest.raises(UnsupportedError, match=r"glibc 2\.12"):
        manylinux_image("x86_64", "2.12")
    with pytest.raises(UnsupportedError, match="riscv64"):
        manylinux_image("riscv64", "2.39")


def test_index_options_reach_the_lock_install():
    recipe_index = IndexOptions(index_url="https://mirror.example/simple",
                                find_links=("/srv/wheels", "https://example.org/links/"))
    from kiln.cibuildwheel_config import _install_lock_command

    command = _install_lock_command(recipe_index, TARGETS["linux-x86_64"])
    assert command == ("python -m pip install --require-hashes --no-deps --index-url "
                       "https://mirror.example/simple --find-links /host/srv/wheels "
                       f"--find-links https://example.org/links/ -r {{project}}/{LOCK_NAME}")
    offline = _install_lock_command(IndexOptions(no_index=True, find_links=("/w",)),
                                    TARGETS["macos-arm64"])
    assert "--no-index --find-links /w " in offline


def test_a_local_find_links_folder_keeps_the_host_mount(tmp_path):
    recipe = make_recipe(tmp_path)
    config = translate(recipe, "3.11", TARGETS["linux-x86_64"], source_date_epoch=1700000000,
                       index=IndexOptions(no_index=True, find_links=("/srv/wheels",)),
                       container_engine="podman")
    assert config.env()["CIBW_CONTAINER_ENGINE"] == "podman"


def test_pinned_images_are_digests_and_match_cibuildwheels_own_list():
    from cibuildwheel.util import resources

    theirs = configparser.ConfigParser(inline_comment_prefixes=("#",))
    theirs.read(resources.PINNED_DOCKER_IMAGES)
    ours = pinned_images()
    assert set(ours) == {"x86_64", "aarch64", "ppc64le", "s390x"}
    for arch, images in ours.items():
        assert set(images) == {"manylinux2014", "manylinux_2_28", "manylinux_2_34",
                               "musllinux_1_2"}
        for policy, image in images.items():
            assert image.reference == theirs[arch][policy], (arch, policy)
            assert image.reference.startswith(f"quay.io/pypa/{policy}_{arch}@sha256:")
            assert len(image.digest) == 64

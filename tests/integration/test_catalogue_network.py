"""The shipped catalogue against PyPI: small recipes built end to end, and the version bot.

Needs the network: PyPI, and Debian's archive for pyyaml's libyaml source. .ci/setup installs
libyaml-dev on the host so that the pyyaml build shows it is not used.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.network, pytest.mark.slow]
ONLINE = {"KILN_NO_INDEX": "", "KILN_FIND_LINKS": ""}
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SMALL = ("msgpack", "bitarray", "pyyaml")  # a Cython extension, plain C, a [library]


def copy_recipes(names: tuple[str, ...], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".toml", ".lock"):
            shutil.copy(ROOT / "recipes" / f"{name}{suffix}", folder / f"{name}{suffix}")
    return [folder / f"{name}.toml" for name in names]


def test_small_recipes_build_reproducibly_and_pass_their_tests(run_kiln, tmp_path):
    recipes = copy_recipes(SMALL, tmp_path / "recipes")
    wheelhouse = tmp_path / "wh"
    result = run_kiln("build", "--check-repro", *recipes, "--python", PYTHON, "--target",
                      "linux-x86_64", "-o", wheelhouse,
                      "--json", env=ONLINE, check=True, timeout=1200)
    built = {Path(r["recipe"]).stem: r for r in json.loads(result.stdout)}
    assert set(built) == set(SMALL)
    for name, entry in built.items():
        record = entry["record"]
        assert entry["status"] == "built", name
        assert record["repro"]["reproducible"] is True, name
        assert record["test"]["ran"] and record["test"]["passed"], name
        assert "manylinux" in record["repair"]["policy"], name
    yaml = built["pyyaml"]["record"]
    # libyaml came from Debian's source package, pinned by sha256 in the recipe, built by
    # kiln and linked statically: hermetic and manylinux_2_17 although the host has its own
    # libyaml-dev (hidden from the build with the rest of /usr/include and /usr/lib).
    assert Path("/usr/include/yaml.h").is_file(), "the host's libyaml-dev (.ci/setup)"
    assert yaml["hermetic"] is True and yaml["system_packages"] == []
    assert yaml["repair"]["policy"].startswith("manylinux_2_17")
    (lib,) = yaml["libraries"]
    recipe_text = (ROOT / "recipes" / "pyyaml.toml").read_text()
    assert lib["name"] == "libyaml" and lib["sha256"] in recipe_text
    assert lib["debian"].startswith("libyaml 0.2.5") and lib["build"] == "cmake"
    assert lib["source"].startswith("https://deb.debian.org/debian/pool/main/liby/libyaml/")
    # Nothing grafted, and the extension needs no libyaml.so: the recipe's test ran CLoader
    # on libyaml's code inside yaml/_yaml.
    with zipfile.ZipFile(built["pyyaml"]["wheel"]) as whl:
        assert not [n for n in whl.namelist() if ".libs/" in n]
        (ext,) = [n for n in whl.namelist() if n.startswith("yaml/_yaml") and ".so" in n]
        blob = whl.read(ext)
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(blob))
    needed = [t.needed for s in elf.iter_sections() if isinstance(s, DynamicSection)
              for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    assert needed and not [n for n in needed if "yaml" in n], needed
    assert b"yaml_parser_initialize" in blob

    status = run_kiln("status", tmp_path / "recipes", "--wheelhouse", wheelhouse, "--json",
                      "--no-audit", check=True)
    cells = [c for c in json.loads(status.stdout)["cells"]
             if c["python"] == PYTHON and c["target"] == "linux-x86_64"]
    assert {c["recipe"]: (c["result"], c["reproducible"], c["tests"]) for c in cells} == \
        dict.fromkeys(SMALL, ("built", True, "passed"))


def test_update_check_finds_an_old_recipe_and_update_moves_it(run_kiln, tmp_path):
    made = run_kiln("recipe", "new", "msgpack==1.0.8", "--python", PYTHON, "-o",
                    tmp_path / "msgpack.toml", "--json", env=ONLINE, check=True)
    recipe = Path(json.loads(made.stdout)["path"])
    recipe = recipe if recipe.is_absolute() else tmp_path / recipe
    original = recipe.read_text()
    comment = original.splitlines()[0]
    assert comment.startswith("#")

    check = run_kiln("recipe", "update", "--check", recipe, "--json", env=ONLINE)
    assert check.returncode == 1, check.stderr
    (row,) = json.loads(check.stdout)
    assert row["status"] == "behind" and row["version"]["old"] == "1.0.8"
    newest = row["version"]["new"]
    assert recipe.read_text() == original and not recipe.with_suffix(".lock").exists()

    update = run_kiln("recipe", "update", recipe, "--json", env=ONLINE, check=True)
    (row,) = json.loads(update.stdout)
    assert row["status"] == "updated" and row["version"]["new"] == newest
    text = recipe.read_text()
    assert text.splitlines()[0] == comment  # the author's text survives
    assert f'version = "{newest}"' in text and row["sha256"]["new"] in text
    assert row["sha256"]["new"] in recipe.with_suffix(".lock").read_text()
    run_kiln("recipe", "check", recipe, check=True)
    again = run_kiln("recipe", "update", "--check", recipe, "--json", env=ONLINE, check=True)
    assert json.loads(again.stdout)[0]["status"] == "up to date"

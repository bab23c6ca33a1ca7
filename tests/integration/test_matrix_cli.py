"""`kiln matrix` and `kiln recipe new --env/--url` through the real CLI, as the workflows call
them (the recipe test talks to a PEP 691 index on loopback, no network)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln import toml
from tests.conftest import cext_files, make_sdist, serve_sdists


def recipes(folder: Path, count: int, pythons: tuple[str, ...] = ("3.11",),
            targets: tuple[str, ...] = ("linux-x86_64", "linux-aarch64")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        data = {"package": {"name": f"pkg{i:03d}", "version": "1.0"},
                "source": {"url": f"https://example.org/pkg{i:03d}-1.0.tar.gz",
                           "sha256": "f" * 64},
                "build": {"python": list(pythons), "targets": list(targets)}}
        path = folder / f"pkg{i:03d}.toml"
        path.write_text(toml.dumps(data))
        paths.append(path)
    return paths


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_matrix_json_is_strategy_matrix(run_kiln, tmp_path):
    paths = recipes(tmp_path / "recipes", 2)
    result = run_kiln("matrix", *paths, "--json", check=True)
    matrix = json.loads(result.stdout)
    assert list(matrix) == ["include"]
    assert [(e["name"], e["target"], e["runner"]) for e in matrix["include"]] == [
        ("pkg000", "linux-x86_64", "ubuntu-latest"),
        ("pkg000", "linux-aarch64", "ubuntu-24.04-arm"),
        ("pkg001", "linux-x86_64", "ubuntu-latest"),
        ("pkg001", "linux-aarch64", "ubuntu-24.04-arm"),
    ]
    again = run_kiln("matrix", *reversed(paths), "--json", check=True)
    assert again.stdout == result.stdout
    cross = json.loads(run_kiln("matrix", *paths, "--json", "--aarch64", "cross",
                                check=True).stdout)
    assert {(e["runner"], e["backend"]) for e in cross["include"]
            if e["target"] == "linux-aarch64"} == {("ubuntu-latest", "hermetic")}


def test_github_output_splits_past_256_jobs(run_kiln, tmp_path):
    paths = recipes(tmp_path / "recipes", 150)  # 300 jobs
    refused = run_kiln("matrix", *paths, "--json")
    assert refused.returncode == 2
    assert "300 jobs, more than 256" in refused.stderr and "--chunks" in refused.stderr

    chunks = json.loads(run_kiln("matrix", *paths, "--json", "--chunks", check=True).stdout)
    assert [len(c["include"]) for c in chunks] == [256, 44]

    seen = []
    for chunk in (0, 1):
        out = tmp_path / f"github-output-{chunk}"
        run_kiln("matrix", *paths, "--chunk", str(chunk), "--github-output", out, check=True)
        values = outputs(out)
        assert values["chunk"] == str(chunk)
        assert values["chunk-count"] == "2"
        assert values["jobs"] == "300"
        matrix = json.loads(values["matrix"])
        assert matrix == chunks[chunk]
        assert values["chunk-jobs"] == str(len(matrix["include"]))
        assert "\n" not in values["matrix"]
        seen += [e["id"] for e in matrix["include"]]
    assert len(seen) == len(set(seen)) == 300

    beyond = run_kiln("matrix", *paths, "--chunk", "2", "--github-output", tmp_path / "x")
    assert beyond.returncode == 2 and "--chunk 2: the matrix has 2 chunk(s)" in beyond.stderr


def test_rebuild_selection_from_the_audit_log(run_kiln, tmp_path):
    paths = recipes(tmp_path / "recipes", 1)
    log = tmp_path / "audit-log.json"
    log.write_text(json.dumps([
        {"wheel": "pkg000-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
         "recorded_at": "2999-01-01T00:00:00+00:00"},
        {"wheel": "pkg000-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
         "recorded_at": "2000-01-01T00:00:00+00:00"},
    ]))
    out = tmp_path / "github-output"
    run_kiln("matrix", *paths, "--rebuild-of", log, "--since-days", "7", "--github-output", out,
             check=True)
    values = outputs(out)
    assert values["jobs"] == "1"
    (entry,) = json.loads(values["matrix"])["include"]
    assert entry["runner"] == "ubuntu-22.04" and entry["wheel"].startswith("pkg000-1.0-cp311")

    empty = tmp_path / "nothing"
    log.write_text("[]")
    run_kiln("matrix", *paths, "--rebuild-of", log, "--github-output", empty, check=True)
    assert outputs(empty) == {"matrix": "", "chunk": "0", "chunk-count": "0", "chunk-jobs": "0",
                              "jobs": "0"}
    log.write_text("{not json")
    bad = run_kiln("matrix", *paths, "--rebuild-of", log)
    assert bad.returncode == 2 and "not a readable JSON file" in bad.stderr


@pytest.fixture
def loopback_index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A PEP 691 index on 127.0.0.1 that lists one sdist, and the sdist it serves."""
    sdist = make_sdist(tmp_path / "served", "demo", "1.0", cext_files("demo", "1.0", "demo"))
    with serve_sdists([sdist]) as index:
        yield index, sdist.path


def test_recipe_new_takes_env_and_a_url_checked_against_the_index(run_kiln, tmp_path,
                                                                 loopback_index):
    index_url, served = loopback_index
    mirror = tmp_path / "mirror" / served.name
    mirror.parent.mkdir()
    mirror.write_bytes(served.read_bytes())
    env = {"KILN_INDEX_URL": index_url}
    out = tmp_path / "recipes" / "demo.toml"
    run_kiln("recipe", "new", "demo==1.0", "--python", "3.11", "--target", "linux-aarch64",
             "--env", "GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS=8", "--env", "ODD=$(not) 'run'",
             "--url", mirror.as_uri(), "-o", out, env=env, check=True)
    data = toml.loads(out.read_text())
    assert data["source"]["url"] == mirror.as_uri()
    assert data["source"]["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert data["build"]["environment"] == {"GRPC_PYTHON_BUILD_EXT_COMPILER_JOBS": "8",
                                            "ODD": "$(not) 'run'"}
    assert data["build"]["python"] == ["3.11"] and data["build"]["targets"] == ["linux-aarch64"]

    # Bytes at --url that are not the release the index lists: refused, nothing written.
    other = tmp_path / "other" / served.name
    other.parent.mkdir()
    other.write_bytes(served.read_bytes() + b"tampered")
    refused_out = tmp_path / "recipes" / "refused.toml"
    refused = run_kiln("recipe", "new", "demo==1.0", "--python", "3.11", "--url",
                       other.as_uri(), "-o", refused_out, env=env)
    assert refused.returncode == 5, refused.stderr
    assert "sha256 is" in refused.stderr
    assert not refused_out.exists()

    for bad in ("PATH=/evil", "1BAD=x", "novalue"):
        result = run_kiln("recipe", "new", "demo==1.0", "--python", "3.11", "--env", bad,
                          "-o", tmp_path / "recipes" / "bad.toml", env=env)
        assert result.returncode == 2, (bad, result.stderr)
        assert "NAME=VALUE" in result.stderr
    assert not (tmp_path / "recipes" / "bad.toml").exists()

"""The cibuildwheel backend says clearly when this host cannot run it (no programs started)."""

from __future__ import annotations

from pathlib import Path

import pytest

import kiln.backends.cibuildwheel as cibw
from kiln.backends import BuildJob, get_backend
from kiln.buildenv import CANONICAL
from kiln.errors import UnsupportedError
from kiln.fetch import FetchedSource
from kiln.installer import IndexOptions
from kiln.lockfile import Lock
from kiln.recipe import parse_recipe
from kiln.toolchain.interpreters import Interpreter
from kiln.toolchain.targets import TARGETS

RECIPE = """
[package]
name = "demo"
version = "1.0"

[source]
url = "https://example.org/demo-1.0.tar.gz"
sha256 = "{sha}"

[build]
python = ["3.11"]
targets = ["linux-x86_64"]
backend = "cibuildwheel"
""".format(sha="c" * 64)


def job(tmp_path: Path, target: str) -> BuildJob:
    recipe = parse_recipe(RECIPE, tmp_path / "demo.toml")
    interp = Interpreter(path=Path("/usr/bin/python3.11"), version="3.11.7",
                         implementation="cpython", soabi="cpython-311-x86_64-linux-gnu",
                         ext_suffix=".so", platform="linux-x86_64", zlib="1.2.13", sha256="d" * 64,
                         cc="gcc", cxx="g++")
    lock = Lock(path=tmp_path / "demo.lock", sha256="e" * 64, sdist_sha256="c" * 64,
                pythons=("3.11",), declared=(), pins=(), resolver="uv")
    source = FetchedSource(url=recipe.url, path=tmp_path / "demo-1.0.tar.gz", sha256="c" * 64,
                           size=1)
    return BuildJob(recipe=recipe, interpreter=interp, target=TARGETS[target], source=source,
                    lock=lock, source_date_epoch=1700000000, index=IndexOptions(),
                    surroundings=CANONICAL, cache=tmp_path / "cache")


@pytest.fixture(autouse=True)
def _linux_x86_64_host(monkeypatch):
    monkeypatch.setattr(cibw, "host_target", lambda: TARGETS["linux-x86_64"])
    engine_probe = cibw.find_container_engine
    engine_probe.cache_clear()
    yield
    engine_probe.cache_clear()


def test_the_registry_finds_the_backend():
    assert get_backend("cibuildwheel") is cibw.BACKEND
    assert cibw.BACKEND.name == "cibuildwheel"


def test_macos_wheels_need_a_mac(tmp_path):
    with pytest.raises(UnsupportedError) as caught:
        cibw.BACKEND.toolchain(job(tmp_path, "macos-arm64"))
    assert "only on a macOS host (this is linux-x86_64)" in caught.value.message
    assert "macos-14" in (caught.value.hint or "")
    assert caught.value.exit_code == 64


def test_no_container_engine_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(cibw.shutil, "which", lambda name: None)
    monkeypatch.delenv("KILN_CONTAINER_ENGINE", raising=False)
    with pytest.raises(UnsupportedError) as caught:
        cibw.BACKEND.toolchain(job(tmp_path, "linux-x86_64"))
    message = caught.value.message
    assert message.startswith("demo 1.0 (cp311, linux-x86_64): ")
    assert ("no container engine works here (docker: not installed; podman: not installed)"
            in message)
    assert "--backend native" in (caught.value.hint or "")


def test_a_foreign_linux_architecture_needs_qemu(tmp_path, monkeypatch):
    engine = cibw.ContainerEngine(name="docker", path="/usr/bin/docker", version="28.2.2")
    monkeypatch.setattr(cibw, "find_container_engine", lambda: engine)
    monkeypatch.setattr(cibw, "_emulation_ready", lambda arch: False)
    with pytest.raises(UnsupportedError, match="needs QEMU registered with binfmt_misc"):
        cibw.BACKEND.toolchain(job(tmp_path, "linux-aarch64"))


def test_the_toolchain_pins_the_image_by_digest(tmp_path, monkeypatch):
    engine = cibw.ContainerEngine(name="docker", path=__file__, version="28.2.2")
    monkeypatch.setattr(cibw, "find_container_engine", lambda: engine)
    monkeypatch.setattr(cibw, "cibuildwheel_version", lambda: "4.3.5")
    toolchain = cibw.BACKEND.toolchain(job(tmp_path, "linux-x86_64"))
    tools = {t.name: t for t in toolchain.tools}
    assert tools["cibuildwheel"].version == "4.3.5"
    assert tools["docker"].version == "28.2.2" and len(tools["docker"].sha256) == 64
    image = tools["image manylinux2014"]
    assert image.path.startswith("quay.io/pypa/manylinux2014_x86_64@sha256:")
    assert image.path.endswith(image.sha256)
    assert toolchain.policy == "manylinux_2_17_x86_64"


def test_missing_cibuildwheel_names_the_extra(monkeypatch):
    def not_installed(name: str) -> str:
        raise cibw.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cibw.metadata, "version", not_installed)
    with pytest.raises(UnsupportedError, match="needs cibuildwheel") as caught:
        cibw.cibuildwheel_version()
    assert "kiln[cibuildwheel]" in (caught.value.hint or "")


def test_debian_system_packages_are_not_silently_dropped(tmp_path, monkeypatch):
    engine = cibw.ContainerEngine(name="docker", path=__file__, version="28.2.2")
    monkeypatch.setattr(cibw, "find_container_engine", lambda: engine)
    base = job(tmp_path, "linux-x86_64")
    recipe = parse_recipe(RECIPE + '\n[build.system-requires]\ndebian = ["libffi-dev"]\n',
                          tmp_path / "demo.toml")
    from dataclasses import replace

    with pytest.raises(UnsupportedError, match=r"needs Debian packages \(libffi-dev\)"):
        cibw.BACKEND.toolchain(replace(base, recipe=recipe))


def test_build_runs_cibuildwheel_on_the_unpacked_sdist_and_returns_its_wheel(tmp_path,
                                                                           monkeypatch,
                                                                           with_bwrap):
    from dataclasses import replace

    from kiln.buildenv import Workspace, varied
    from tests.conftest import cext_files, make_sdist

    sdist = make_sdist(tmp_path / "sdists", "demo", "1.0", cext_files("demo", "1.0", "demo"))
    lock_file = tmp_path / "demo.lock"
    lock_file.write_text("# kiln lock v1\nsetuptools==80.9.0 --hash=sha256:" + "0" * 64 + "\n")
    base = job(tmp_path, "linux-x86_64")
    engine = cibw.ContainerEngine(name="podman", path=__file__, version="5.0")
    monkeypatch.setattr(cibw, "find_container_engine", lambda: engine)
    calls = []

    def fake_run(argv, *, what, error, env, cwd, log, timeout, umask, hint):
        calls.append({"argv": list(argv), "env": env, "cwd": cwd})
        out = Path(argv[argv.index("--output-dir") + 1])
        (out / "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"wheel")

    monkeypatch.setattr(cibw.proc, "run", fake_run)
    for surroundings in (CANONICAL, varied()):
        calls.clear()
        the_job = replace(base, source=FetchedSource(url=sdist.url, path=sdist.path,
                                                     sha256=sdist.sha256, size=1),
                          lock=replace(base.lock, path=lock_file), surroundings=surroundings)
        ws = Workspace.create(tmp_path / "work", surroundings)
        raw = cibw.BACKEND.build(the_job, cibw.BACKEND.toolchain(the_job), ws, tmp_path / "log")
        (call,) = calls
        package_dir = call["argv"][-1]
        expected_dir = "src" if surroundings == CANONICAL else cibw.source_dir(surroundings)
        assert package_dir == f"{expected_dir}/demo-1.0"
        assert call["cwd"] == ws.root and (ws.root / package_dir / "setup.py").is_file()
        assert (ws.root / cibw.LOCK_NAME).read_text() == lock_file.read_text()
        assert call["argv"][1:3] == ["-m", "cibuildwheel"]
        assert call["env"]["CIBW_BUILD"] == "cp311-manylinux_x86_64"
        assert call["env"]["CIBW_CONTAINER_ENGINE"] == "podman; disable_host_mount: true"
        assert call["env"]["SOURCE_DATE_EPOCH"] == "1700000000"
        assert f"-ffile-prefix-map=/project/{expected_dir}=/kiln/src" in (
            call["env"]["CIBW_ENVIRONMENT"])
        assert raw.repaired is True
        assert [w.name for w in raw.wheels] == ["demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"]
        given = dict(raw.environment)
        assert given["CIBW_BUILD"] == "cp311-manylinux_x86_64"
        assert given["SOURCE_DATE_EPOCH"] == "1700000000"
        assert raw.isolation is not None
        assert raw.isolation.tool.startswith("cibuildwheel container (podman 5.0, quay.io/")
        assert raw.isolation.network.startswith("on")
        assert raw.isolation.prefix_maps == ((f"/project/{expected_dir}", "/kiln/src"),)
        ws.remove()

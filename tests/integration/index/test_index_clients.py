"""pip, uv and Poetry install from `kiln index` + `kiln serve` on loopback — and only from it.

Every client runs with its configuration files ignored, fresh caches, and HTTP(S)_PROXY
pointing at a closed port with only 127.0.0.1 exempt: a client that tried to reach PyPI
would fail, so these tests prove the index alone is enough. The server's request log
shows which files each client fetched (PEP 658 `.metadata` before the wheel).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from index_support import make_wheel

VENV_BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=str(VENV_BIN)) or shutil.which("uv")
POETRY = shutil.which("poetry", path=str(VENV_BIN))


def client_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "POETRY_", "VIRTUAL_ENV"))}
    closed = "http://127.0.0.1:9"  # nothing listens there: any non-local request fails
    env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CACHE_DIR=str(tmp / "pip-cache"), UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_NO_CONFIG="1", HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed,
        https_proxy=closed, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        POETRY_CACHE_DIR=str(tmp / "poetry-cache"), POETRY_CONFIG_DIR=str(tmp / "poetry-cfg"),
        POETRY_DATA_DIR=str(tmp / "poetry-data"), POETRY_VIRTUALENVS_IN_PROJECT="true",
        POETRY_VIRTUALENVS_OPTIONS_NO_PIP="true", POETRY_NO_INTERACTION="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    return env


def run(argv: list[str | Path], env: dict[str, str], cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv[0]} exited {result.returncode}\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


@dataclass
class Served:
    url: str
    root: Path
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def requests_by(self, agent: str) -> list[str]:
        return [line for line in self.log if f" {agent}/" in line]


def kiln(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=True)


@pytest.fixture
def serve() -> Iterator:
    started: list[Served] = []

    def start(root: Path) -> Served:
        proc = subprocess.Popen([sys.executable, "-m", "kiln", "serve", str(root), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.startswith("serving "), first + (proc.stderr.read() if proc.stderr else "")
        served = Served(first.split()[-1], root, proc)

        def collect() -> None:
            for line in proc.stderr or ():
                served.log.append(line.rstrip())

        threading.Thread(target=collect, daemon=True).start()
        started.append(served)
        return served

    yield start
    for served in started:
        served.process.terminate()
        served.process.wait(timeout=10)


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """An index of four hand-made wheels, written by the real CLI."""
    wh = tmp_path / "wheelhouse"
    make_wheel(wh, "markupsafe", "2.1.5", tag="cp311-cp311-manylinux_2_17_x86_64",
               code="def escape(s):\n    return str(s).replace('<', '&lt;')\n")
    make_wheel(wh, "kilndep", "1.0", requires_python=">=3.8")
    make_wheel(wh, "kilndemo", "1.0", requires=("kilndep>=1",))
    make_wheel(wh, "kilndemo", "2.0", requires_python=">=4")  # no Python here can use it
    out = tmp_path / "public"
    result = kiln("index", wh, "-o", out, "--json")
    assert json.loads(result.stdout)["wheels"] == 4
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pip_install_and_download(index, serve, tmp_path):
    served = serve(index)
    env = client_env(tmp_path)
    target = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "--index-url", served.url, "--target", target,
         "kilndemo", "markupsafe==2.1.5"], env)
    # 2.0 needs Python >= 4 (data-requires-python / requires-python): pip took 1.0
    assert (target / "kilndemo-1.0.dist-info").is_dir()
    assert (target / "kilndep-1.0.dist-info").is_dir()  # the dependency, from the index too
    check = run([sys.executable, "-c", "import markupsafe; print(markupsafe.escape('<'))"],
                {**env, "PYTHONPATH": str(target)})
    assert check.stdout.strip() == "&lt;"
    pip_log = served.requests_by("pip")
    assert any("/simple/kilndemo/" in line and " json " in line for line in pip_log)
    assert any(".whl.metadata\" 200" in line for line in pip_log)  # PEP 658 used
    downloads = tmp_path / "downloads"
    run([sys.executable, "-m", "pip", "download", "--index-url", served.url,
         "--only-binary", ":all:", "--no-deps", "-d", downloads, "markupsafe==2.1.5"], env)
    [wheel] = downloads.iterdir()
    assert sha256(wheel) == sha256(index / "files" / "markupsafe" / wheel.name)


@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_pip_and_uv_refuse_a_file_whose_hash_changed(index, serve, tmp_path):
    served = serve(index)
    env = client_env(tmp_path)
    published = index / "files" / "kilndep" / "kilndep-1.0-py3-none-any.whl"
    other = make_wheel(tmp_path / "other", "kilndep", "1.0", code="EVIL = True\n")
    published.write_bytes(other.read_bytes())  # the bytes behind the page changed
    pip = run([sys.executable, "-m", "pip", "install", "--index-url", served.url, "--target",
               tmp_path / "site", "--no-deps", "kilndep"], env, check=False)
    assert pip.returncode != 0
    assert "HASH" in pip.stderr.upper()
    venv = tmp_path / "uv-venv"
    run([UV, "venv", "--python", sys.executable, venv], env)
    uv = run([UV, "pip", "install", "--python", venv / "bin" / "python", "--index-url",
              served.url, "--no-deps", "kilndep"], env, check=False)
    assert uv.returncode != 0
    assert "hash" in uv.stderr.lower()


@pytest.mark.skipif(UV is None, reason="uv is not installed")
def test_uv_pip_install(index, serve, tmp_path):
    served = serve(index)
    env = client_env(tmp_path)
    venv = tmp_path / "venv"
    run([UV, "venv", "--python", sys.executable, venv], env)
    run([UV, "pip", "install", "--python", venv / "bin" / "python", "--index-url", served.url,
         "kilndemo", "markupsafe==2.1.5"], env)
    listed = run([UV, "pip", "list", "--python", venv / "bin" / "python", "--format", "json"],
                 env)
    versions = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert versions == {"kilndemo": "1.0", "kilndep": "1.0", "markupsafe": "2.1.5"}
    uv_log = served.requests_by("uv")
    assert any(".whl.metadata\" 200" in line for line in uv_log)
    assert all(" json " in line for line in uv_log if "/simple/" in line)


POETRY_PROJECT = """
    [tool.poetry]
    package-mode = false

    [tool.poetry.dependencies]
    python = "~{python}"
    {dependencies}

    [[tool.poetry.source]]
    name = "kiln"
    url = "{url}"
    priority = "{priority}"
"""


def poetry_project(folder: Path, url: str, priority: str, dependencies: str) -> Path:
    folder.mkdir()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    (folder / "pyproject.toml").write_text(textwrap.dedent(POETRY_PROJECT).format(
        python=python, url=url, priority=priority,
        dependencies=textwrap.dedent(dependencies).strip().replace("\n", "\n    ")))
    return folder


def locked(project: Path) -> dict[str, dict]:
    import tomllib

    lock = tomllib.loads((project / "poetry.lock").read_text())
    return {p["name"]: p for p in lock["package"]}


@pytest.mark.skipif(POETRY is None, reason="poetry is not installed")
def test_poetry_with_kiln_as_a_supplemental_source(index, serve, tmp_path):
    """The seed's form: PyPI stays the primary source, kiln is supplemental, and the
    dependencies say `source = "kiln"` (one with a marker) — so PyPI is never asked."""
    served = serve(index)
    env = client_env(tmp_path)
    marker = "platform_machine == 'x86_64'"
    project = poetry_project(tmp_path / "app", served.url, "supplemental", f"""
        markupsafe = {{ version = "2.1.5", markers = "{marker}", source = "kiln" }}
        kilndep = {{ version = "1.0", source = "kiln" }}
    """)
    run([POETRY, "lock"], env, cwd=project)
    packages = locked(project)
    markupsafe = packages["markupsafe"]
    assert markupsafe["markers"] == 'platform_machine == "x86_64"'
    assert markupsafe["source"]["reference"] == "kiln"
    [entry] = markupsafe["files"]
    assert entry["hash"] == "sha256:" + sha256(index / "files" / "markupsafe" / entry["file"])
    run([POETRY, "install"], env, cwd=project)
    check = run([project / ".venv" / "bin" / "python", "-c",
                 "import markupsafe, kilndep; print(markupsafe.escape('<'), kilndep.VERSION)"],
                env)
    assert check.stdout.split() == ["&lt;", "1.0"]
    poetry_log = served.requests_by("poetry")
    assert any("markupsafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.whl.metadata\" 200" in line
               for line in poetry_log)


@pytest.mark.skipif(POETRY is None, reason="poetry is not installed")
def test_poetry_with_kiln_as_the_primary_source(index, serve, tmp_path):
    """With kiln primary, Poetry 2 leaves PyPI out: dependencies of dependencies come
    from kiln too, and `poetry install` checks each file against the lock's hash."""
    served = serve(index)
    env = client_env(tmp_path)
    project = poetry_project(tmp_path / "app", served.url, "primary", """
        kilndemo = "*"
    """)
    run([POETRY, "lock"], env, cwd=project)
    packages = locked(project)
    assert {n: p["version"] for n, p in packages.items()} == {"kilndemo": "1.0",
                                                              "kilndep": "1.0"}
    published = index / "files" / "kilndep" / "kilndep-1.0-py3-none-any.whl"
    original = published.read_bytes()
    published.write_bytes(make_wheel(tmp_path / "other", "kilndep", "1.0",
                                     code="EVIL = True\n").read_bytes())
    refused = run([POETRY, "install"], env, cwd=project, check=False)
    assert refused.returncode != 0
    assert "hash" in (refused.stdout + refused.stderr).lower()
    published.write_bytes(original)
    shutil.rmtree(tmp_path / "poetry-cache" / "artifacts")  # it kept the bad download
    run([POETRY, "install"], env, cwd=project)
    assert (project / ".venv").is_dir()
    check = run([project / ".venv" / "bin" / "python", "-c", "import kilndemo, kilndep"], env)
    assert check.returncode == 0


@pytest.mark.slow
def test_a_wheel_kiln_built_installs_from_kilns_index(run_kiln, cext_recipe, serve, tmp_path):
    """The whole way: `kiln build` a C extension, index it, serve it, pip and uv install it."""
    wh = tmp_path / "wh"
    run_kiln("build", cext_recipe, "-o", wh, check=True)
    [wheel] = wh.glob("*.whl")
    out = tmp_path / "public"
    report = json.loads(run_kiln("index", wh, "-o", out, "--json", check=True).stdout)
    assert report["added"] == [wheel.name] and not report["rejected"]
    page = json.loads((out / "simple" / "cext-demo" / "index.json").read_text())
    build_record = json.loads(wh.joinpath(wheel.name + ".build.json").read_text())
    assert page["files"][0]["_kiln"]["build_id"] == build_record["build_id"]
    served = serve(out)
    env = client_env(tmp_path)
    run([sys.executable, "-m", "pip", "install", "--index-url", served.url, "--target",
         tmp_path / "site", "cext-demo"], env)
    call = run([sys.executable, "-c", "import cext_demo; print(cext_demo.add(40, 2))"],
               {**env, "PYTHONPATH": str(tmp_path / "site")})
    assert call.stdout.strip() == "42"
    if UV is not None:
        venv = tmp_path / "venv"
        run([UV, "venv", "--python", sys.executable, venv], env)
        run([UV, "pip", "install", "--python", venv / "bin" / "python", "--index-url",
             served.url, "cext-demo"], env)
        call = run([venv / "bin" / "python", "-c", "import cext_demo; print(cext_demo.add(1, 2))"],
                   env)
        assert call.stdout.strip() == "3"

"""Fixtures for the audit-branch tests: real git repositories, small hand-made wheels with
build records beside them, and real DSSE signatures made with kiln's key path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from audit_helpers import git, make_wheel, write_build_record


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No global git config (so no identity: kiln must bring its own defaults)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home),
           "GIT_CONFIG_GLOBAL": str(home / "gitconfig")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(key, raising=False)
    return env


@pytest.fixture
def repo(tmp_path: Path, isolated_git: dict[str, str]) -> Path:
    """An empty repository (unborn HEAD, no commits)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real ECDSA P-256 key pair made by kiln's keygen: (private, public)."""
    from kiln.signing.keys import generate_keypair

    pair = generate_keypair(tmp_path_factory.mktemp("keys") / "kiln")
    return pair.private, pair.public


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from kiln.signing.keys import generate_keypair

    pair = generate_keypair(tmp_path_factory.mktemp("other-keys") / "other")
    return pair.private, pair.public


MakeSigned = Callable[..., Path]


@pytest.fixture
def signed_wheel(tmp_path: Path, signing_key: tuple[Path, Path],
                 monkeypatch: pytest.MonkeyPatch) -> MakeSigned:
    """A wheel with its build record and a DSSE envelope signed with ``signing_key``."""
    from kiln.signing.wheels import sign_wheel_with_key

    monkeypatch.setenv("KILN_BUILDER_ID", "https://builders.example/test")

    def make(name: str = "demo", version: str = "1.0", seed: str = "", *,
             folder: Path | None = None, sign: bool = True,
             reproducible: bool | None = True) -> Path:
        wheel = make_wheel(folder or tmp_path / "wheelhouse", name, version, seed)
        write_build_record(wheel, reproducible=reproducible)
        if sign:
            sign_wheel_with_key(wheel, signing_key[0])
        return wheel

    return make

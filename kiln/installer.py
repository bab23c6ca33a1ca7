"""Virtual environments and package installs, through uv (pinned by kiln's own dependencies).

uv is told to ignore user configuration: what a build installs depends only on the lock
and on the index options kiln was given.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln import proc
from kiln.errors import EnvironmentSetupError, KilnError

PYPI_SIMPLE = "https://pypi.org/simple"
# What uv may see of the caller's environment: proxies and certificates, nothing else.
_PASS_THROUGH = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "SSL_CERT_FILE", "SSL_CERT_DIR", "UV_CACHE_DIR", "HOME", "PATH", "TMPDIR",
                 "UV_NATIVE_TLS", "UV_OFFLINE")


@dataclass(frozen=True)
class IndexOptions:
    """Where build requirements come from (``--index-url``, ``--find-links``, ``--no-index``)."""

    index_url: str = PYPI_SIMPLE
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    @classmethod
    def from_environment(cls) -> IndexOptions:
        links = tuple(x for x in os.environ.get("KILN_FIND_LINKS", "").split() if x)
        return cls(
            index_url=os.environ.get("KILN_INDEX_URL", PYPI_SIMPLE),
            find_links=links,
            no_index=os.environ.get("KILN_NO_INDEX", "") not in ("", "0", "false"),
        )

    def args(self) -> list[str]:
        out = ["--no-index"] if self.no_index else ["--index-url", self.index_url]
        for link in self.find_links:
            out += ["--find-links", link]
        return out


@functools.cache
def uv_binary() -> Path:
    try:
        from uv import find_uv_bin
    except ImportError as exc:  # pragma: no cover - uv is a dependency
        raise EnvironmentSetupError("the uv package is not installed",
                                    hint="pip install uv (kiln depends on it)") from exc
    return Path(find_uv_bin())


@functools.cache
def uv_version() -> str:
    out = proc.capture([uv_binary(), "--version"], what="uv --version", quiet=True)
    return out.stdout.decode().strip()


def uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _PASS_THROUGH}
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


def create_venv(path: Path, python: Path, *, log: Path | None = None) -> Path:
    """A relocatable venv at ``path`` (so the sandbox may show it at another path)."""
    proc.run(
        [uv_binary(), "venv", "--quiet", "--relocatable", "--no-project", "--python", python, path],
        what=f"creating a virtual environment with {python}",
        error=EnvironmentSetupError,
        env=uv_env(),
        log=log,
    )
    return path / "bin" / "python"


def install(
    python: Path,
    *,
    requirements: Sequence[str] = (),
    requirement_files: Sequence[Path] = (),
    index: IndexOptions,
    require_hashes: bool = False,
    no_deps: bool = False,
    log: Path | None = None,
    what: str = "installing packages",
    error: type[KilnError] = EnvironmentSetupError,
) -> None:
    if not requirements and not requirement_files:
        return
    argv: list[str | Path] = [uv_binary(), "pip", "install", "--quiet", "--python", python,
                              *index.args()]
    if require_hashes:
        argv.append("--require-hashes")
    if no_deps:
        argv.append("--no-deps")
    for file in requirement_files:
        argv += ["-r", file]
    argv += list(requirements)
    proc.run(argv, what=what, error=error, env=uv_env(), log=log,
             hint="the log shows what the installer said")

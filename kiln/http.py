"""Plain HTTPS with retries, resumable downloads and a User-Agent; no third-party client."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kiln import __version__
from kiln.errors import FetchError, HashMismatchError
from kiln.files import exclusive
from kiln.progress import reporter

USER_AGENT = f"kiln/{__version__} (+https://github.com/kiln-build/kiln)"
RETRIES = 4
TIMEOUT = 60.0
_CHUNK = 1 << 20
_TRANSIENT = (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError,
              http.client.IncompleteRead, http.client.RemoteDisconnected)


def _request(url: str, headers: dict[str, str] | None = None) -> urllib.request.Request:
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise FetchError(f"{url}: only https:// urls are fetched", hint="use the https address")
    # The scheme was checked just above.
    return urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})  # noqa: S310


def _is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 and exc.code != 429


def get_bytes(url: str, *, accept: str | None = None, what: str = "download") -> bytes:
    """GET a small document, retrying transient failures."""
    headers = {"Accept": accept} if accept else {}
    last: BaseException | None = None
    for attempt in range(RETRIES):
        try:
            with urllib.request.urlopen(_request(url, headers), timeout=TIMEOUT) as resp:  # noqa: S310
                data: bytes = resp.read()
                return data
        except _TRANSIENT as exc:
            if _is_permanent(exc):
                raise _fetch_error(url, exc, what) from exc
            last = exc
            time.sleep(min(2**attempt * 0.5, 8))
    assert last is not None
    raise _fetch_error(url, last, what) from last


def get_json(url: str, *, what: str = "download") -> Any:
    try:
        return json.loads(get_bytes(url, accept="application/json", what=what))
    except json.JSONDecodeError as exc:
        raise FetchError(f"{what}: {url} did not return JSON: {exc}") from exc


def not_found(exc: FetchError) -> bool:
    """Whether the server answered 404 (the error is raised from the HTTPError)."""
    cause = exc.__cause__
    return isinstance(cause, urllib.error.HTTPError) and cause.code == 404


def _fetch_error(url: str, exc: BaseException, what: str) -> FetchError:
    if isinstance(exc, urllib.error.HTTPError):
        hint = "check the name and version" if exc.code == 404 else None
        return FetchError(f"{what}: {url}: HTTP {exc.code} {exc.reason}", hint=hint)
    reason = getattr(exc, "reason", exc)
    return FetchError(f"{what}: {url}: {reason}")



def download(url: str, target: Path, *, sha256: str | None = None, what: str = "download") -> Path:
    """Download ``url`` to ``target``, resuming a partial file, checking ``sha256`` if given.

    ``file://`` urls are copied. The target appears only once complete (and verified); a
    download that fails leaves no folder or lock file behind that it made (a partial file
    it can resume from is kept, and the folders that hold it).
    """
    made = _missing_folders(target.parent)
    lock = target.with_name(target.name + ".lock")
    try:
        return _download(url, target, lock, sha256=sha256, what=what)
    except BaseException:
        if made:
            lock.unlink(missing_ok=True)
            for folder in made:  # the deepest first; each only if nothing else is in it
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, the deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _download(url: str, target: Path, lock: Path, *, sha256: str | None, what: str) -> Path:
    with exclusive(lock):
        if target.exists():
            return target
        part = target.with_name(target.name + ".part")
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "file":
            source = Path(urllib.request.url2pathname(parsed.path))
            try:
                shutil.copyfile(source, part)
            except OSError as exc:
                raise FetchError(f"{what}: cannot read {source}: {exc.strerror or exc}",
                                 hint="check the file:// path in the recipe") from exc
        elif parsed.scheme == "https" or (parsed.scheme == "http" and _loopback(parsed)):
            _download_resuming(url, part, what)
        else:
            raise FetchError(f"{what}: {url}: only https:// and file:// urls are fetched",
                             hint="use the https address")
        if sha256 is not None:
            actual = _sha256(part)
            if actual != sha256:
                part.unlink(missing_ok=True)
                raise HashMismatchError(
                    f"{what}: {url}: sha256 is {actual}, but {sha256} was expected")
        os.replace(part, target)
    return target


def _loopback(parsed: urllib.parse.ParseResult) -> bool:
    return parsed.hostname in {"127.0.0.1", "localhost", "::1"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download_resuming(url: str, part: Path, what: str) -> None:
    last: BaseException | None = None
    for attempt in range(RETRIES):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with urllib.request.urlopen(_request(url, headers), timeout=TIMEOUT) as resp:  # noqa: S310
                if have and resp.status != 206:
                    have = 0  # the server ignored Range: start over
                total = resp.headers.get("Content-Length")
                reporter().note(f"downloading {url.rsplit('/', 1)[-1]}"
                                + (f" ({int(total) + have:,} bytes)" if total else "")
                                + (f", resuming at {have:,}" if have else ""))
                with part.open("ab" if have else "wb") as out:
                    shutil.copyfileobj(resp, out, _CHUNK)
                if total is not None and part.stat().st_size != have + int(total):
                    raise http.client.IncompleteRead(b"", int(total))
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # already complete
                return
            if _is_permanent(exc):
                raise _fetch_error(url, exc, what) from exc
            last = exc
        except _TRANSIENT as exc:
            last = exc
        reporter().note(f"download interrupted ({last}); retrying")
        time.sleep(min(2**attempt * 0.5, 8))
    assert last is not None
    raise _fetch_error(url, last, what) from last

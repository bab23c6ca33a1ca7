"""Downloads: hashes always checked, both digests named; broken downloads resumed."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from kiln import http as kiln_http
from kiln.errors import FetchError, HashMismatchError
from kiln.fetch import fetch_sdist
from kiln.recipe import parse_recipe


def recipe_for(url: str, digest: str):
    return parse_recipe(f"""
[package]
name = "demo"
version = "1.0"
[source]
url = "{url}"
sha256 = "{digest}"
""", Path("recipes/demo.toml"))


def test_hash_mismatch_names_both_digests_and_leaves_no_file(tmp_path):
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"real bytes")
    wrong = "0" * 64
    actual = hashlib.sha256(b"real bytes").hexdigest()
    with pytest.raises(HashMismatchError) as info:
        fetch_sdist(recipe_for(sdist.as_uri(), wrong), tmp_path / "cache")
    assert wrong in info.value.message and actual in info.value.message
    assert "recipes/demo.toml" in info.value.message
    assert not list((tmp_path / "cache").rglob("*.tar.gz"))


def test_cached_copy_is_rechecked(tmp_path):
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"good")
    digest = hashlib.sha256(b"good").hexdigest()
    recipe = recipe_for(sdist.as_uri(), digest)
    fetched = fetch_sdist(recipe, tmp_path / "cache")
    assert fetched.sha256 == digest
    fetched.path.write_bytes(b"evil")  # someone tampers with the cache
    with pytest.raises(HashMismatchError):
        fetch_sdist(recipe, tmp_path / "cache")
    assert not fetched.path.exists()
    assert fetch_sdist(recipe, tmp_path / "cache").path.read_bytes() == b"good"


def test_missing_local_file(tmp_path):
    with pytest.raises(FetchError) as info:
        fetch_sdist(recipe_for((tmp_path / "gone.tar.gz").as_uri(), "0" * 64), tmp_path / "c")
    assert "cannot read" in info.value.message


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves BODY; the first request is cut off halfway, later ones honour Range."""

    body = bytes(range(256)) * 400
    calls: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        FlakyHandler.calls.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            size = len(self.body)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(self.body) - start))
        self.end_headers()
        if len(FlakyHandler.calls) == 1:
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(self.body[start:])

    def log_message(self, *args: object) -> None:
        pass


def test_broken_download_resumes_with_range(tmp_path, monkeypatch):
    monkeypatch.setattr(kiln_http.time, "sleep", lambda s: None)
    FlakyHandler.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/demo-1.0.tar.gz"
        digest = hashlib.sha256(FlakyHandler.body).hexdigest()
        target = kiln_http.download(url, tmp_path / "demo.tar.gz", sha256=digest)
    finally:
        server.shutdown()
    assert target.read_bytes() == FlakyHandler.body
    assert FlakyHandler.calls[0] is None
    assert FlakyHandler.calls[1] == f"bytes={len(FlakyHandler.body) // 2}-"


def test_plain_http_to_the_internet_is_refused(tmp_path):
    with pytest.raises(FetchError) as info:
        kiln_http.download("http://example.org/x.tar.gz", tmp_path / "x")
    assert "only https://" in info.value.message


def test_a_failed_download_leaves_no_folder_or_lock_behind(tmp_path):
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"real bytes")
    with pytest.raises(HashMismatchError):
        fetch_sdist(recipe_for(sdist.as_uri(), "0" * 64), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # every folder it made, and its lock, are gone


def test_a_failed_download_keeps_the_folders_it_found(tmp_path):
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"real bytes")
    (tmp_path / "cache" / "sdists" / "other").mkdir(parents=True)
    with pytest.raises(HashMismatchError):
        fetch_sdist(recipe_for(sdist.as_uri(), "0" * 64), tmp_path / "cache")
    left = sorted(str(p.relative_to(tmp_path / "cache")) for p in (tmp_path / "cache").rglob("*"))
    assert left == ["sdists", "sdists/other"]


def test_only_the_recipes_own_sdist_is_bad_input(tmp_path):
    # A wrong sha256 in the recipe refuses the recipe (no status file); a pinned file of
    # kiln's own (CPython headers, a Debian package) that does not match fails the build,
    # which `kiln status` must be able to show.
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"real bytes")
    with pytest.raises(HashMismatchError) as refused:
        fetch_sdist(recipe_for(sdist.as_uri(), "0" * 64), tmp_path / "cache")
    assert refused.value.bad_input
    with pytest.raises(HashMismatchError) as failed:
        kiln_http.download(sdist.as_uri(), tmp_path / "tools" / "x.deb", sha256="0" * 64)
    assert not failed.value.bad_input

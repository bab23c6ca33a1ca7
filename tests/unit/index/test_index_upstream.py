"""`--upstream`: upstream's files are listed after kiln's, as links with hashes, cheaply."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from index_support import make_wheel

from kiln.index import build_index

JSON = "application/vnd.pypi.simple.v1+json"


class FakeUpstream:
    """A PEP 691 index on loopback whose answers the test changes as it goes."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body)
        self.requests: list[tuple[str, int]] = []
        self.fail = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if upstream.fail:
                    status, body, ctype = 503, b"", "text/plain"
                elif self.path not in upstream.pages:
                    status, body, ctype = 404, b"", "text/plain"
                else:
                    ctype, body = upstream.pages[self.path]
                    etag = f'"{hash(body) & 0xffffffff:x}"'
                    status = 304 if self.headers.get("If-None-Match") == etag else 200
                upstream.requests.append((self.path, status))
                self.send_response(status)
                if status in (200, 304):
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if status == 200 else 0))
                self.end_headers()
                if status == 200:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, project: str, files: list[dict], versions: list[str]) -> None:
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                           "versions": versions, "files": files}).encode()
        self.pages[f"/simple/{project}/"] = (JSON, body)


@pytest.fixture
def upstream():
    fake = FakeUpstream()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def files_of(out, project):
    return json.loads((out / "simple" / project / "index.json").read_text())["files"]


def test_upstream_links_follow_kilns_own_and_are_refreshed_with_etags(tmp_path, upstream):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "2.0")
    make_wheel(wh, "local-only", "1.0")
    upstream.page("demo", [
        {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
         "hashes": {"sha256": "1" * 64}, "size": 10},
        {"filename": "demo-2.0-py3-none-any.whl", "url": "/packages/other-bytes.whl",
         "hashes": {"sha256": "2" * 64}, "size": 11},
    ], ["1.0", "2.0"])
    report = build_index(wh, out, upstream=upstream.url)
    files = files_of(out, "demo")
    assert [f["filename"] for f in files] == ["demo-2.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert files[0]["url"].startswith("../../files/")  # kiln's own, not upstream's
    assert files[1]["url"] == upstream.url.replace("/simple/", "/packages/demo-1.0.tar.gz")
    assert json.loads((out / "simple/demo/index.json").read_text())["versions"] == ["1.0", "2.0"]
    html = (out / "simple/demo/index.html").read_text()
    assert f'{files[1]["url"]}#sha256={"1" * 64}' in html
    assert report.upstream_files == 2 and report.warnings == []
    # unchanged upstream: a 304, and nothing rewritten
    again = build_index(wh, out, upstream=upstream.url)
    assert again.up_to_date
    assert ("/simple/demo/", 304) in upstream.requests
    # upstream changes: only that project is rewritten
    upstream.page("demo", [{"filename": "demo-3.0.tar.gz", "url": "/p/demo-3.0.tar.gz",
                            "hashes": {"sha256": "3" * 64}}], ["3.0"])
    third = build_index(wh, out, upstream=upstream.url)
    assert third.projects_rewritten == 1
    assert [f["filename"] for f in files_of(out, "demo")] == [
        "demo-2.0-py3-none-any.whl", "demo-3.0.tar.gz"]


def test_an_unreachable_upstream_keeps_the_last_links(tmp_path, upstream):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "2.0")
    upstream.page("demo", [{"filename": "demo-1.0.tar.gz", "url": "/p/demo-1.0.tar.gz",
                            "hashes": {"sha256": "1" * 64}}], ["1.0"])
    build_index(wh, out, upstream=upstream.url)
    upstream.fail = True
    report = build_index(wh, out, upstream=upstream.url)
    assert any("HTTP 503" in w for w in report.warnings)
    assert [f["filename"] for f in files_of(out, "demo")] == [
        "demo-2.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    # and dropping --upstream drops upstream's links
    upstream.fail = False
    build_index(wh, out)
    assert [f["filename"] for f in files_of(out, "demo")] == ["demo-2.0-py3-none-any.whl"]


def test_html_only_upstream(tmp_path, upstream):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "2.0")
    upstream.pages["/simple/demo/"] = ("text/html", (
        '<html><body><a href="/p/demo-1.0.tar.gz#sha256=' + "4" * 64 +
        '" data-requires-python="&gt;=3.6">demo-1.0.tar.gz</a>'
        '<a href="/p/nohash.tar.gz">demo-0.1.tar.gz</a></body></html>').encode())
    build_index(wh, out, upstream=upstream.url)
    files = files_of(out, "demo")
    assert [f["filename"] for f in files] == ["demo-2.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert files[1]["requires-python"] == ">=3.6"
    assert files[1]["hashes"] == {"sha256": "4" * 64}


def test_bandersnatch_tree_inside_the_output_gets_relative_links(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "2.0")
    web = out / "upstream" / "web"  # bandersnatch `directory = public/upstream`
    (web / "simple" / "demo").mkdir(parents=True)
    (web / "packages" / "ab").mkdir(parents=True)
    (web / "packages" / "ab" / "demo-1.0.tar.gz").write_bytes(b"sdist")
    (web / "simple" / "demo" / "index.v1_json").write_text(json.dumps({
        "meta": {"api-version": "1.1"}, "name": "demo", "versions": ["1.0"],
        "files": [{"filename": "demo-1.0.tar.gz", "url": "../../packages/ab/demo-1.0.tar.gz",
                   "hashes": {"sha256": "5" * 64}, "size": 5}]}))
    build_index(wh, out, upstream=(web / "simple").as_uri() + "/")
    files = files_of(out, "demo")
    assert files[1]["url"] == "../../upstream/web/packages/ab/demo-1.0.tar.gz"

"""`kiln serve` in-process: negotiation, content types, redirects, ranges, caching, safety."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest
from index_support import copy_asset_wheel, make_wheel

from kiln.errors import UsageError
from kiln.index import build_index
from kiln.serve import IndexServer, negotiate

JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


@pytest.mark.parametrize(("accept", "fmt", "expected"), [
    (PIP_ACCEPT, None, (JSON, "json")),
    ("text/html", None, ("text/html; charset=utf-8", "html")),
    (None, None, ("text/html; charset=utf-8", "html")),
    ("*/*", None, ("text/html; charset=utf-8", "html")),
    ("application/vnd.pypi.simple.latest+json", None, (JSON, "json")),
    ("application/vnd.pypi.simple.v1+html", None, ("application/vnd.pypi.simple.v1+html", "html")),
    (f"{JSON};q=0.2, text/html;q=0.9", None, ("text/html; charset=utf-8", "html")),
    (f"{JSON};q=0, */*", None, ("text/html; charset=utf-8", "html")),
    ("application/*;q=0.5, text/html;q=0.4", None, (JSON, "json")),
    ("application/vnd.pypi.simple.v2+json", None, None),
    (f"{JSON};q=0", None, None),
    ("text/html", "json", (JSON, "json")),
    (PIP_ACCEPT, "html", ("text/html; charset=utf-8", "html")),
    (None, "xml", None),
])
def test_negotiation(accept, fmt, expected):
    assert negotiate(accept, fmt) == expected


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    wh, out = tmp / "wh", tmp / "public"
    make_wheel(wh, "demo-pkg", "1.0")
    copy_asset_wheel(wh, "rfc8785-0.1.2-py3-none-any.whl")
    (tmp / "secret.txt").write_text("outside the index")
    build_index(wh, out)
    (out / "files" / "escape").symlink_to(tmp / "secret.txt")
    lines: list[str] = []
    server = IndexServer(out, port=0, log=lines.append)
    server.start()
    yield server, out, lines
    server.close()


def request(server: IndexServer, path: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.body = resp.read()  # type: ignore[attr-defined]
    conn.close()
    return resp


def test_project_page_in_both_forms(served):
    server, _, lines = served
    resp = request(server, "/simple/demo-pkg/", Accept=PIP_ACCEPT)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == JSON
    assert resp.headers["Vary"] == "Accept"
    assert json.loads(resp.body)["name"] == "demo-pkg"
    html = request(server, "/simple/demo-pkg/", Accept="text/html")
    assert html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<a href=" in html.body
    forced = request(server, "/simple/?format=json")
    assert json.loads(forced.body)["projects"] == [{"name": "demo-pkg"}, {"name": "rfc8785"}]
    assert request(server, "/simple/demo-pkg/", Accept="application/xml").status == 406
    # The server logs once the response is out, from its own thread: wait for the lines.
    deadline = time.monotonic() + 10
    while len(lines) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(line.startswith('127.0.0.1 "GET /simple/demo-pkg/" 200 ') and " json " in line
               for line in lines), lines


def test_unnormalized_names_and_missing_slashes_redirect(served):
    server, *_ = served
    for path, target in (("/simple/Demo_Pkg/", "/simple/demo-pkg/"),
                         ("/simple/demo-pkg", "/simple/demo-pkg/"),
                         ("/simple", "/simple/"), ("/", "/simple/")):
        resp = request(server, path)
        assert (resp.status, resp.headers["Location"]) == (301, target), path
    assert request(server, "/simple/nothing-here/").status == 404


def test_files_have_types_ranges_and_etags(served):
    server, out, lines = served
    wheel = "/files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
    data = (out / wheel.lstrip("/")).read_bytes()
    whole = request(server, wheel)
    assert whole.status == 200 and whole.body == data
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = request(server, wheel, Range="bytes=10-19")
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = request(server, wheel, Range="bytes=-22")  # how clients find the zip directory
    assert tail.status == 206 and tail.body == data[-22:]
    assert request(server, wheel, Range=f"bytes={len(data)}-").status == 416
    assert request(server, wheel, Range="bytes=0-1,5-6").body == data  # several: all of it
    assert request(server, wheel, Range="bytes=0-3", **{"If-Range": '"stale"'}).status == 200
    assert request(server, wheel, **{"If-None-Match": whole.headers["ETag"]}).status == 304
    metadata = request(server, wheel + ".metadata")
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert metadata.body.startswith(b"Metadata-Version:")
    provenance = request(server, "/files/rfc8785/rfc8785-0.1.2-py3-none-any.whl.provenance")
    assert provenance.headers["Content-Type"] == "application/vnd.pypi.integrity.v1+json"
    assert any(" 206 10 " in line and "range 10-19" in line for line in lines)


def test_nothing_outside_the_index_is_served(served):
    server, *_ = served
    for path in ("/files/escape", "/../secret.txt", "/files/%2e%2e/%2e%2e/secret.txt",
                 "/.kiln/state.sqlite3", "/simple/demo-pkg/../../.kiln/lock"):
        assert request(server, path).status == 404, path


def test_head_sends_no_body(served):
    server, *_ = served
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/simple/", headers={"Accept": JSON})
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.headers["Content-Length"]) > 0
    assert resp.read() == b""
    conn.close()


def test_only_loopback_and_only_an_index(tmp_path):
    with pytest.raises(UsageError, match="loopback only"):
        IndexServer(tmp_path, host="0.0.0.0", port=0)
    with pytest.raises(UsageError, match="not an index"):
        IndexServer(tmp_path, port=0)


def test_a_plain_copy_of_an_index_is_served_too(tmp_path):
    # what `kiln publish` writes to a folder has real folders instead of symlinks
    (tmp_path / "simple" / "demo").mkdir(parents=True)
    (tmp_path / "simple" / "demo" / "index.html").write_text("<a href='x'>x</a>")
    server = IndexServer(Path(tmp_path), port=0)
    server.start()
    try:
        resp = request(server, "/simple/demo/", Accept=PIP_ACCEPT)  # no JSON: HTML it is
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.pypi.simple.v1+html"
    finally:
        server.close()

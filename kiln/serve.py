"""``kiln serve``: a small loopback HTTP server for an index that ``kiln index`` wrote.

It speaks what pip, uv and Poetry expect of an index: PEP 691 content negotiation
between HTML and JSON (``Accept`` with q-values, or ``?format=json|html``), the right
content types, redirects to normalized project URLs (PEP 503), single byte ranges on
files (clients read a wheel's central directory that way), ETags with 304s, and one
log line per request. It binds loopback only: it is for local use and tests, not the
internet (publish to a real web server or bucket for that).
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from kiln.errors import UsageError
from kiln.index.media import content_type_for
from kiln.index.model import HTML_TYPE, JSON_TYPE

LogLine = Callable[[str], None]
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_CHUNK = 1 << 16

# (media type offered, what is sent back, which file)
_OFFERS = (
    (JSON_TYPE, JSON_TYPE, "json"),
    ("application/vnd.pypi.simple.latest+json", JSON_TYPE, "json"),
    (HTML_TYPE, HTML_TYPE, "html"),
    ("application/vnd.pypi.simple.latest+html", HTML_TYPE, "html"),
    ("text/html", "text/html; charset=utf-8", "html"),
)
_FORMATS = {"json": (JSON_TYPE, "json"), JSON_TYPE: (JSON_TYPE, "json"),
            "html": ("text/html; charset=utf-8", "html"), HTML_TYPE: (HTML_TYPE, "html"),
            "text/html": ("text/html; charset=utf-8", "html")}
_PAGE_FILES = {"json": ("index.json", "index.v1_json"), "html": ("index.html", "index.v1_html")}


def negotiate(accept: str | None, fmt: str | None = None) -> tuple[str, str] | None:
    """(content type to send, "json" or "html") for a request, or None for 406.

    Quality values rank the offers; an exact media type beats a wildcard at equal
    quality, and JSON beats HTML between exact types. A bare ``*/*`` (browsers, curl)
    gets HTML.
    """
    choices = acceptable(accept, fmt)
    return choices[0] if choices else None


def acceptable(accept: str | None, fmt: str | None = None) -> list[tuple[str, str]]:
    """Every answer the client accepts, best first (see ``negotiate``)."""
    if fmt:
        forced = _FORMATS.get(fmt.strip().lower())
        return [forced] if forced else []
    if not accept or not accept.strip():
        return [("text/html; charset=utf-8", "html")]
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    scored: list[tuple[tuple[float, int, int], tuple[str, str]]] = []
    for preference, (offer, sent, kind) in enumerate(_OFFERS):
        major = offer.split("/", 1)[0]
        matches = [(q, 2 if media == offer else 1 if media == f"{major}/*" else 0)
                   for media, q in ranges if media in (offer, f"{major}/*", "*/*")]
        if not matches:
            continue
        # the most specific range that matches decides the quality (RFC 9110 §12.5.1)
        specificity = max(s for _, s in matches)
        quality = max(q for q, s in matches if s == specificity)
        if quality > 0:
            scored.append(((quality, specificity, -preference), (sent, kind)))
    scored.sort(reverse=True)
    if scored and scored[0][0][1] == 0:  # only */* matched: the legacy answer
        return [("text/html; charset=utf-8", "html")]
    return [choice for _, choice in scored]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kiln-serve"
    root: Path
    real_root: str
    emit: LogLine

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request is written by _handle, with what was chosen

    def _handle(self, *, head: bool) -> None:
        started = time.monotonic()
        self._detail = ""
        self._sent = 0
        try:
            status = self._route(head)
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        elapsed = (time.monotonic() - started) * 1000
        agent = (self.headers.get("User-Agent") or "-").split(" ", 1)[0]
        self.emit(f'{self.client_address[0]} "{self.command} {self.path}" {status} '
                  f"{self._sent} {elapsed:.1f}ms {self._detail or '-'} {agent}")

    def _route(self, head: bool) -> int:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        segments = [s for s in path.split("/") if s]
        if any(s.startswith(".") or "\\" in s or "\0" in s for s in segments):
            return self._error(HTTPStatus.NOT_FOUND)
        if not segments:
            return self._redirect("/simple/")
        if segments[0] != "simple":
            return self._file(self.root.joinpath(*segments), head)
        if len(segments) > 3 or (len(segments) == 3 and segments[2] not in (
                "index.html", "index.json", "index.v1_html", "index.v1_json")):
            return self._error(HTTPStatus.NOT_FOUND)
        if len(segments) == 3:  # an explicit page file: no negotiation
            return self._file(self.root.joinpath(*segments), head)
        if len(segments) == 2:
            name = segments[1]
            if not _NAME.match(name):
                return self._error(HTTPStatus.NOT_FOUND)
            if _normalize(name) != name or not path.endswith("/"):
                return self._redirect(f"/simple/{quote(_normalize(name))}/")
        elif not path.endswith("/"):
            return self._redirect("/simple/")
        query = parse_qs(parts.query)
        fmt = query.get("format")
        choices = acceptable(self.headers.get("Accept"), fmt[0] if fmt else None)
        if not choices:
            return self._error(HTTPStatus.NOT_ACCEPTABLE,
                               "this index serves application/vnd.pypi.simple.v1+json, "
                               "application/vnd.pypi.simple.v1+html and text/html")
        folder = self.root.joinpath(*segments)
        # the best answer that exists: a copied index may have only its HTML pages
        for content_type, kind in choices:
            for filename in _PAGE_FILES[kind]:
                if (folder / filename).is_file():
                    self._detail = kind
                    return self._file(folder / filename, head, content_type=content_type,
                                      vary=True)
        return self._error(HTTPStatus.NOT_FOUND)

    def _file(self, path: Path, head: bool, *, content_type: str | None = None,
              vary: bool = False) -> int:
        real = os.path.realpath(path)
        if not (real == self.real_root or real.startswith(self.real_root + os.sep)):
            return self._error(HTTPStatus.NOT_FOUND)  # a symlink out of the index
        try:
            fh = open(real, "rb")  # noqa: SIM115 - closed below, after streaming
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return self._error(HTTPStatus.NOT_FOUND)
        with fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            start, end, status = 0, size - 1, HTTPStatus.OK
            if etag in (self.headers.get("If-None-Match") or "") and not self.headers.get("Range"):
                self._start(HTTPStatus.NOT_MODIFIED, [("ETag", etag), ("Content-Length", "0")])
                return HTTPStatus.NOT_MODIFIED
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and (not if_range or if_range == etag):
                parsed = _byte_range(wanted, size)
                if isinstance(parsed, str):  # unsatisfiable
                    self._detail = f"range {wanted}"
                    self._start(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                                [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
                    return HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
                if parsed is not None:
                    start, end = parsed
                    status = HTTPStatus.PARTIAL_CONTENT
                    self._detail = f"range {start}-{end}"
            length = max(0, end - start + 1)
            headers = [
                ("Content-Type", content_type or content_type_for(path.name)),
                ("Content-Length", str(length)),
                ("Accept-Ranges", "bytes"),
                ("ETag", etag),
                ("Last-Modified", formatdate(st.st_mtime, usegmt=True)),
                ("Cache-Control", "max-age=0, must-revalidate"),
            ]
            if vary:
                headers.append(("Vary", "Accept"))
            if status == HTTPStatus.PARTIAL_CONTENT:
                headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
            self._start(status, headers)
            if not head and length:
                fh.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = fh.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
                    self._sent += len(chunk)
        return int(status)

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()

    def _redirect(self, location: str) -> int:
        self._start(HTTPStatus.MOVED_PERMANENTLY,
                    [("Location", location), ("Content-Length", "0")])
        return HTTPStatus.MOVED_PERMANENTLY

    def _error(self, status: HTTPStatus, explain: str | None = None) -> int:
        self.send_error(status, explain=explain)
        return int(status)


def _byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=a-b`` range clipped to the file; None to send it whole."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # several ranges or another unit: RFC 9110 lets us send the whole
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if start < 0 or end < start:
        return None
    return start, min(end, size - 1)


class IndexServer:
    """A threading HTTP server over an index folder, on loopback only."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 8000,
                 log: LogLine | None = None) -> None:
        if host == "localhost":
            host = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(f"--host {host}: kiln serve listens on loopback only",
                             hint="use 127.0.0.1 or ::1; publish to a web server or a "
                                  "bucket to serve others (`kiln publish`)")
        if not (root / "simple").is_dir():
            raise UsageError(f"{root}: not an index (no simple/ inside)",
                             hint=f"write one first: kiln index WHEELHOUSE -o {root}")
        handler = type("Handler", (_Handler,), {
            "root": root.absolute(), "real_root": os.path.realpath(root),
            "emit": staticmethod(log or (lambda line: None))})
        server_class = type("Server", (ThreadingHTTPServer,), {
            "daemon_threads": True,
            "request_queue_size": 64,  # uv opens many connections at once
            "address_family": 10 if ":" in host else 2})  # AF_INET6 for ::1
        try:
            self.httpd = server_class((host, port), handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                             hint="choose another --port (0 picks a free one)") from exc
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._running = False

    @property
    def host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        return f"http://{self.host_for_url}:{self.port}/simple/"

    def serve_until(self, stop: threading.Event) -> None:
        watcher = threading.Thread(target=lambda: (stop.wait(), self.httpd.shutdown()),
                                   daemon=True)
        watcher.start()
        self._running = True
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> threading.Thread:
        """Serve from a background thread (for tests and embedding)."""
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._running = True
        thread.start()
        return thread

    def close(self) -> None:
        if self._running:  # shutdown() would wait forever for a loop that never ran
            self.httpd.shutdown()
            self._running = False
        self.httpd.server_close()

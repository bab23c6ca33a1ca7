"""Content types for the files of an index, shared by ``kiln serve`` and ``kiln publish``."""

from __future__ import annotations

import mimetypes

from kiln.index.model import JSON_TYPE, PROVENANCE_TYPE

_BY_SUFFIX = (
    (".whl", "application/octet-stream"),  # PyPI serves distributions as opaque bytes
    (".tar.gz", "application/octet-stream"),
    (".zip", "application/octet-stream"),
    (".metadata", "text/plain; charset=utf-8"),  # core metadata is UTF-8 RFC 822 text
    (".provenance", PROVENANCE_TYPE),
    ("index.json", JSON_TYPE),
    ("index.v1_json", JSON_TYPE),
    ("index.html", "text/html; charset=utf-8"),
    ("index.v1_html", "text/html; charset=utf-8"),
    (".json", "application/json"),
    (".html", "text/html; charset=utf-8"),
)


def content_type_for(name: str) -> str:
    for suffix, content_type in _BY_SUFFIX:
        if name.endswith(suffix):
            return content_type
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def is_page(key: str) -> bool:
    """A page of the simple API (the last things to publish), as opposed to a file."""
    return key.startswith("simple/") or key == "simple"

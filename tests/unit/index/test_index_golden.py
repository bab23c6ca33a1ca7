"""The index pages byte for byte against golden files, and the JSON against PEP 691's schema.

Regenerate the golden files after an intended change with

    KILN_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/index/test_index_golden.py

and read the diff (`git diff tests/unit/index/golden`) before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from index_support import copy_asset_wheel, make_wheel, write_record

from kiln.index import build_index

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).parent / "pep691.schema.json").read_text())
REGEN = bool(os.environ.get("KILN_REGEN_GOLDEN"))

UPSTREAM_PAGE = {
    "meta": {"api-version": "1.1"},
    "name": "mixed",
    "versions": ["0.9", "1.0"],
    "files": [
        {"filename": "mixed-0.9.tar.gz", "url": "https://files.example.org/p/mixed-0.9.tar.gz",
         "hashes": {"sha256": "a" * 64}, "requires-python": ">=3.7", "size": 1234,
         "upload-time": "2020-01-01T00:00:00.000000Z", "yanked": "broken build",
         "core-metadata": False},
        {"filename": "mixed-1.0-py3-none-any.whl",  # kiln has this one: kiln's wins
         "url": "https://files.example.org/p/mixed-1.0-py3-none-any.whl",
         "hashes": {"sha256": "b" * 64}, "size": 1},
        {"filename": "mixed-0.9-py3-none-any.whl", "url": "https://files.example.org/p/mixed-0.9-py3-none-any.whl",
         "hashes": {"sha256": "c" * 64, "md5": "d" * 32}, "core-metadata": {"sha256": "e" * 64},
         "size": 99, "provenance": "https://files.example.org/p/mixed-0.9.whl.provenance"},
        {"filename": "mixed-0.8-py3-none-any.whl", "url": "https://files.example.org/p/x.whl",
         "hashes": {}},  # no hash a client could check: left out
    ],
}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("golden")
    wh, out = tmp / "wheelhouse", tmp / "public"
    first = make_wheel(wh, "demo-pkg", "1.0", requires_python=">=3.8,<4")
    write_record(first, reproducible=True, build_id="build-0001", hermetic=True)
    second = make_wheel(wh, "demo-pkg", "1.1+local.1", tag="cp311-cp311-manylinux_2_17_x86_64")
    write_record(second, reproducible=False, build_id="build-0002", hermetic=False)
    make_wheel(wh, "mixed", "1.0")
    copy_asset_wheel(wh, "rfc8785-0.1.2-py3-none-any.whl")
    (wh / "broken-1.0-py3-none-any.whl").write_bytes(b"not a wheel")
    upstream = tmp / "upstream" / "simple"
    (upstream / "mixed").mkdir(parents=True)
    (upstream / "mixed" / "index.json").write_text(json.dumps(UPSTREAM_PAGE))
    report = build_index(wh, out, upstream=upstream.as_uri() + "/")
    assert [r.filename for r in report.rejected] == ["broken-1.0-py3-none-any.whl"]
    assert report.upstream_files == 3
    return out


PAGES = ["simple/index.html", "simple/index.json",
         "simple/demo-pkg/index.html", "simple/demo-pkg/index.json",
         "simple/rfc8785/index.html", "simple/rfc8785/index.json",
         "simple/mixed/index.html", "simple/mixed/index.json",
         "files/rfc8785/rfc8785-0.1.2-py3-none-any.whl.provenance"]


def _golden_name(page: str) -> str:
    return page.replace("/", "__")


@pytest.mark.parametrize("page", PAGES)
def test_page_matches_golden(index, page):
    actual = (index / page).read_bytes()
    golden = GOLDEN / _golden_name(page)
    if page.endswith((".json", ".provenance")):
        # stored pretty-printed for reading; the index writes compact JSON
        actual = (json.dumps(json.loads(actual), indent=2) + "\n").encode()
    if REGEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(actual)
    assert golden.exists(), f"no golden file {golden}: run with KILN_REGEN_GOLDEN=1"
    assert actual.decode() == golden.read_text()


def test_published_files_match_golden(index):
    listing = sorted(str(p.relative_to(index)) for p in (index / "files").rglob("*")
                     if p.is_file())
    golden = GOLDEN / "files.txt"
    if REGEN:
        golden.write_text("\n".join(listing) + "\n")
    assert listing == golden.read_text().split()


@pytest.mark.parametrize("page", [p for p in PAGES if p.endswith("index.json")])
def test_json_pages_follow_pep691_schema(index, page):
    jsonschema.validate(json.loads((index / page).read_bytes()), SCHEMA)


@pytest.mark.parametrize("broken", [
    {"meta": {"api-version": "1.3"}, "name": "Not_Normalized", "versions": [], "files": []},
    {"meta": {"api-version": "1.3"}, "name": "x", "files": []},  # 1.1+ needs versions
    {"meta": {"api-version": "1.3"}, "name": "x", "versions": [],
     "files": [{"filename": "x-1.whl", "url": "x-1.whl", "hashes": {"sha256": "0"}}]},  # size
    {"meta": {"api-version": "1.0"}, "name": "x",
     "files": [{"filename": "x-1.whl", "url": "u", "hashes": {}, "requires_python": ">=3"}]},
    {"meta": {"api-version": "1.0"}, "name": "x",
     "files": [{"filename": "x-1.whl", "url": "u", "hashes": {"SHA256": "00"}}]},
    {"meta": {}, "projects": []},
])
def test_schema_refuses_what_pep691_does_not_allow(broken):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_base_url_makes_every_link_absolute(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    copy_asset_wheel(wh, "rfc8785-0.1.2-py3-none-any.whl")
    build_index(wh, out, base_url="https://wheels.example.org/mirror")
    record = json.loads((out / "simple/rfc8785/index.json").read_text())["files"][0]
    base = "https://wheels.example.org/mirror/files/rfc8785/rfc8785-0.1.2-py3-none-any.whl"
    assert record["url"] == base
    assert record["provenance"] == base + ".provenance"  # PEP 740: a fully qualified URL

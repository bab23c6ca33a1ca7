"""`kiln index` as a library: what it writes, what it leaves out, and how little a re-run does."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin

import pytest
from index_support import FIXED_MTIME, copy_asset_wheel, make_wheel, write_record

from kiln.errors import IndexBuildError
from kiln.index import build_index
from kiln.index.state import IndexState


def page(out: Path, project: str) -> dict:
    return json.loads((out / "simple" / project / "index.json").read_text())


def file_path(out: Path, project: str, record: dict) -> Path:
    url = urljoin(f"http://x/simple/{project}/", record["url"])
    return out / unquote(url.split("http://x/", 1)[1])


def test_index_lists_each_wheel_with_hash_metadata_and_pep700_fields(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    wheel = make_wheel(wh, "Demo_Pkg", "1.0", requires_python=">=3.8")
    write_record(wheel, reproducible=True, build_id="build-42", hermetic=True,
                 test={"ran": True, "passed": True, "commands": ["python -m pytest tests"],
                       "counts": {"collected": 414, "passed": 412, "failed": 0,
                                  "skipped": 2}})
    make_wheel(wh, "demo-pkg", "1.10")
    make_wheel(wh, "demo-pkg", "1.9")
    report = build_index(wh, out)
    assert report.wheels == 3 and report.projects == 1 and not report.rejected
    data = page(out, "demo-pkg")
    assert data["name"] == "demo-pkg"
    assert data["meta"]["api-version"] == "1.3"
    assert data["versions"] == ["1.0", "1.9", "1.10"]  # version order, not string order
    first = data["files"][0]
    assert first["filename"] == "Demo_Pkg-1.0-py3-none-any.whl"
    assert first["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert first["requires-python"] == ">=3.8"
    assert first["size"] == wheel.stat().st_size
    assert first["upload-time"] == "2023-11-14T22:13:20.000000Z"
    assert first["_kiln"] == {"reproducible": True, "hermetic": True, "build_id": "build-42",
                              "builders": None, "tests": "passed (412, 2 skipped)",
                              "record": "../../files/demo-pkg/Demo_Pkg-1.0-py3-none-any.whl"
                                        ".build.json"}
    assert data["files"][1]["_kiln"] == {"reproducible": None, "hermetic": None,
                                         "build_id": None, "builders": None, "tests": None,
                                         "record": None}
    # the build record is served beside the wheel, byte for byte
    record = wheel.with_name(wheel.name + ".build.json")
    assert Path(str(file_path(out, "demo-pkg", first)) + ".build.json").read_bytes() == \
        record.read_bytes()
    # the wheel and its PEP 658 metadata file are where the page says, with those hashes
    served = file_path(out, "demo-pkg", first)
    assert served.read_bytes() == wheel.read_bytes()
    metadata = Path(str(served) + ".metadata").read_bytes()
    assert first["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert first["dist-info-metadata"] == first["core-metadata"]
    assert b"Name: Demo_Pkg" in metadata
    html = (out / "simple" / "demo-pkg" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8"' in html
    assert f'data-core-metadata="sha256={first["core-metadata"]["sha256"]}"' in html
    assert 'data-kiln-reproducible="true"' in html
    assert 'data-kiln-tests="passed (412, 2 skipped)"' in html
    root = json.loads((out / "simple" / "index.json").read_text())
    assert root["projects"] == [{"name": "demo-pkg"}]


def test_bad_wheels_are_reported_and_left_out(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "good", "1.0")
    (wh / "notazip-1.0-py3-none-any.whl").write_bytes(b"this is not a zip")
    (wh / "no_version.whl").write_bytes(b"PK")
    make_wheel(wh, "claims", "1.0", metadata_name="other")
    make_wheel(wh, "wrongver", "1.0", metadata_version="2.0")
    report = build_index(wh, out)
    reasons = {r.filename: r.reason for r in report.rejected}
    assert set(reasons) == {"notazip-1.0-py3-none-any.whl", "no_version.whl",
                            "claims-1.0-py3-none-any.whl", "wrongver-1.0-py3-none-any.whl"}
    assert "not a zip" in reasons["notazip-1.0-py3-none-any.whl"]
    assert "wheel file name" in reasons["no_version.whl"]
    assert "Name: other" in reasons["claims-1.0-py3-none-any.whl"]
    assert "Version: 2.0" in reasons["wrongver-1.0-py3-none-any.whl"]
    assert report.wheels == 1
    assert [p["name"] for p in json.loads((out / "simple/index.json").read_text())["projects"]] \
        == ["good"]
    # reported again on the next run, without reading them again
    again = build_index(wh, out)
    assert {r.filename for r in again.rejected} == set(reasons)
    assert again.up_to_date


def test_rerun_reads_only_new_wheels_and_rewrites_only_their_projects(tmp_path, monkeypatch):
    wh, out = tmp_path / "wh", tmp_path / "public"
    for n in range(5):
        make_wheel(wh, f"proj{n}", "1.0")
    build_index(wh, out)
    pages_before = {p: os.readlink(out / "simple" / p) for p in ("proj0", "proj1")}
    assert build_index(wh, out).up_to_date

    read: list[str] = []
    import kiln.index.wheels as wheels

    real = wheels.inspect_wheel
    monkeypatch.setattr(wheels, "inspect_wheel",
                        lambda path, *a: read.append(path.name) or real(path, *a))
    make_wheel(wh, "proj1", "2.0")
    report = build_index(wh, out)
    assert read == ["proj1-2.0-py3-none-any.whl"]
    assert report.added == ["proj1-2.0-py3-none-any.whl"] and report.projects_rewritten == 1
    assert os.readlink(out / "simple" / "proj0") == pages_before["proj0"]  # untouched
    assert os.readlink(out / "simple" / "proj1") != pages_before["proj1"]
    assert [f["filename"] for f in page(out, "proj1")["files"]] == [
        "proj1-1.0-py3-none-any.whl", "proj1-2.0-py3-none-any.whl"]


def test_sidecar_changes_are_noticed_without_rereading_the_wheel(tmp_path, monkeypatch):
    wh, out = tmp_path / "wh", tmp_path / "public"
    wheel = make_wheel(wh, "demo", "1.0")
    build_index(wh, out)
    assert page(out, "demo")["files"][0]["_kiln"]["reproducible"] is None
    import kiln.index.wheels as wheels

    monkeypatch.setattr(wheels, "inspect_wheel", lambda *a: pytest.fail("wheel read again"))
    write_record(wheel, reproducible=False)
    report = build_index(wh, out)
    assert report.changed == [wheel.name]
    assert page(out, "demo")["files"][0]["_kiln"]["reproducible"] is False


def test_a_record_for_other_bytes_is_not_believed(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    wheel = make_wheel(wh, "demo", "1.0")
    write_record(wheel, reproducible=True, sha256="0" * 64)
    report = build_index(wh, out)
    assert page(out, "demo")["files"][0]["_kiln"]["reproducible"] is None
    assert any("describes another build" in w for w in report.warnings)


def test_attested_wheel_gets_a_pep740_provenance_file(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    copy_asset_wheel(wh, "rfc8785-0.1.2-py3-none-any.whl")
    report = build_index(wh, out)
    assert not report.warnings
    record = page(out, "rfc8785")["files"][0]
    assert record["provenance"].endswith("rfc8785-0.1.2-py3-none-any.whl.provenance")
    provenance = json.loads(file_path(out, "rfc8785", {"url": record["provenance"]}).read_text())
    assert provenance["version"] == 1
    bundle = provenance["attestation_bundles"][0]
    assert bundle["publisher"] == {"kind": "Sigstore", "claims": {
        "issuer": "https://github.com/login/oauth", "identity": "william@yossarian.net"}}
    attestation = json.loads((wh / "rfc8785-0.1.2-py3-none-any.whl.publish.attestation")
                             .read_text())
    assert bundle["attestations"] == [attestation]
    html = (out / "simple/rfc8785/index.html").read_text()
    assert f'data-provenance="{record["provenance"]}"' in html


def test_an_attestation_for_other_bytes_is_not_served(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    copy_asset_wheel(wh, "rfc8785-0.1.2-py3-none-any.whl")
    # the same attestation beside a wheel with other contents under the same name
    renamed = wh / "rfc8785-0.1.2-py3-none-any.whl"
    renamed.unlink()
    make_wheel(wh, "rfc8785", "0.1.2")
    report = build_index(wh, out)
    assert page(out, "rfc8785")["files"][0]["provenance"] is None
    assert any("other bytes" in w for w in report.warnings)


def test_removed_wheel_leaves_the_pages_now_and_the_disk_two_runs_later(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    keep = make_wheel(wh, "demo", "1.0")
    gone = make_wheel(wh, "demo", "2.0")
    make_wheel(wh, "solo", "1.0")
    build_index(wh, out)
    published = file_path(out, "demo", page(out, "demo")["files"][1])
    gone.unlink()
    (wh / "solo-1.0-py3-none-any.whl").unlink()
    report = build_index(wh, out)
    assert sorted(report.removed) == ["demo-2.0-py3-none-any.whl", "solo-1.0-py3-none-any.whl"]
    assert [f["filename"] for f in page(out, "demo")["files"]] == [keep.name]
    assert not (out / "simple" / "solo").exists()
    # a reader that fetched an older page a moment ago can still download the file...
    assert published.exists()
    make_wheel(wh, "other", "1.0")
    build_index(wh, out)
    assert published.exists()
    make_wheel(wh, "other", "2.0")
    build_index(wh, out)
    # ...but once no generation in the three slots links to it, it is gone
    assert not published.exists()
    assert sorted(os.listdir(out / ".kiln" / "gen")) == ["0", "1", "2"]
    assert not (out / ".kiln" / "gen" / "1" / "simple" / "solo").exists()


def test_a_rebuilt_wheel_with_new_bytes_gets_a_new_url(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "1.0", code="A = 1\n")
    build_index(wh, out)
    old = page(out, "demo")["files"][0]
    make_wheel(wh, "demo", "1.0", code="A = 2\n", mtime=FIXED_MTIME + 60)
    report = build_index(wh, out)
    new = page(out, "demo")["files"][0]
    assert report.changed == ["demo-1.0-py3-none-any.whl"]
    assert new["hashes"] != old["hashes"] and new["url"] != old["url"]
    # the old URL still has the old bytes (pages cached a moment ago stay right)
    assert hashlib.sha256(file_path(out, "demo", old).read_bytes()).hexdigest() == \
        old["hashes"]["sha256"]
    assert hashlib.sha256(file_path(out, "demo", new).read_bytes()).hexdigest() == \
        new["hashes"]["sha256"]


def test_readers_see_a_whole_generation_while_the_index_is_rewritten(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    for n in range(30):
        make_wheel(wh, f"p{n:02d}", "1.0")
    build_index(wh, out)
    stop = threading.Event()
    problems: list[str] = []
    runs = [0]

    def read() -> None:
        # A reader that resolves `simple` once (as a web server does per request, and
        # `kiln publish` per run) sees one generation whole, with every file present.
        while not stop.is_set():
            seen: list[str] = []
            started = runs[0]
            generation = (out / "simple").resolve()
            try:
                root = json.loads((generation / "index.json").read_bytes())
                versions = set()
                for project in (p["name"] for p in root["projects"]):
                    data = json.loads((generation / project / "index.json").read_bytes())
                    for record in data["files"]:
                        if not file_path(out, project, record).is_file():
                            seen.append(f"{record['url']} missing")
                    versions.add(len(data["files"]))
                if len(versions) > 1:
                    seen.append(f"pages from two generations: {versions}")
            except (OSError, ValueError) as exc:
                seen.append(repr(exc))
            if runs[0] - started <= 1:  # kept two runs; a reader slower than that is late
                problems.extend(seen)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(2, 6):  # each run adds a version to every project at once
            for n in range(30):
                make_wheel(wh, f"p{n:02d}", f"{version}.0")
            build_index(wh, out)
            runs[0] += 1
    finally:
        stop.set()
        reader.join()
    assert problems == []


def test_output_that_kiln_did_not_write_is_refused(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "1.0")
    (out / "simple").mkdir(parents=True)
    with pytest.raises(IndexBuildError, match="did not make"):
        build_index(wh, out)
    with pytest.raises(IndexBuildError, match="not a folder"):
        build_index(tmp_path / "missing", tmp_path / "x")


@pytest.mark.parametrize("listing", ["kept", "unreadable", "missing"])
def test_changes_are_found_with_or_without_the_last_listing(tmp_path, listing):
    """A run compares the wheelhouse with the last run's listing; without a usable one it
    compares every wheel's size and time with the state, and finds the same changes."""
    wh, out = tmp_path / "wh", tmp_path / "public"
    keep = make_wheel(wh, "keep", "1.0")
    edit = make_wheel(wh, "edit", "1.0")
    drop = make_wheel(wh, "drop", "1.0")
    build_index(wh, out)
    if listing != "kept":
        db = IndexState(out / ".kiln" / "state.sqlite3")
        try:
            if listing == "missing":
                db.db.execute("DELETE FROM listing")
            else:
                db.db.execute("UPDATE listing SET data = 'odd\tnumber\tof'")
        finally:
            db.close()
    rebuilt = make_wheel(wh, "edit", "1.0", code="x = 2\n")
    assert rebuilt == edit
    os.utime(edit, ns=(FIXED_MTIME * 10**9 + 1, FIXED_MTIME * 10**9 + 1))
    drop.unlink()
    added = make_wheel(wh, "new", "1.0")
    report = build_index(wh, out)
    assert report.added == [added.name]
    assert report.changed == [edit.name]
    assert report.removed == [drop.name]
    assert keep.name not in report.changed
    assert build_index(wh, out).up_to_date


def test_state_survives_and_full_rereads(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "demo", "1.0")
    build_index(wh, out)
    state = IndexState(out / ".kiln" / "state.sqlite3")
    try:
        assert list(state.wheels()) == ["demo-1.0-py3-none-any.whl"]
    finally:
        state.close()
    # a page folder deleted by hand is written again; --full reads every wheel
    for folder in (out / ".kiln" / "pages" / "demo").iterdir():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    report = build_index(wh, out, full=True)
    assert report.projects_rewritten == 1
    assert page(out, "demo")["files"][0]["filename"] == "demo-1.0-py3-none-any.whl"


def test_large_wheels_are_streamed_and_copied_from_the_hashed_bytes(tmp_path, monkeypatch):
    import kiln.index.wheels as wheels

    monkeypatch.setattr(wheels, "_READ_WHOLE", 100)  # every wheel counts as large here
    wh, out = tmp_path / "wh", tmp_path / "public"
    wheel = make_wheel(wh, "big", "1.0", code="X = 1\n" * 500)
    (wh / "big-2.0-py3-none-any.whl").write_bytes(b"x" * 1000)  # large and not a zip
    report = build_index(wh, out)
    assert [r.filename for r in report.rejected] == ["big-2.0-py3-none-any.whl"]
    record = page(out, "big")["files"][0]
    published = file_path(out, "big", record)
    assert published.read_bytes() == wheel.read_bytes()
    assert record["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert Path(f"{published}.metadata").is_file()
    assert not list((out / "files").glob(".*.part"))  # no spooled copy left behind

"""``kiln challenge``: two kiln indexes served over HTTP, one with a planted wheel.

Mirror A and mirror B each index their own wheelhouse with ``kiln index`` and serve it with
kiln's own server. They agree on one wheel, serve different bytes under one filename (B's
build record names another sdist), and each has a file the other lacks.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import kiln, make_wheel, write_build_record


def _mirror(tmp_path: Path, name: str, planted: bool) -> Path:
    house = tmp_path / f"house-{name}"
    make_wheel(house, "common", "1.0")
    write_build_record(make_wheel(house, "demo", "1.0", seed="planted" if planted else ""))
    if planted:  # B's build was given another sdist, and its record says so
        record = house / "demo-1.0-py3-none-any.whl.build.json"
        doc = json.loads(record.read_text())
        doc["source"]["sha256"] = "9" * 64
        record.write_text(json.dumps(doc))
    write_build_record(make_wheel(house, f"only{name}", "1.0"))
    site = tmp_path / f"site-{name}"
    result = kiln("index", house, "-o", site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return site


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    from kiln.serve import IndexServer

    servers = [IndexServer(_mirror(tmp_path, name, name == "b"), port=0) for name in "ab"]
    for server in servers:
        server.start()
    try:
        yield servers[0].url, servers[1].url, tmp_path / "house-a"
    finally:
        for server in servers:
            server.close()


def test_challenge_reports_the_planted_difference_with_both_records(
        mirrors: tuple[str, str, Path], tmp_path: Path) -> None:
    a, b, _ = mirrors
    result = kiln("challenge", a, b, "--json", cwd=tmp_path)
    assert result.returncode == 14, result.stderr
    report = json.loads(result.stdout)
    assert [x["filename"] for x in report["agree"]] == ["common-1.0-py3-none-any.whl"]
    [differ] = report["differ"]
    assert differ["filename"] == "demo-1.0-py3-none-any.whl"
    assert [s["source"] for s in differ["sides"]] == [a, b]
    assert len({s["sha256"] for s in differ["sides"]}) == 2
    assert all(s["record"] and s["record"].endswith(".build.json") for s in differ["sides"])
    # the records, side by side: B's build was given another sdist
    assert {i["input"] for i in differ["inputs"]} == {"sdist"}
    [sdist] = differ["inputs"]
    assert sdist["ours"].startswith("3333") and sdist["theirs"].startswith("9999")
    assert {(o["filename"], o["source"]) for o in report["only"]} == {
        ("onlya-1.0-py3-none-any.whl", a), ("onlyb-1.0-py3-none-any.whl", b)}
    assert "1 file(s) differ" in result.stderr and "demo-1.0-py3-none-any.whl" in result.stderr

    # the table names the difference, the sources and the differing input
    shown = kiln("challenge", a, b, cwd=tmp_path)
    assert shown.returncode == 14
    assert "1 agree, 1 differ, 2 only on one side" in shown.stdout
    assert "demo-1.0-py3-none-any.whl: 2 different sha256" in shown.stdout
    assert "sdist" in shown.stdout and "hint:" in shown.stderr


def test_challenge_of_agreeing_sources_passes(mirrors: tuple[str, str, Path],
                                              tmp_path: Path) -> None:
    a, _, house = mirrors
    # mirror A against its own wheelhouse and its own index folder: all the same bytes
    result = kiln("challenge", a, str(tmp_path / "site-a"), "--wheelhouse", house, "--json",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["differ"] == [] and report["only"] == []
    assert len(report["agree"]) == 3
    assert all(len(x["sides"]) == 3 for x in report["agree"])
    # --project narrows the comparison to one project
    one = kiln("challenge", a, (tmp_path / "site-b").as_uri(), "--project", "common",
               "--json", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert [x["filename"] for x in json.loads(one.stdout)["agree"]] == [
        "common-1.0-py3-none-any.whl"]


def test_challenge_errors_are_one_line_with_a_hint(mirrors: tuple[str, str, Path],
                                                  tmp_path: Path) -> None:
    a, _, _ = mirrors
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"
    unreachable = kiln("challenge", a, closed, cwd=tmp_path)
    assert unreachable.returncode != 0
    lines = [x for x in unreachable.stderr.splitlines() if not x.startswith("→")]
    assert len(lines) == 2, unreachable.stderr  # progress lines aside: one error, one hint
    assert lines[0].startswith("error:") and closed in lines[0], unreachable.stderr
    assert lines[1].startswith("hint:")
    alone = kiln("challenge", a, cwd=tmp_path)
    assert alone.returncode == 2 and "compares two or more" in alone.stderr
    missing = kiln("challenge", a, str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode != 0 and "no such folder" in missing.stderr


def test_a_rebuilders_matrix_comes_from_the_mirror_alone(tmp_path: Path) -> None:
    """`kiln matrix --rebuild-index`: one job per binary wheel the index serves, with its
    URL, CPython and target; no recipes, no access to the mirror's repository."""
    import os

    house = tmp_path / "house"
    new = make_wheel(house, "demo", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    old = make_wheel(house, "demo", "1.0", tag="cp312-cp312-manylinux_2_17_aarch64")
    make_wheel(house, "pure", "1.0")
    os.utime(old, (1_600_000_000, 1_600_000_000))  # uploaded in 2020
    site = tmp_path / "site"
    assert kiln("index", house, "-o", site, cwd=tmp_path).returncode == 0
    result = kiln("matrix", "--rebuild-index", site.as_uri() + "/simple/", "--json",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["include"]
    assert [(j["wheel"], j["python"], j["target"], j["runner"]) for j in jobs] == [
        (new.name, "3.11", "linux-x86_64", "ubuntu-latest"),
        (old.name, "3.12", "linux-aarch64", "ubuntu-24.04-arm")]
    assert jobs[0]["wheel_url"].startswith("file://") and jobs[0]["wheel_url"].endswith(
        new.name)
    assert "not rebuilding pure-1.0-py3-none-any.whl" in result.stderr
    recent = kiln("matrix", "--rebuild-index", str(site), "--since-days", "30", "--json",
                  cwd=tmp_path)
    assert [j["wheel"] for j in json.loads(recent.stdout)["include"]] == [new.name]
    mixed = kiln("matrix", str(tmp_path / "x.toml"), "--rebuild-index", str(site),
                 cwd=tmp_path)
    assert mixed.returncode == 2 and "takes no recipes" in mixed.stderr

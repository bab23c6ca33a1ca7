"""`kiln publish` to a local S3-compatible server (moto in server mode) and to a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import pytest
from index_support import make_wheel

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.moto_server.threaded_moto_server")

from kiln.errors import PublishError, UnsupportedError  # noqa: E402
from kiln.index import build_index  # noqa: E402
from kiln.publish import FolderTarget, LocalFile, publish, snapshot  # noqa: E402
from kiln.publish_s3 import S3Target  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, request):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = "kiln-" + request.node.name.replace("_", "-")[:40].strip("-").lower()
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture
def index(tmp_path):
    wh, out = tmp_path / "wheelhouse", tmp_path / "public"
    for project in ("alpha", "beta", "gamma"):
        make_wheel(wh, project, "1.0")
        make_wheel(wh, project, "1.1", requires_python=">=3.9")
    build_index(wh, out)
    return wh, out


def objects(client, bucket: str, prefix: str = "") -> dict[str, dict]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj
    return found


def kiln_publish(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln", "publish", *args, "--endpoint-url",
                           endpoint, "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **CREDENTIALS})


def dangling_links(client, bucket: str, prefix: str) -> list[str]:
    """Links in the bucket's project pages to objects that are not in the bucket."""
    present = objects(client, bucket, prefix)
    missing = []
    for key in present:
        if key.endswith("/index.json") and key.count("/") == 3:  # mirror/simple/<p>/index.json
            page = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            for record in page["files"]:
                target = urljoin(key, record["url"])
                if target not in present:
                    missing.append(target)
    return missing


def test_publish_to_s3_with_types_and_only_changes_after(index, bucket, s3_endpoint):
    wh, out = index
    client, name = bucket
    first = kiln_publish(str(out), f"s3://{name}/mirror", endpoint=s3_endpoint)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    local = {f.key for f in snapshot(out)}
    assert set(report["uploaded"]) == local
    uploaded = report["uploaded"]
    assert uploaded.index("simple/alpha/index.json") > max(
        i for i, k in enumerate(uploaded) if k.startswith("files/"))
    assert uploaded[-2:] == ["simple/index.html", "simple/index.json"]  # the project list last
    stored = objects(client, name, "mirror/")
    assert set(stored) == {f"mirror/{k}" for k in local} | {"mirror/.kiln-publish.json"}

    def head(key: str) -> dict:
        return client.head_object(Bucket=name, Key=f"mirror/{key}")

    wheel = head("files/alpha/alpha-1.0-py3-none-any.whl")
    assert wheel["ContentType"] == "application/octet-stream"
    assert "immutable" in wheel["CacheControl"]
    assert head("simple/alpha/index.json")["ContentType"] == \
        "application/vnd.pypi.simple.v1+json"
    assert head("simple/alpha/index.html")["ContentType"] == "text/html; charset=utf-8"
    assert head("files/alpha/alpha-1.0-py3-none-any.whl.metadata")["ContentType"] \
        .startswith("text/plain")
    assert dangling_links(client, name, "mirror/") == []

    again = json.loads(kiln_publish(str(out), f"s3://{name}/mirror",
                                    endpoint=s3_endpoint).stdout)
    assert again["uploaded"] == [] and again["unchanged"] == len(local)

    # one new wheel, one removed: --dry-run says so and changes nothing
    make_wheel(wh, "beta", "2.0")
    (wh / "gamma-1.0-py3-none-any.whl").unlink()
    build_index(wh, out)
    before = objects(client, name)
    dry = json.loads(kiln_publish(str(out), f"s3://{name}/mirror", "--dry-run",
                                  endpoint=s3_endpoint).stdout)
    assert dry["dry_run"] is True
    assert sorted(dry["uploaded"]) == sorted([
        "files/beta/beta-2.0-py3-none-any.whl", "files/beta/beta-2.0-py3-none-any.whl.metadata",
        "simple/beta/index.html", "simple/beta/index.json",
        "simple/gamma/index.html", "simple/gamma/index.json"])
    assert dry["deleted"] == []  # gamma 1.0's file stays while older generations link to it
    assert {k: v["ETag"] for k, v in objects(client, name).items()} == \
        {k: v["ETag"] for k, v in before.items()}
    real = json.loads(kiln_publish(str(out), f"s3://{name}/mirror",
                                   endpoint=s3_endpoint).stdout)
    assert sorted(real["uploaded"]) == sorted(dry["uploaded"])
    page = json.loads(client.get_object(Bucket=name, Key="mirror/simple/gamma/index.json")
                      ["Body"].read())
    assert [f["filename"] for f in page["files"]] == ["gamma-1.1-py3-none-any.whl"]
    # two index runs later no generation links to gamma 1.0's file and it is deleted
    # locally; publish then removes it from the bucket, after the pages
    make_wheel(wh, "delta", "1.0")
    build_index(wh, out)
    make_wheel(wh, "delta", "2.0")
    build_index(wh, out)
    last = json.loads(kiln_publish(str(out), f"s3://{name}/mirror",
                                   endpoint=s3_endpoint).stdout)
    assert "files/gamma/gamma-1.0-py3-none-any.whl" in last["deleted"]
    assert dangling_links(client, name, "mirror/") == []


class FailingAfter(S3Target):
    """An S3 target whose connection drops after a number of uploads."""

    def __init__(self, inner: S3Target, uploads: int) -> None:
        super().__init__(inner.client, inner.bucket, inner.prefix, inner.name)
        self.left = uploads
        self.done: list[str] = []

    def upload(self, local: LocalFile) -> None:
        if self.left <= 0:
            raise ConnectionResetError("connection reset by peer")
        self.left -= 1
        super().upload(local)
        self.done.append(local.key)


def test_an_interrupted_publish_is_finished_by_the_next_run(index, bucket, s3_endpoint):
    _, out = index
    client, name = bucket
    target = S3Target.from_url(f"s3://{name}/mirror", endpoint_url=s3_endpoint)
    local = snapshot(out)
    files = [f for f in local if f.key.startswith("files/")]
    flaky = FailingAfter(target, uploads=len(files) - 3)  # dies before the last files
    with pytest.raises(PublishError, match="connection reset"):
        publish(out, flaky)
    stored = objects(client, name, "mirror/")
    assert stored and not any(k.startswith("mirror/simple/") for k in stored)  # no page yet
    assert "mirror/.kiln-publish.json" not in stored
    # a second interruption, this time among the pages: still no dangling link
    flaky = FailingAfter(target, uploads=5)
    with pytest.raises(PublishError):
        publish(out, flaky)
    assert sorted(k for k in flaky.done if k.startswith("files/")) == sorted(
        f.key for f in files if f"mirror/{f.key}" not in stored)  # only the missing ones
    assert any(k.startswith("simple/") for k in flaky.done)  # some pages are up...
    assert dangling_links(client, name, "mirror/") == []  # ...and link only to what is there
    # the re-run sends only what is missing, and then everything is there
    already = len(objects(client, name, "mirror/"))
    report = publish(out, target)
    assert len(report.uploads) == len(local) - already
    assert report.unchanged == already
    stored = objects(client, name, "mirror/")
    assert {k.removeprefix("mirror/") for k in stored} == {f.key for f in local} | {
        ".kiln-publish.json"}
    for item in local:
        assert stored[f"mirror/{item.key}"]["ETag"].strip('"') == item.md5


def test_publish_to_a_folder_and_resume(index, tmp_path):
    _, out = index
    dest = tmp_path / "www"
    target = FolderTarget(dest)

    class Flaky(FolderTarget):
        count = 0

        def upload(self, local: LocalFile) -> None:
            if self.count >= 4:
                raise OSError("disk full")
            self.count += 1
            super().upload(local)

    with pytest.raises(PublishError, match="disk full"):
        publish(out, Flaky(dest))
    report = publish(out, target)
    assert report.unchanged == 4  # copied before the failure, recognised by content
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == \
        {f.key for f in snapshot(out)} | {".kiln-publish.json"}
    assert not (dest / "simple").is_symlink()  # a plain copy any web server can serve
    assert publish(out, target).uploads == []


def test_missing_boto3_and_bad_bucket_are_clear_errors(index, monkeypatch, s3_endpoint):
    _, out = index
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(UnsupportedError) as caught:
        S3Target.from_url("s3://bucket/x")
    assert "kiln[s3]" in (caught.value.hint or "")
    monkeypatch.undo()
    result = kiln_publish(str(out), "s3://no-such-bucket/x", endpoint=s3_endpoint)
    assert result.returncode == PublishError.exit_code
    assert "error:" in result.stderr and "no-such-bucket" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_publish_refuses_what_is_not_an_index(tmp_path):
    result = subprocess.run([sys.executable, "-m", "kiln", "publish", str(tmp_path),
                             str(tmp_path / "dest")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "not an index" in result.stderr and "hint:" in result.stderr
    assert not Path(tmp_path / "dest").exists()

"""The S3 side of ``kiln publish``: any S3-compatible store through boto3 (``kiln[s3]``).

Credentials come from boto3's usual chain (environment, profile, instance role).
Each object is sent with its content type, a cache policy (files forever — their
paths never get other bytes — pages for a minute) and ``Content-MD5``, so the store
itself refuses a body that was damaged on the way.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlparse

from kiln.errors import PublishError, UnsupportedError
from kiln.publish import MANIFEST, MANIFEST_KIND, LocalFile, Remote


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise UnsupportedError("publishing to S3 needs boto3, which is not installed",
                               hint="pip install 'kiln[s3]'") from exc
    return boto3


class S3Target:
    def __init__(self, client: Any, bucket: str, prefix: str, name: str) -> None:
        self.client, self.bucket, self.prefix, self.name = client, bucket, prefix, name

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None,
                 region: str | None = None) -> S3Target:
        parsed = urlparse(url)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not bucket:
            raise PublishError(f"{url}: no bucket name", hint="use s3://BUCKET/PREFIX")
        client = _boto3().client("s3", endpoint_url=endpoint_url, region_name=region)
        target = cls(client, bucket, prefix + "/" if prefix else "", url)
        target._check_bucket()
        return target

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise PublishError(f"{self.name}: bucket {self.bucket}: {code or exc}",
                               hint="check the bucket name, the credentials and "
                                    "--endpoint-url") from exc
        except BotoCoreError as exc:
            raise PublishError(f"{self.name}: {exc}", hint="check --endpoint-url and your "
                                                           "credentials") from exc

    def _key(self, key: str) -> str:
        return self.prefix + key

    def listing(self) -> dict[str, Remote]:
        found: dict[str, Remote] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                etag = obj.get("ETag", "").strip('"')
                # a multipart ETag is not an MD5 of the object: then the manifest decides
                md5 = etag if len(etag) == 32 and "-" not in etag else None
                found[obj["Key"][len(self.prefix):]] = Remote(int(obj["Size"]), md5)
        return found

    def read_manifest(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(MANIFEST))["Body"]
            data = json.loads(body.read())
        except (ClientError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("kind") == MANIFEST_KIND else None

    def same_content(self, key: str, local: LocalFile) -> bool:
        return False  # without an MD5 from the store, sending it again is the safe answer

    def upload(self, local: LocalFile) -> None:
        md5 = base64.b64encode(bytes.fromhex(local.md5)).decode()
        with local.path.open("rb") as body:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(local.key), Body=body,
                ContentType=local.content_type, CacheControl=local.cache_control,
                ContentMD5=md5, ContentLength=local.size)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def write_manifest(self, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(MANIFEST), Body=body,
                               ContentType="application/json", CacheControl="no-store")

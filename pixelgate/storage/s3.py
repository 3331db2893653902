"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, ...), content-addressed like
the local store: `<prefix>/ab/cd/<sha256>`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pixelgate.storage.blobs import BlobNotFound, blob_key, check_key


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> S3BlobStore:
        """`s3://bucket/prefix`."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5),
        )
        return cls(client, parsed.netloc, parsed.path)

    def _name(self, key: str) -> str:
        check_key(key)
        path = f"{key[:2]}/{key[2:4]}/{key}"
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        if not self.exists(key):  # an object appears whole or not at all: no temp file needed
            self._client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)
        return key

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from None
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def check(self) -> None:
        """Raise if the bucket cannot be reached."""
        self._client.head_bucket(Bucket=self.bucket)

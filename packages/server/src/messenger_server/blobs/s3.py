"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, moto's server in the tests).

``s3://bucket/prefix`` keeps the blob ``<sha256>`` as the object ``prefix/<sha256>``.
boto3 is synchronous: each call runs in a worker thread, a download reads its body a
chunk per hop. The endpoint is the ``s3_endpoint`` setting (empty: AWS); the credentials
and the region come the way boto3 finds them (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``~/.aws``), never from a setting, so
they are never printed with the settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import READ_CHUNK

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Blobs"]

_MISSING = ("404", "NoSuchKey", "NotFound")


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


class S3Blobs:
    """Blobs as objects of one bucket, under a key prefix."""

    kind = "s3"

    def __init__(self, url: str, *, endpoint: str = "") -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"an S3 blob store needs a bucket: s3://bucket/prefix, got {url!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint = endpoint
        self._client: S3Client | None = None

    @property
    def client(self) -> S3Client:
        """The boto3 client (made by :meth:`start`)."""
        assert self._client is not None, "start() the blob store first"
        return self._client

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        return self.prefix + sha256

    async def start(self) -> None:
        """Make the client and check that the bucket answers."""
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)
        self._client = boto3.client("s3", endpoint_url=self.endpoint or None, config=config)
        await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)

    async def put(self, sha256: str, source: Path) -> None:
        """Upload ``source`` unless the object is there (one copy of identical bytes)."""
        if await self.size(sha256) is not None:
            return
        await asyncio.to_thread(self.client.upload_file, str(source), self.bucket, self.key(sha256))

    async def size(self, sha256: str) -> int | None:
        """The object's size, or None without it."""
        try:
            head = await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self.key(sha256)
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def read(self, sha256: str, first: int, length: int) -> AsyncIterator[bytes]:
        """A ranged GET, its body read a chunk per thread hop."""
        if length <= 0:
            return
        answer = await asyncio.to_thread(
            self.client.get_object,
            Bucket=self.bucket,
            Key=self.key(sha256),
            Range=f"bytes={first}-{first + length - 1}",
        )
        body = answer["Body"]
        try:
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(body.read, min(READ_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            body.close()

    async def delete(self, sha256: str) -> bool:
        """Delete the object (S3 does not say whether it was there: a HEAD first)."""
        if await self.size(sha256) is None:
            return False
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.key(sha256))
        return True

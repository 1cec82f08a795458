"""Where the bytes of uploaded files live: content-addressed blobs, one per sha256.

:class:`BlobStore` is what the file service needs of it. :class:`LocalBlobs` keeps each
blob at ``<dir>/ab/cd/<sha256>``: the default (``<data_dir>/files``), or a directory
every node of a cluster mounts. :class:`~.s3.S3Blobs` keeps them in a bucket of an
S3-compatible object store. :func:`open_blobs` builds the one a ``blob_store`` setting
names.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import aiofiles
import aiofiles.os

__all__ = ["READ_CHUNK", "BlobStore", "LocalBlobs", "open_blobs"]

READ_CHUNK = 256 * 1024
"""Bytes read per chunk of a download."""


class BlobStore(Protocol):
    """Content-addressed bytes: identical bytes are stored once, under their sha256."""

    @property
    def kind(self) -> str:
        """``local`` or ``s3`` (for logs and ``/readyz``)."""
        ...

    async def start(self) -> None:
        """Get ready (make the directory, check the bucket answers)."""
        ...

    async def put(self, sha256: str, source: Path) -> None:
        """Store the bytes of the file ``source`` (which it may move away) under ``sha256``,
        unless they are stored already."""
        ...

    async def size(self, sha256: str) -> int | None:
        """The stored size, or None when nothing is stored under ``sha256``."""
        ...

    def read(self, sha256: str, first: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes from byte ``first``, in chunks (fewer if the blob is shorter)."""
        ...

    async def delete(self, sha256: str) -> bool:
        """Remove the blob; False if it was not there."""
        ...


class LocalBlobs:
    """Blobs in a directory: ``<root>/ab/cd/<sha256>``."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the bytes with this sha256 are stored."""
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def start(self) -> None:
        """Make the directory."""
        await aiofiles.os.makedirs(self.root, exist_ok=True)

    async def put(self, sha256: str, source: Path) -> None:
        """Move ``source`` into place unless the same bytes are there (one copy)."""
        target = self.path(sha256)
        if await aiofiles.os.path.exists(target):
            return
        await aiofiles.os.makedirs(target.parent, exist_ok=True)
        await aiofiles.os.replace(source, target)

    async def size(self, sha256: str) -> int | None:
        """The file's size, or None without it."""
        try:
            return (await aiofiles.os.stat(self.path(sha256))).st_size
        except FileNotFoundError:
            return None

    async def read(self, sha256: str, first: int, length: int) -> AsyncIterator[bytes]:
        """The bytes from disk in chunks of :data:`READ_CHUNK`."""
        left = length
        async with aiofiles.open(self.path(sha256), "rb") as f:
            if first:
                await f.seek(first)
            while left > 0:
                chunk = await f.read(min(READ_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete(self, sha256: str) -> bool:
        """Remove the file and the directories it leaves empty."""
        path = self.path(sha256)
        try:
            await aiofiles.os.remove(path)
        except FileNotFoundError:
            return False
        for d in (path.parent, path.parent.parent):
            try:
                os.rmdir(d)  # only succeeds when empty
            except OSError:
                break
        return True


def open_blobs(setting: str, files_dir: Path, *, s3_endpoint: str = "") -> BlobStore:
    """The store a ``blob_store`` setting names: empty for ``files_dir``, a directory
    path, or ``s3://bucket/prefix``."""
    if setting.startswith("s3://"):
        from .s3 import S3Blobs  # boto3 is imported only when S3 is used

        return S3Blobs(setting, endpoint=s3_endpoint)
    return LocalBlobs(Path(setting).expanduser() if setting else files_dir)

"""Files: streamed uploads to content-addressed storage, attachments, access, collection.

An upload streams to ``<data_dir>/files/tmp`` with aiofiles while its sha256 is
computed, so memory stays flat whatever the size; a body over the limit is cut
and its temp file removed. The bytes then go to the blob store (:mod:`..blobs`: by
default ``files/ab/cd/<sha256>``, or a shared directory, or an S3 bucket; identical
bytes are stored once) and a row records the upload: its own id, the uploader, a
sanitised display name and the MIME type sniffed from the content.
A file is readable by the members of any chat with a message that carries it.
Uploads never attached, and files whose messages are all gone, are collected.

Several nodes may share one blob store, so storing bytes and deleting them are ordered
by rows of ``blob_holds`` written in units (which the store serializes over the
cluster): an upload holds its sha256 before it stores the bytes and lets go in the unit
that records the upload; a clean-up holds for deletion only bytes no upload stores and
none is storing, and an upload of bytes held for deletion waits until they are gone,
then stores them afresh. So a clean-up never deletes a blob another node is uploading
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import struct
import threading
import unicodedata
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import aiofiles
import aiofiles.os

from messenger_protocol import (
    ApiError,
    Attachment,
    ErrorCode,
    FileList,
    Message,
    format_size,
    format_too_large,
    limits,
)

from ..blobs import BlobStore, LocalBlobs
from ..clock import Clock
from ..loglimit import log_pass_failure
from ..storage import Store, Tx
from ..storage.files import FileRecord, file_queries
from .actor import Actor, require_member
from .messages import Draft

__all__ = [
    "COLLECT_INTERVAL_SECONDS",
    "UNATTACHED_GRACE_SECONDS",
    "FileService",
    "StoredFile",
    "image_size",
    "safe_name",
    "sniff_mime",
]

log = logging.getLogger(__name__)

UNATTACHED_GRACE_SECONDS = 24 * 3600
"""An upload no message carries is collected after this long (scheduled sends use it later)."""
COLLECT_INTERVAL_SECONDS = 600.0
"""How often unreferenced files are collected."""
WRITE_BATCH = 1024 * 1024
"""Bytes gathered before they are written and hashed (one thread hop per batch, not per
chunk)."""
UPLOAD_NICE = 5
"""How much lower the upload threads' CPU priority is than the loop's (nice steps)."""
SNIFF_BYTES = 64 * 1024
"""Leading bytes kept to sniff the type and read image dimensions."""
CHAT_FILES_MAX = 200
"""Most files ``chat_files`` lists."""
DELETING_HOLD_SECONDS = 60.0
"""A hold for deletion older than this is of a node that died deleting: uploads go on."""
UPLOADING_HOLD_SECONDS = 3600.0
"""A hold of an upload older than this is of a node that died uploading: clean-up goes on."""
HOLD_RETRY_SECONDS = 0.05
"""How often an upload of bytes being deleted elsewhere asks again whether they are gone."""

_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|]")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file a user may read: its metadata and the blob of its bytes."""

    attachment: Attachment
    sha256: str


# --- content inspection -----------------------------------------------------------


def safe_name(name: str, max_length: int = limits.MAX_FILE_NAME) -> str:
    """A display name with no path, control characters or leading dots, length-capped.

    ``../../etc/passwd`` becomes ``passwd``; an empty result becomes ``file``.
    """
    name = unicodedata.normalize("NFC", name).replace("\\", "/")
    name = name.rsplit("/", 1)[-1]
    name = "".join(
        "_" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") else ch for ch in name
    )
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: max_length - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:max_length].rstrip()
    return name or "file"


_OWN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/vnd.microsoft.portable-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"PK\x03\x04", "application/zip"),
    (b"#!", "text/x-script"),
)
"""Signatures puremagic names poorly or ambiguously (a bare zip looks like every office type)."""


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    sample = head[:SNIFF_BYTES]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still text
        if exc.start < len(sample) - 3:
            return False
        text = sample[: exc.start].decode("utf-8")
    return not any(ch < " " and ch not in "\t\n\r\f" for ch in text)


def sniff_mime(head: bytes) -> str:
    """The MIME type of content from its leading bytes (never from a name)."""
    for magic, mime in _OWN_SIGNATURES:
        if head.startswith(magic):
            if mime == "application/zip":
                break  # let puremagic tell a .docx from a zip if it is sure
            return mime
    import puremagic  # on the first upload: its table costs a server start ~0.1 s

    try:
        found = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        found = []
    named = [m for m in found if m.mime_type]
    if named:
        best = max(m.confidence for m in named)
        top = {m.mime_type for m in named if m.confidence == best}
        if len(top) == 1:
            return str(top.pop())
        if head.startswith(b"PK\x03\x04"):
            return "application/zip"
        return str(named[0].mime_type)
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if _looks_like_text(head):
        return "text/plain"
    return "application/octet-stream"


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF, JPEG, BMP or WebP from its leading bytes."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
            return w, h
        if head.startswith(b"BM") and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(head)
    except struct.error:
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return w, h
        pos += 2 + length
    return None


def _yield_to_the_loop() -> None:
    """Run this worker thread at a lower CPU priority than the event loop's thread: on a
    busy machine the loop gets a core first, and hashing waits (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPLOAD_NICE)


class _Spool:
    """An upload's temp file and hash, each call made on a worker thread: one thread hop
    per batch of chunks writes and hashes them (both release the GIL), none per chunk,
    and the chunks are never joined."""

    __slots__ = ("digest", "file", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.file: BinaryIO | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("wb")

    def add(self, parts: list[bytes]) -> None:
        assert self.file is not None
        self.file.writelines(parts)  # big pieces go past the file's buffer, uncopied
        for part in parts:
            self.digest.update(part)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def inspect(self, head: bytes) -> tuple[str, str, tuple[int, int] | None]:
        """The sha256, the sniffed type and an image's dimensions: on the worker thread,
        for the type takes puremagic milliseconds of Python that held the loop."""
        mime = sniff_mime(head)
        dims = image_size(head) if mime.startswith("image/") else None
        return self.digest.hexdigest(), mime, dims


def _mime_allowed(mime: str, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return True
    major = mime.split("/", 1)[0]
    return any(a == mime or a in (f"{major}/*", "*/*", "*") for a in allowed)


# --- the service --------------------------------------------------------------------


class FileService:
    """Uploads, attachments, downloads and collection of files under ``<data_dir>/files``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        root: Path,
        *,
        max_bytes: int = limits.MAX_FILE_BYTES,
        user_quota: int = limits.USER_QUOTA_BYTES,
        allowed_mime: tuple[str, ...] = (),
        unattached_grace: float = UNATTACHED_GRACE_SECONDS,
        blobs: BlobStore | None = None,
        delete_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.root = root
        self.tmp = root / "tmp"
        self.blobs: BlobStore = blobs if blobs is not None else LocalBlobs(root)
        """Where the bytes are (``root`` itself unless another store is given)."""
        self.max_bytes = max_bytes
        self.user_quota = user_quota
        """Bytes one user may store; 0 means no quota."""
        self.allowed_mime = allowed_mime
        self.unattached_grace = unattached_grace
        self._collector: asyncio.Task[None] | None = None
        self._spooler = ThreadPoolExecutor(
            max_workers=max(1, min(4, (os.cpu_count() or 1) - 1)),
            thread_name_prefix="upload",
            initializer=_yield_to_the_loop,
        )
        """Writes and hashes uploads (threads made on demand)."""
        self.delete_delay = delete_delay
        """Seconds a clean-up waits between holding blobs for deletion and deleting them
        (a test fault: 0)."""

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, *, collect_every: float | None = COLLECT_INTERVAL_SECONDS) -> None:
        """Create the directories, drop temp files a crash left, start periodic collection."""
        await self.blobs.start()
        await aiofiles.os.makedirs(self.tmp, exist_ok=True)
        for entry in await aiofiles.os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                await aiofiles.os.remove(entry.path)
        if collect_every is not None:
            self._collector = asyncio.create_task(self._collect_forever(collect_every))

    async def close(self) -> None:
        """Stop periodic collection (uploads under way finish their writes)."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
            self._collector = None
        self._spooler.shutdown(wait=False)

    async def _collect_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.collect()
            except Exception as exc:
                log_pass_failure(log, "file collection failed", exc, self.store.unavailable)

    # --- upload ---------------------------------------------------------------------

    async def upload(
        self, actor: Actor, name: str, body: AsyncIterator[bytes], length: int | None
    ) -> Attachment:
        """Store one upload streamed from ``body`` (``length`` = its Content-Length, if any).

        ``too_large`` when over the size limit (before reading, when the length says
        so), ``quota_exceeded`` over the user's quota, ``unsupported_type`` when the
        sniffed type is not allowed. Nothing is kept when it fails.
        """
        if length == 0:
            raise _empty_file()
        if length is not None and length > self.max_bytes:
            raise self._too_large(length)
        if length is not None and self.user_quota:
            used = await self.store.read(lambda tx: file_queries(tx).used_bytes(actor.user_id))
            self._check_quota(used, length)
        tmp = self.tmp / f"{secrets.token_hex(12)}.part"
        head = bytearray()
        size = 0
        loop = asyncio.get_running_loop()
        spool = _Spool(tmp)
        try:
            await loop.run_in_executor(self._spooler, spool.open)
            try:
                batch: list[bytes] = []
                batched = 0
                async for chunk in body:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large(None)
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= WRITE_BATCH:
                        await loop.run_in_executor(self._spooler, spool.add, batch)
                        batch, batched = [], 0
                if batch:
                    await loop.run_in_executor(self._spooler, spool.add, batch)
            finally:
                await loop.run_in_executor(self._spooler, spool.close)
            if length is not None and size != length:
                raise ApiError(ErrorCode.INVALID, "the body is shorter than its Content-Length")
            if size == 0:
                raise _empty_file()  # a chunked body that carried nothing
            sha256, mime, dims = await loop.run_in_executor(
                self._spooler, spool.inspect, bytes(head)
            )
            if not _mime_allowed(mime, self.allowed_mime):
                raise ApiError(
                    ErrorCode.UNSUPPORTED_TYPE, f"files of type {mime} are not accepted here"
                )
            record = FileRecord(
                id=secrets.token_urlsafe(16),
                owner_id=actor.user_id,
                sha256=sha256,
                size=size,
                mime=mime,
                name=safe_name(name),
                width=dims[0] if dims else None,
                height=dims[1] if dims else None,
                created_at=self.clock.now(),
            )
            hold = await self._hold_for_upload(sha256)

            def unit(tx: Tx) -> None:
                queries = file_queries(tx)
                if self.user_quota and not queries.owns_sha256(actor.user_id, sha256):
                    self._check_quota(queries.used_bytes(actor.user_id), size)
                queries.insert_file(record)
                queries.release_hold(hold)  # recorded: the bytes are in use now

            try:
                await self.blobs.put(sha256, tmp)
                await self.store.write(unit)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.store.write(lambda tx: file_queries(tx).release_hold(hold))
                    await self._delete_unused([sha256])
                raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.remove(tmp)
        log.info("%s uploaded %s (%d bytes, %s)", actor.login, record.id, size, mime)
        return record.attachment()

    async def _hold_for_upload(self, sha256: str) -> str:
        """Hold the bytes for this upload (see the module's docstring); wait while another
        node deletes them (at most a stale hold's life)."""
        hold = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELETING_HOLD_SECONDS
        while True:
            held = await self.store.write(partial(self._hold_unit, sha256, hold, self.clock.now()))
            if held:
                return hold
            if loop.time() >= deadline:
                raise ApiError(ErrorCode.UNAVAILABLE, "the file store is busy; try again")
            await asyncio.sleep(HOLD_RETRY_SECONDS)

    def _hold_unit(self, sha256: str, hold: str, now: float, tx: Tx) -> bool:
        return file_queries(tx).hold_for_upload(sha256, hold, now, now - DELETING_HOLD_SECONDS)

    async def _delete_unused(self, sha256s: list[str]) -> int:
        """Delete the blobs of those of ``sha256s`` no upload stores or is storing; how
        many went."""
        if not sha256s:
            return 0
        hold = secrets.token_hex(8)
        now = self.clock.now()
        doomed = await self.store.write(
            lambda tx: file_queries(tx).hold_for_deletion(
                sha256s, hold, now, now - UPLOADING_HOLD_SECONDS
            )
        )
        removed = 0
        try:
            if doomed and self.delete_delay:
                log.warning("test fault: deleting %d blob(s) in %.1f s", len(doomed),
                            self.delete_delay)  # fmt: skip
                await asyncio.sleep(self.delete_delay)
            for sha256 in doomed:
                if await self.blobs.delete(sha256):
                    removed += 1
        finally:
            if doomed:
                await self.store.write(lambda tx: file_queries(tx).release_hold(hold))
        return removed

    def _too_large(self, size: int | None) -> ApiError:
        """``size`` is None when a chunked body was cut at the limit."""
        return ApiError(
            ErrorCode.TOO_LARGE, format_too_large(size, self.max_bytes), limit=self.max_bytes
        )

    def _check_quota(self, used: int, adding: int) -> None:
        if self.user_quota and used + adding > self.user_quota:
            raise ApiError(
                ErrorCode.QUOTA_EXCEEDED,
                f"your files would take {format_size(used + adding)},"
                f" the quota is {format_size(self.user_quota)}",
                limit=self.user_quota,
            )

    # --- attachments --------------------------------------------------------------

    def attach(self, tx: Tx, draft: Draft, message: Message) -> list[Attachment]:
        """Link the draft's uploads to the stored message (they must be the sender's)."""
        ids = draft.body.attachments
        if len(set(ids)) != len(ids):
            raise ApiError(ErrorCode.INVALID, "the same file is attached twice")
        queries = file_queries(tx)
        found: list[Attachment] = []
        for file_id in ids:
            record = queries.file(file_id)
            if record is None or record.owner_id != draft.actor.user_id:
                raise ApiError(ErrorCode.FORBIDDEN, f"{file_id!r} is not a file you uploaded")
            found.append(record.attachment())
        queries.link(message.id, message.chat_id, list(ids))
        return found

    def load(self, tx: Tx, message_ids: list[int]) -> dict[int, list[Attachment]]:
        """The attachments of messages."""
        return file_queries(tx).attachments(message_ids)

    def detach(self, tx: Tx, message_id: int) -> list[str]:
        """In the unit that deletes a message: take its files off it; their ids (for
        :meth:`release` after the commit)."""
        return file_queries(tx).unlink(message_id)

    async def release(self, file_ids: list[str]) -> int:
        """Collect those of these uploads that no message carries any more, at once (no
        grace: they were attached before); how many stored files went."""
        if not file_ids:
            return 0
        gone = await self.store.write(lambda tx: file_queries(tx).drop_unlinked(file_ids))
        removed = await self._delete_unused(gone)
        if gone:
            log.info(
                "released %d uploads of a deleted message, %d stored files", len(gone), removed
            )
        return removed

    # --- reading --------------------------------------------------------------------

    async def open(self, actor: Actor, file_id: str) -> StoredFile:
        """A file the user may read: one carried by a message of a chat they are in.

        The uploader may always read their own upload. An unknown id and a
        forbidden one get the same ``forbidden`` answer, so ids cannot be probed.
        """
        refused = ApiError(ErrorCode.FORBIDDEN, "no such file, or not in a chat of yours")
        if not _FILE_ID.match(file_id):
            raise refused

        def unit(tx: Tx) -> FileRecord:
            queries = file_queries(tx)
            record = queries.file(file_id)
            if record is None:
                raise refused
            if record.owner_id != actor.user_id and not queries.readable(file_id, actor.user_id):
                raise refused
            return record

        record = await self.store.read(unit)
        return StoredFile(record.attachment(), record.sha256)

    async def chat_files(self, actor: Actor, chat_id: int) -> FileList:
        """Files posted in a chat the user is in, newest first."""

        def unit(tx: Tx) -> FileList:
            require_member(tx, chat_id, actor.user_id)
            return FileList(files=file_queries(tx).chat_files(chat_id, CHAT_FILES_MAX))

        return await self.store.read(unit)

    # --- collection -------------------------------------------------------------------

    async def collect(self) -> int:
        """Delete uploads nothing refers to (and their bytes); how many blobs went."""
        before = self.clock.now() - self.unattached_grace
        gone = await self.store.write(partial(_collect, before=before))
        removed = await self._delete_unused(gone)
        if gone:
            log.info("collected %d uploads, %d stored files", len(gone), removed)
        return removed


def _collect(tx: Tx, *, before: float) -> list[str]:
    """The clean-up pass's unit: one node at a time collects (the others skip)."""
    if not tx.try_job_lock("files"):
        return []
    return file_queries(tx).collect(before)


def _empty_file() -> ApiError:
    return ApiError(ErrorCode.INVALID, "the file is empty (0 bytes): nothing to send")

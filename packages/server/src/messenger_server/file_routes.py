"""The file endpoints over HTTP: raw-body upload, download with Range/ETag, chat files.

The service (:mod:`.services.files`) knows nothing of HTTP; this module turns
its answers into responses: a streamed body read from the blob store in chunks, a safe
``Content-Disposition``, the sniffed type with ``nosniff``, single byte ranges.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from messenger_protocol import ApiError, ErrorCode, encode

from .blobs import READ_CHUNK
from .http import Response, ResponseStream, StreamResponse
from .services.files import FileService, StoredFile

if TYPE_CHECKING:
    from .app import Call

__all__ = ["DOWNLOAD_CSP", "READ_CHUNK", "content_disposition", "file_handlers", "parse_range"]

log = logging.getLogger(__name__)

DOWNLOAD_CSP = "sandbox; default-src 'none'"
"""Content-Security-Policy of every download: active content (text/html, image/svg+xml)
opened in a browser is sandboxed and may load nothing."""
_HIGH_WATER = 1024 * 1024
"""Transport buffer above which a download waits for the peer (memory per download)."""
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The ``(first, last)`` byte of a single ``Range``; None to send everything.

    False when the range cannot be satisfied (416). Several ranges or a header we
    do not understand are ignored, which RFC 9110 allows.
    """
    if header is None or "," in header:
        return None
    found = _RANGE.match(header)
    if found is None:
        return None
    first_text, last_text = found.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if first >= size:
        return False
    last = int(last_text) if last_text else size - 1
    if last < first:
        return None
    return first, min(last, size - 1)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 one (RFC 6266)."""
    ascii_name = "".join(
        ch if " " <= ch < "\x7f" and ch not in '"\\%' else "_" for ch in name
    ).strip()
    return (
        f"attachment; filename=\"{ascii_name or 'file'}\"; filename*=UTF-8''{quote(name, safe='')}"
    )


def _etag(stored: StoredFile) -> str:
    return f'"{stored.attachment.sha256}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def file_handlers(
    files: FileService, max_bytes: int
) -> dict[str, Callable[[Call], Awaitable[object]]]:
    """The handlers of ``upload``, ``download`` and ``chat_files`` for :class:`~.app.App`."""

    async def upload(call: Call) -> object:
        body = call.request.body
        name = call.query.name if call.query is not None else ""
        # one byte over the limit reaches the service, which says how big the limit is
        chunks = body.chunks(max_bytes + 1)
        return await files.upload(call.actor, name, chunks, body.length)

    async def download(call: Call) -> object:
        stored = await files.open(call.actor, call.params["file_id"])
        if await files.blobs.size(stored.sha256) is None:
            raise ApiError(ErrorCode.GONE, "the file's bytes are gone")
        size = stored.attachment.size
        etag = _etag(stored)
        headers = [
            ("ETag", etag),
            ("Accept-Ranges", "bytes"),
            ("X-Content-Type-Options", "nosniff"),
            # a browser that renders it anyway (HTML, SVG) runs no script and loads nothing
            ("Content-Security-Policy", DOWNLOAD_CSP),
            ("Content-Disposition", content_disposition(stored.attachment.name)),
            ("Cache-Control", "private, max-age=31536000, immutable"),
        ]
        request = call.request
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status=304, headers=headers)
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            range_header = None  # the client's partial copy is of other bytes
        wanted = parse_range(range_header, size)
        if wanted is False:
            error = ApiError(
                ErrorCode.RANGE_NOT_SATISFIABLE, f"the file has {size} bytes", limit=size
            )
            return Response(
                status=416,
                body=encode(error.body()),
                headers=[*headers, ("Content-Range", f"bytes */{size}")],
            )
        status = 200
        first, last = 0, size - 1
        if isinstance(wanted, tuple):
            first, last = wanted
            status = 206
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        length = last - first + 1

        async def produce(stream: ResponseStream) -> None:
            left = length
            async for chunk in files.blobs.read(stored.sha256, first, length):
                left -= len(chunk)
                stream.write(chunk)
                if stream.buffer_size() > _HIGH_WATER:
                    await stream.drain()
            if left > 0:
                log.error("stored file %s is shorter than recorded", stored.sha256)
                stream.abort()

        return StreamResponse(
            produce,
            status=status,
            content_type=stored.attachment.mime,
            headers=headers,
            content_length=length,
        )

    async def chat_files(call: Call) -> object:
        return await files.chat_files(call.actor, call.params["chat_id"])

    return {"upload": upload, "download": download, "chat_files": chat_files}

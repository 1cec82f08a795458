"""Server-Sent Events framing, sans-I/O: frames out, a parser in.

The server encodes an event once into a complete frame and writes the same
bytes to every recipient. The client feeds received bytes to :class:`SseParser`
and gets whole events back, whatever the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import ErrorCode, ProtocolViolation

MAX_SSE_LINE = 1024 * 1024
"""Longest SSE line the parser accepts (a frame bigger than this is a broken stream)."""


def sse_frame(data: bytes, event: str, event_id: int | None = None) -> bytes:
    """One SSE frame; ``data`` must be single-line JSON."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def sse_comment(text: str = "") -> bytes:
    """A comment line: a heartbeat that keeps proxies and clients from timing out."""
    return b": " + text.encode() + b"\n\n"


def sse_retry(milliseconds: int) -> bytes:
    """Tell the client how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One parsed SSE event."""

    data: str
    event: str = "message"
    id: str | None = None


class SseParser:
    """Incremental parser of an event stream (WHATWG rules, ``retry`` and comments kept out)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Add received bytes; return the events they complete."""
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_SSE_LINE:
                    raise ProtocolViolation("event stream line too long", ErrorCode.TOO_LARGE)
                return events
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            line = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                text = line.decode()
            except UnicodeDecodeError:
                raise ProtocolViolation("event stream is not UTF-8") from None
            event = self._line(text)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent("\n".join(self._data), self._event or "message", self._id)
            if self._id is not None:
                self.last_event_id = self._id
            self._data, self._event, self._id = [], "", None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

"""The live event stream: Server-Sent Events that survive drops and server restarts.

:class:`EventStream` is an async iterator over ``GET /api/v1/events`` that yields the
protocol's :data:`~messenger_protocol.Event` models, and :class:`ConnectionState`
items whenever the connection changes, so a UI can show whether it is live::

    async for item in client.events(session.last_event_id):
        match item:
            case ConnectionState(state="reconnecting", in_seconds=s): ...
            case MessageCreated(message=m): ...

After any drop it reconnects by itself (exponential backoff with jitter, capped),
sending ``Last-Event-ID`` of the last event that had an id, so the server replays
exactly what was missed. Events with an id not above the last one seen are dropped
as well, so a misbehaving replay cannot show a message twice. Only an error answer
that retrying cannot fix (401 after a logout, any other 4xx) ends the stream: it is
raised from the iterator as :class:`~messenger_protocol.ApiError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

import msgspec

from messenger_protocol import (
    ErrorCode,
    Event,
    ProtocolViolation,
    Reset,
    SseEvent,
    SseParser,
    decode_event,
    limits,
)

from .api import Client, error_from_response

__all__ = ["ConnectionState", "EventStream", "StreamItem"]

log = logging.getLogger(__name__)

READ_TIMEOUT = 3 * limits.SSE_HEARTBEAT_SECONDS
"""A stream silent for this long (no event, no heartbeat) is considered dead."""

StateName = Literal["connecting", "connected", "reconnecting", "offline"]


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """The state of the event stream's connection.

    * ``connecting`` -- opening the stream (``attempt`` 0 at first, then the retry number)
    * ``connected`` -- live; events flow
    * ``offline`` -- the connection dropped or could not be made (``error`` says why)
    * ``reconnecting`` -- next attempt ``attempt`` starts in ``in_seconds``
    """

    state: StateName
    in_seconds: float = 0.0
    attempt: int = 0
    error: str = ""


StreamItem = Event | ConnectionState
"""What an :class:`EventStream` yields."""


class EventStream:
    """Async iterator of live events and connection states; see the module docstring."""

    def __init__(
        self,
        client: Client,
        last_event_id: int | None = None,
        *,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.last_event_id = last_event_id
        """Id of the last event received (the resume point); None before any."""
        self._client = client
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._read_timeout = read_timeout
        self._gen = self._run()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamItem:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and close its connection."""
        await self._gen.aclose()

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect ``attempt`` (1, 2, ...): exponential, jittered."""
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** min(attempt - 1, 30))
        # Full jitter in the upper half: clients dropped together do not return together.
        jittered: float = ceiling * random.uniform(0.5, 1.0)
        return jittered

    def _accept(self, sse: SseEvent) -> Event | None:
        """The event of a frame, or None if it is a duplicate or cannot be read."""
        if sse.id is not None and sse.id.isdigit():
            event_id = int(sse.id)
            if self.last_event_id is not None and event_id <= self.last_event_id:
                log.debug("dropping duplicate event %d", event_id)
                return None
            self.last_event_id = event_id
        if not sse.data:
            return None
        try:
            event = decode_event(sse.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # A newer server may send event types this client does not know yet.
            log.warning("skipping unreadable %r event: %s", sse.event, exc)
            return None
        if isinstance(event, Reset) and event.last_event_id > (self.last_event_id or 0):
            self.last_event_id = event.last_event_id
        return event

    async def _run(self) -> AsyncGenerator[StreamItem, None]:
        import httpx  # at the first connect, not at the client's start (see api.py)

        attempt = 0
        client = self._client
        while True:
            yield ConnectionState("connecting", attempt=attempt)
            error = "stream closed by the server"
            retry_after: float | None = None
            connected = False
            try:
                await client.ready()
                request = client._stream_request(self.last_event_id, self._read_timeout)
                async with request as response:
                    if response.status_code >= 300:
                        failure = error_from_response(response.status_code, await response.aread())
                        if response.status_code < 500 and failure.code != ErrorCode.RATE_LIMITED:
                            raise failure
                        error, retry_after = str(failure), failure.retry_after
                    else:
                        attempt = 0
                        state = ConnectionState("connected")
                        connected = True
                        client._stream_item(state, +1)
                        yield state
                        parser = SseParser()
                        async for chunk in response.aiter_raw():
                            for sse in parser.feed(chunk):
                                event = self._accept(sse)
                                if event is not None:
                                    client._stream_item(event)
                                    yield event
            except httpx.RequestError as exc:
                error = f"connection lost: {exc!r}"
            except ProtocolViolation as exc:
                error = f"broken event stream: {exc}"
            finally:
                if connected:  # closed, dropped or failed: the watchers stop trusting it
                    client._stream_item(ConnectionState("offline", error="stream ended"), -1)
            attempt += 1
            delay = self.backoff(attempt)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self._backoff_cap))
            log.info("event stream offline (%s); reconnecting in %.2f s", error, delay)
            yield ConnectionState("offline", attempt=attempt, error=error)
            yield ConnectionState("reconnecting", in_seconds=delay, attempt=attempt)
            await asyncio.sleep(delay)

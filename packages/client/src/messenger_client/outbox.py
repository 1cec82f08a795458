"""The outbox: what the user sent, text and files, edits and reactions, in order, until
the server has it (no UI toolkit). A file message is queued once its file is uploaded.

Each send is a :class:`~messenger_client.cache.PendingSend` with its own ``client_id``.
The outbox sends them one at a time; while the server cannot be reached it keeps the
send, says so, and tries again with the same ``client_id`` (the server keeps one message
per ``client_id``, so a retry after a lost answer never posts twice) when the connection
is back or after a growing pause. A refusal (the server said no) ends that send. What the
user sees of all this is the sink's business: the TUI's store shows a send as pending,
failed-and-retrying, refused, or as the server's message. An edit or a reaction (its
``act``) is retried the same way (both are idempotent: the same text again, a reaction
added twice is one) and answered through :meth:`OutboxSink.annotated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from messenger_protocol import ApiError, ErrorCode, Message, ReactionList

from .api import Client, ServerUnavailable
from .cache import PendingSend

__all__ = ["RETRY_FIRST_SECONDS", "RETRY_MAX_SECONDS", "Outbox", "OutboxSink"]

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5
"""First wait before a failed send is tried again (it doubles each time)."""
RETRY_MAX_SECONDS = 5.0
"""Longest wait between retries of a failed send."""


class OutboxSink(Protocol):
    """Where the state of each send goes (the TUI's store; the cache keeps the sends)."""

    def send_failed(self, pending: PendingSend, retrying: bool) -> None:
        """A send failed: kept and tried again (``retrying``), or dropped for good."""

    def retrying(self, pending: PendingSend) -> None:
        """A failed send is being tried again."""

    def sent(self, pending: PendingSend, message: Message) -> None:
        """The server has the message."""

    def annotated(self, pending: PendingSend, result: Message | ReactionList) -> None:
        """The server took an edit (``result``: the message as edited) or a reaction
        change (the message's reactions now)."""


class Outbox:
    """Sends queued messages in order through ``client``; see the module docstring.

    ``on_refused`` hears of a send the server refused (it is dropped);
    ``on_session_expired`` of a session that ended (the send is kept for after the next
    login, and the queue is emptied: the sink's store still holds those sends);
    ``on_sent`` of each delivered message; ``encrypt``, when given, sends a message
    end to end encrypted if its chat is (it answers None for a chat in the clear);
    ``edit``, when given, edits a message (an encrypted one's new text goes as
    ciphertext; it answers None to leave it to ``client.edit``).
    """

    def __init__(
        self,
        client: Client,
        sink: OutboxSink,
        *,
        on_refused: Callable[[PendingSend, ApiError], None],
        on_session_expired: Callable[[ApiError], None],
        on_sent: Callable[[PendingSend, Message], None] | None = None,
        encrypt: Callable[[PendingSend], Awaitable[Message | None]] | None = None,
        edit: Callable[[int, str], Awaitable[Message | None]] | None = None,
    ) -> None:
        self.client = client
        self.sink = sink
        self.online = asyncio.Event()
        """Set while the event stream is connected: a waiting retry goes at once."""
        self._on_refused = on_refused
        self._on_session_expired = on_session_expired
        self._on_sent = on_sent
        self._encrypt = encrypt
        self._edit = edit
        self._queue: asyncio.Queue[PendingSend] = asyncio.Queue()
        self._closed = False

    def put(self, pending: PendingSend) -> None:
        """Queue a send (behind what is queued already)."""
        self._queue.put_nowait(pending)

    def put_all(self, pendings: Iterable[PendingSend]) -> None:
        """Queue the sends an earlier run left (in their order)."""
        for pending in pendings:
            self.put(pending)

    def close(self) -> None:
        """Stop sending (the session is over); queued sends stay with the sink."""
        self._closed = True
        self._queue = asyncio.Queue()

    async def run(self) -> None:
        """Send queued messages in order until cancelled or closed."""
        while not self._closed:
            pending = await self._queue.get()
            await self.deliver(pending)

    async def deliver(self, pending: PendingSend) -> None:
        """Send one message; retried while the server cannot be reached."""
        delay = RETRY_FIRST_SECONDS
        while not self._closed:
            try:
                answer = await self._attempt(pending)
            except ServerUnavailable as exc:
                log.info("send %s waits: %s", pending.client_id, exc)
                self.sink.send_failed(pending, retrying=True)
                # Wake up when the stream is back, or after a growing pause.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.online.wait(), timeout=delay)
                if self.online.is_set():
                    delay = RETRY_FIRST_SECONDS
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                self.sink.retrying(pending)
                continue
            except ApiError as exc:
                if exc.code == ErrorCode.UNAVAILABLE:
                    # answered, not stored (the server's database is away): the same
                    # send again later, after a growing pause (the stream may stay up)
                    log.info("send %s waits: %s", pending.client_id, exc)
                    self.sink.send_failed(pending, retrying=True)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    self.sink.retrying(pending)
                    continue
                if exc.code == ErrorCode.SESSION_EXPIRED:
                    # kept in the cache's outbox: it goes out after the next login
                    self.sink.send_failed(pending, retrying=True)
                    self.close()
                    self._on_session_expired(exc)
                    return
                self.sink.send_failed(pending, retrying=False)
                self._on_refused(pending, exc)
                return
            if pending.act != "send":
                self.sink.annotated(pending, answer)
                return
            assert isinstance(answer, Message)
            self.sink.sent(pending, answer)
            if self._on_sent is not None:
                self._on_sent(pending, answer)
            return

    async def _attempt(self, pending: PendingSend) -> Message | ReactionList:
        """Ask the server once for what ``pending`` wants."""
        if pending.act != "send":
            assert pending.target is not None, pending
            if pending.act == "edit":
                edited = None
                if self._edit is not None:
                    edited = await self._edit(pending.target, pending.text)
                return edited or await self.client.edit(pending.target, pending.text)
            if pending.act == "react":
                return await self.client.react(pending.target, pending.text)
            return await self.client.unreact(pending.target, pending.text)
        sealed = await self._encrypt(pending) if self._encrypt is not None else None
        if sealed is not None:
            return sealed
        if pending.thread_root is not None:
            return await self.client.comment(
                pending.thread_root, pending.text, client_id=pending.client_id
            )
        return await self.client.send(
            pending.chat_id,
            pending.text,
            client_id=pending.client_id,
            attachments=[a.id for a in pending.attachments],
            reply_to=pending.reply_to,
        )

"""Disappearing messages (F8): a message disappears for each recipient ``message_ttl``
seconds after it was delivered to that recipient, and is deleted from the server once
it has disappeared for everyone (or ``message_max_age`` after it was posted).

Bookkeeping, cheap in the common case where everybody is online:

* ``expiring`` has one row per message: when it was posted and ``created_at + ttl``.
* ``deliveries`` has a row only for a recipient who was *offline* when it was posted
  (``delivered_at`` NULL), until they fetch it (history, unread, thread, or an event
  stream that resumes with ``Last-Event-ID``); then ``delivered_at`` is that moment.
* Anyone without a row (the author, everyone online at the time) got it when it was
  posted.

A loop tells each recipient (:class:`MessageDeleted`, to that user only) when the
message has expired for them, and deletes the message (with its comments; the file
service collects their attachments) once no recipient still has it; the whole chat is
then told once more. Reads filter out messages that expired for the reader.
``message_ttl = 0`` turns all of this off. docs/moderation.md has the exact rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from messenger_protocol import (
    GENERAL_CHAT_ID,
    Chat,
    Message,
    MessageDeleted,
    Quote,
    Unread,
    UnreadChat,
)

from ..clock import Clock, wait_until
from ..config import Settings
from ..storage import Store, Tx
from ..storage.retention import RetentionQueries, retention_queries
from .actor import forbidden
from .events import EventService

__all__ = ["BATCH", "Presence", "RetentionService", "Visibility"]

log = logging.getLogger(__name__)

BATCH = 500
"""Rows handled per pass of each kind (the loop goes again at once when it hit this)."""


class Presence(Protocol):
    """Who is online now (the hub knows)."""

    def online_user_ids(self) -> set[int]:
        """Users with at least one live event stream."""
        ...


class Visibility:
    """The per-reader rule of disappearing messages: who got a message when, and what a
    reader may still see. Every read of messages and every post goes through it, on
    every path (HTTP, the scheduler, anything later)."""

    def __init__(self, store: Store, presence: Presence, clock: Clock, ttl: float) -> None:
        self.store = store
        self.presence = presence
        self.clock = clock
        self.ttl = ttl

    @property
    def enabled(self) -> bool:
        """Messages disappear (``message_ttl > 0``)."""
        return self.ttl > 0

    # --- delivery bookkeeping ----------------------------------------------------

    def posted(self, tx: Tx, message: Message) -> None:
        """In the unit that stores ``message``: note the recipients who did not get it
        (everyone offline now but the author)."""
        if not self.enabled:
            return
        online = self.presence.online_user_ids()
        queries = retention_queries(tx)
        expires_at = message.created_at + self.ttl
        if not queries.add_expiring(message.id, message.chat_id, message.created_at, expires_at):
            return  # a retried send: recorded the first time
        if message.chat_id == GENERAL_CHAT_ID and tx.member_count(GENERAL_CHAT_ID) <= len(online):
            return  # everybody is online (a busy general chat): nobody to wait for
        author = tx.message_author_id(message.id)
        waiting = [u for u in tx.member_ids(message.chat_id) if u not in online and u != author]
        queries.add_waiting(message.id, waiting)

    def _split(
        self, queries: RetentionQueries, user_id: int, messages: list[Message], now: float
    ) -> tuple[list[Message], list[int]]:
        """The messages still alive for the user, and the ids delivered to them just now."""
        if not messages:
            return [], []
        rows = queries.deliveries(user_id, [m.id for m in messages])
        alive: list[Message] = []
        fresh: list[int] = []
        for m in messages:
            row = rows.get(m.id)
            if row is None:
                expires = m.created_at + self.ttl
            elif row[1]:
                continue
            elif row[0] is None:
                expires = now + self.ttl
                fresh.append(m.id)
            else:
                expires = row[0] + self.ttl
            if expires > now:
                alive.append(msgspec.structs.replace(m, expires_at=expires))
        return alive, fresh

    def audience(self, tx: Tx, message: Message) -> list[int] | None:
        """Inside a unit: the members who may still see ``message`` (news of it goes to
        them alone), or None when every member may (the whole chat: one event), as when
        messages do not disappear. Two queries, whatever the size of the chat."""
        if not self.enabled:
            return None
        now = self.clock.now()
        rows = retention_queries(tx).recipients(message.id)
        base_alive = message.created_at + self.ttl > now
        members = tx.member_ids(message.chat_id)
        alive: list[int] = []
        for user_id in members:
            row = rows.get(user_id)
            if row is None:
                ok = base_alive
            elif row[1]:
                ok = False
            else:
                ok = row[0] is None or row[0] + self.ttl > now
            if ok:
                alive.append(user_id)
        return None if len(alive) == len(members) else alive

    async def visible(self, user_id: int, messages: list[Message]) -> list[Message]:
        """The messages the user may still see, with when they disappear for them; those
        they had not got yet count as delivered now."""
        if not self.enabled or not messages:
            return messages
        now = self.clock.now()

        def unit(tx: Tx) -> tuple[list[Message], list[int]]:
            queries = retention_queries(tx)
            alive, fresh = self._split(queries, user_id, messages, now)
            return self._quotes_alive(tx, queries, user_id, alive, now), fresh

        alive, fresh = await self.store.read(unit)
        if fresh:
            await self._delivered(user_id, fresh, now)
        return alive

    def _quotes_alive(
        self, tx: Tx, queries: RetentionQueries, user_id: int, messages: list[Message], now: float
    ) -> list[Message]:
        """The messages with the quote of each reply whose original disappeared for the
        user emptied (as for a deleted one): what disappeared stays disappeared."""
        quoted = {
            m.reply_to.id for m in messages if m.reply_to is not None and not m.reply_to.deleted
        }
        if not quoted:
            return messages
        originals = [o for i in sorted(quoted) if (o := tx.message(i)) is not None]
        still = {o.id for o in self._split(queries, user_id, originals, now)[0]}
        out: list[Message] = []
        for m in messages:
            quote = m.reply_to
            if quote is not None and not quote.deleted and quote.id not in still:
                gone = Quote(id=quote.id, author=quote.author, deleted=True)
                m = msgspec.structs.replace(m, reply_to=gone)
            out.append(m)
        return out

    async def visible_one(self, user_id: int, message: Message) -> Message:
        """The message if the user may still see it; ``forbidden`` (as for a stranger) if not."""
        alive = await self.visible(user_id, [message])
        if not alive:
            raise forbidden("no such message, or not in a chat of yours")
        return alive[0]

    async def resumed(self, user_id: int) -> None:
        """An event stream of the user resumes: the replay carries every message they missed."""
        if self.enabled:
            await self._delivered(user_id, None, self.clock.now())

    async def _delivered(self, user_id: int, message_ids: list[int] | None, now: float) -> None:
        await self.store.write(
            lambda tx: retention_queries(tx).mark_delivered(user_id, message_ids, now)
        )

    async def unread_alive(self, user_id: int, chat: Chat) -> Chat:
        """The chat with its unread count less the messages that disappeared for the user."""
        if not self.enabled or not chat.unread:
            return chat
        now = self.clock.now()
        gone = await self.store.read(
            lambda tx: retention_queries(tx).gone_unread(
                user_id, chat.id, chat.last_read, now - self.ttl
            )
        )
        if not gone:
            return chat
        return msgspec.structs.replace(chat, unread=max(0, chat.unread - gone))

    async def unread_alive_all(self, user_id: int, chats: list[Chat]) -> list[Chat]:
        """:meth:`unread_alive` of a list of chats, with one query for all of them."""
        if not self.enabled:
            return chats
        wanted = [(c.id, c.last_read) for c in chats if c.unread]
        if not wanted:
            return chats
        cutoff = self.clock.now() - self.ttl
        gone = await self.store.read(
            lambda tx: retention_queries(tx).gone_unread_in(user_id, wanted, cutoff)
        )
        if not gone:
            return chats
        return [
            msgspec.structs.replace(c, unread=max(0, c.unread - gone[c.id])) if c.id in gone else c
            for c in chats
        ]

    async def unread(self, user_id: int, unread: Unread) -> Unread:
        """``/unread`` less what disappeared for the user."""
        if not self.enabled:
            return unread
        chats: list[UnreadChat] = []
        for item in unread.chats:
            alive = await self.visible(user_id, item.messages)
            gone = len(item.messages) - len(alive)
            if gone and not alive and item.count <= len(item.messages):
                continue
            count = max(0, item.count - gone)
            chat = msgspec.structs.replace(item.chat, unread=count)
            chats.append(msgspec.structs.replace(item, chat=chat, count=count, messages=alive))
        return Unread(chats=chats, total=sum(c.count for c in chats))


class RetentionService:
    """Per-recipient expiry and deletion of disappearing messages (the loop)."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.ttl = settings.message_ttl
        self.max_age = settings.message_max_age
        self.deleted_hooks: list[Callable[[list[int]], Awaitable[None]]] = []
        """Called with the ids of deleted messages (e.g. to collect their files)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Messages disappear (``message_ttl > 0``)."""
        return self.ttl > 0

    async def start(self) -> None:
        """Start the expiry loop (only when messages disappear)."""
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def close(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- the loop -------------------------------------------------------------------

    async def _run(self) -> None:
        # new rows fall due a whole ttl later: polling the clock is enough, no wake-ups
        while True:
            try:
                when = await self._next_due()
                if when is not None and when <= self.clock.now():
                    if await self.expire():
                        continue  # a full batch: there is more right away
                    when = await self._next_due()
            except Exception:
                log.exception("retention pass failed; retrying shortly")
                when = None
            await wait_until(self.clock, when, self._wake)

    async def _next_due(self) -> float | None:
        ttl, max_age = self.ttl, self.max_age

        return await self.store.read(lambda tx: retention_queries(tx).next_due(ttl, max_age))

    async def expire(self) -> bool:
        """One pass at the current time; True if there may be more to do right away."""
        if not self.enabled:
            return False
        now = self.clock.now()
        deleted, busy = await self.store.write(lambda tx: self._expire(tx, now))
        if deleted:
            log.info("deleted %d expired message(s)", len(deleted))
            for hook in self.deleted_hooks:
                try:
                    await hook(deleted)
                except Exception:
                    log.exception("deleted-message hook failed")
        return busy

    def _expire(self, tx: Tx, now: float) -> tuple[list[int], bool]:
        if not tx.try_job_lock("retention"):
            return [], False  # another node's pass runs: it does the work
        queries = retention_queries(tx)
        deleted: list[int] = []
        busy = False
        # 1. nobody came back for it in time
        old = queries.too_old(now - self.max_age, BATCH)
        busy |= len(old) == BATCH
        for message_id, chat_id in old:
            deleted += self._delete(tx, chat_id, message_id)
        # 2. recipients whose own copy expired
        due = queries.due_deliveries(now - self.ttl, BATCH)
        busy |= len(due) == BATCH
        touched: dict[int, int] = {}
        for message_id, user_id, chat_id in due:
            queries.expire_delivery(message_id, user_id)
            gone = MessageDeleted(chat_id=chat_id, message_id=message_id)
            self.events.emit(tx, gone, user_id=user_id)
            touched[message_id] = chat_id
        # 3. the copies delivered when it was posted
        base = queries.base_due(now, BATCH)
        busy |= len(base) == BATCH
        for message_id, chat_id in base:
            waiting = queries.waiting_users(message_id)
            if not waiting:
                deleted += self._delete(tx, chat_id, message_id)
                continue
            gone = MessageDeleted(chat_id=chat_id, message_id=message_id)
            told = [u for u in tx.member_ids(chat_id) if u not in waiting]
            for user_id in told:
                self.events.emit(tx, gone, user_id=user_id)
            queries.expire_base(message_id, told)
            touched[message_id] = chat_id
        # 4. gone for everyone: delete it
        for message_id, chat_id in touched.items():
            if queries.gone_for_everyone(message_id):
                deleted += self._delete(tx, chat_id, message_id)
        return deleted, busy

    def _delete(self, tx: Tx, chat_id: int, message_id: int) -> list[int]:
        """Delete a message with its comments; the chat's members are told."""
        ids = retention_queries(tx).delete_message(message_id)
        for mid in ids:
            self.events.emit(tx, MessageDeleted(chat_id=chat_id, message_id=mid), chat_id=chat_id)
        return ids

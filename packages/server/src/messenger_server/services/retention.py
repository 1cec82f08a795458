"""Disappearing messages (F8): a message disappears for each recipient ``message_ttl``
seconds after it was delivered to that recipient, and is deleted from the server once
it has disappeared for everyone (or ``message_max_age`` after it was posted).

Bookkeeping whose cost follows the work, not the size of the chat (issue 11):

* ``expiring`` has one row per message: when it was posted and ``created_at + ttl``.
  Sending writes nothing per recipient.
* ``online_spans``: when each user had a live event stream, as message-id ranges,
  written when their first stream on a node opens (on several nodes committed before
  its response head goes out, so a send on any node after that counts them online) and
  their last one goes (this node's presence, as a send saw it). A member of the chat (by the time it
  was posted, not its author) whose ranges miss a message was offline then: it waits
  for them.
* ``deliveries`` gets a row when a waiting message first reaches its recipient
  (history, unread, thread, or an event stream that resumes with ``Last-Event-ID``):
  ``delivered_at`` is that moment; ``delivered_cursors`` remembers how far a resume
  went, so the next one looks only at newer messages.
* Everyone else (the author, everyone online at the time) got it when it was posted.

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
import threading
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import msgspec

from messenger_protocol import (
    Chat,
    Message,
    MessageDeleted,
    Quote,
    Unread,
    UnreadChat,
)

from ..bus import exit_for_test_fault
from ..clock import Clock, wait_until
from ..config import Settings
from ..loglimit import log_pass_failure
from ..storage import Store, Tx
from ..storage.retention import RetentionQueries, retention_queries
from .actor import forbidden
from .events import EventService

__all__ = ["BATCH", "RetentionService", "Seen", "Visibility"]

log = logging.getLogger(__name__)

BATCH = 500
"""Rows handled per pass of each kind (the loop goes again at once when it hit this)."""


class Seen(NamedTuple):
    """What :meth:`Visibility.visible_in` found: the messages the user may see, those of
    them delivered to the user only now, and when that was."""

    messages: list[Message]
    fresh: list[int]
    now: float


class Visibility:
    """The per-reader rule of disappearing messages: who got a message when, and what a
    reader may still see. Every read of messages and every post goes through it, on
    every path (HTTP, the scheduler, anything later)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        ttl: float,
        node: str = "",
        *,
        several_nodes: bool = False,
        span_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.node = node
        """This node's name: its online spans are its own (closed when it restarts)."""
        self.several_nodes = several_nodes
        """Other nodes post too: a stream's span is committed before its head goes out (on
        one node the next unit of this node writes it first anyway)."""
        self.span_delay = span_delay
        """Seconds each write of presence changes waits first (a test fault: 0)."""
        # presence changes not yet known to be committed (user id -> online), read by
        # the write units (on the PostgreSQL writer thread too): guarded by the lock
        self._changed: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._flushing: asyncio.Task[None] | None = None
        self._closing = False
        # who is online on this node: a live stream, or one about to open (held)
        self._streaming: set[int] = set()
        self._holds: dict[int, int] = {}
        self._online_here: set[int] = set()

    @property
    def enabled(self) -> bool:
        """Messages disappear (``message_ttl > 0``)."""
        return self.ttl > 0

    # --- presence: who gets a message through a live stream ------------------------

    async def start(self) -> None:
        """Close the online spans this node left open (it stopped without saying so)."""
        if self.enabled:
            node = self.node

            def unit(tx: Tx) -> None:
                queries = retention_queries(tx)
                queries.end_spans(node, queries.last_message_id())

            await self.store.write(unit)

    async def close(self) -> None:
        """Wait for the presence changes being written; later ones are left to the next
        start (which closes this node's open spans)."""
        self._closing = True
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing

    def came_online(self, user_id: int) -> None:
        """The user's first event stream attached on this node."""
        self._streaming.add(user_id)
        self._update(user_id)

    def went_offline(self, user_id: int) -> None:
        """The user's last event stream on this node went."""
        self._streaming.discard(user_id)
        self._update(user_id)

    async def hold_online(self, user_id: int) -> None:
        """A stream of the user is about to open on this node: their online span is
        committed before its response head goes out, so a message posted on any node
        once the client sees the stream open counts them as online. Pair it with one
        :meth:`release` (the stream attached, or it never will: a HEAD request, a client
        gone first, an error). If the span cannot be written, the hold is released and the
        store's error raised. On one node it holds nothing: the stream attaches before
        any later request runs, and every send writes this node's changes in its unit
        first (one commit less per stream open: 13 ms on a busy PostgreSQL)."""
        if not self.enabled or self._closing or not self.several_nodes:
            return
        self._holds[user_id] = self._holds.get(user_id, 0) + 1
        self._update(user_id)
        try:
            await self._commit(user_id)
        except BaseException:
            self.release(user_id)
            raise

    def release(self, user_id: int) -> None:
        """The end of a :meth:`hold_online` (the stream, if it attached, now counts)."""
        count = self._holds.get(user_id, 0) - 1
        if count > 0:
            self._holds[user_id] = count
        elif self._holds.pop(user_id, None) is not None:
            self._update(user_id)

    def _update(self, user_id: int) -> None:
        online = user_id in self._streaming or user_id in self._holds
        if online == (user_id in self._online_here):
            return
        if online:
            self._online_here.add(user_id)
        else:
            self._online_here.discard(user_id)
        self._presence_changed(user_id, online)

    async def _commit(self, user_id: int) -> None:
        """Until the user's pending presence change is written (by a unit of its own)."""
        while True:
            with self._lock:
                if user_id not in self._changed:
                    return
            applied = await self._write_presence()
            self._forget_applied(applied)

    def node_gone(self, tx: Tx, node: str) -> None:
        """In a unit: ``node`` stopped without saying so (its lease went stale): close the
        online spans it left open, as its own restart would."""
        if self.enabled:
            queries = retention_queries(tx)
            queries.end_spans(node, queries.last_message_id())

    def _presence_changed(self, user_id: int, online: bool) -> None:
        if not self.enabled or self._closing:
            return
        with self._lock:
            self._changed[user_id] = online
        if self._flushing is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a test's hub): the next send writes it
            self._flushing = loop.create_task(self._flush(), name="presence-spans")

    def _apply_presence(self, tx: Tx, boundary: int | None) -> dict[int, bool]:
        """Write the pending presence changes: messages after ``boundary`` (None: the
        newest message) reach the users who came online and not those who went."""
        with self._lock:
            changed = dict(self._changed)
        if changed:
            queries = retention_queries(tx)
            if boundary is None:
                boundary = queries.last_message_id()
            for user_id, online in changed.items():
                queries.set_online(user_id, self.node, online, boundary)
        return changed

    async def _flush(self) -> None:
        try:
            while True:
                applied = await self._write_presence()
                if not self._forget_applied(applied):
                    return
        except Exception as exc:
            log_pass_failure(log, "could not write presence spans; the next send writes them",
                             exc, self.store.unavailable)  # fmt: skip
        finally:
            self._flushing = None

    async def _write_presence(self) -> dict[int, bool]:
        if self.span_delay:
            await asyncio.sleep(self.span_delay)
        return await self.store.write(lambda tx: self._apply_presence(tx, None))

    def _forget_applied(self, applied: dict[int, bool]) -> bool:
        """Drop the changes a unit wrote (unless changed again since); whether any are left."""
        with self._lock:
            for user_id, online in applied.items():
                if self._changed.get(user_id) is online:
                    del self._changed[user_id]
            return bool(self._changed)

    # --- delivery bookkeeping ----------------------------------------------------

    def posted(self, tx: Tx, message: Message) -> None:
        """In the unit that stores ``message``: track it. Nothing per recipient: who was
        offline follows from the online spans, brought up to date here first (a stream
        that attached or went before this unit counts as it did for the hub)."""
        if not self.enabled:
            return
        self._apply_presence(tx, message.id - 1)
        expires_at = message.created_at + self.ttl
        retention_queries(tx).add_expiring(
            message.id, message.chat_id, message.created_at, expires_at
        )

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
        seen = await self.store.read(lambda tx: self.visible_in(tx, user_id, messages))
        return await self.settle(user_id, seen)

    def visible_in(self, tx: Tx, user_id: int, messages: list[Message]) -> Seen:
        """:meth:`visible` inside a read unit (the one that read the messages: one
        snapshot, and on PostgreSQL one trip to a reader thread); :meth:`settle` after it
        records what was delivered just now."""
        now = self.clock.now()
        if not self.enabled or not messages:
            return Seen(messages, [], now)
        queries = retention_queries(tx)
        alive, fresh = self._split(queries, user_id, messages, now)
        return Seen(self._quotes_alive(tx, queries, user_id, alive, now), fresh, now)

    async def settle(self, user_id: int, seen: Seen) -> list[Message]:
        """After :meth:`visible_in`'s unit: the messages the user got only now count as
        delivered (their own countdown starts); the messages they may see."""
        if seen.fresh:
            await self._delivered(user_id, seen.fresh, seen.now)
        return seen.messages

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
            now = self.clock.now()

            def unit(tx: Tx) -> None:
                self._apply_presence(tx, None)  # the stream that resumes is online now
                retention_queries(tx).mark_delivered(user_id, None, now)

            await self.store.write(unit)

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

    def unread_alive_in(self, tx: Tx, user_id: int, chats: list[Chat]) -> list[Chat]:
        """Inside a read unit (the chat list's own, so /chats is one read): the chats with
        their unread counts less what disappeared for the user, one query for all."""
        if not self.enabled:
            return chats
        wanted = [(c.id, c.last_read) for c in chats if c.unread]
        if not wanted:
            return chats
        cutoff = self.clock.now() - self.ttl
        gone = retention_queries(tx).gone_unread_in(user_id, wanted, cutoff)
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
        *,
        exit_mid_pass: int = 0,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.exit_mid_pass = exit_mid_pass
        """Test fault (0: none): the process exits inside a pass, right after its Nth
        deletion, before the pass commits (a leader killed mid-pass)."""
        self._deleted_in_pass = 0
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
            except Exception as exc:
                log_pass_failure(
                    log, "retention pass failed; retrying shortly", exc, self.store.unavailable
                )
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
        self._deleted_in_pass = 0
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
            # one logged event, to everyone but those whose copy came late (it is not
            # one row per member of a big chat)
            gone = MessageDeleted(chat_id=chat_id, message_id=message_id)
            self.events.emit(tx, gone, chat_id=chat_id, except_late=(message_id, waiting))
            queries.expire_base(message_id)
            touched[message_id] = chat_id
        # 4. gone for everyone: delete it
        for message_id, chat_id in touched.items():
            if queries.gone_for_everyone(message_id):
                deleted += self._delete(tx, chat_id, message_id)
        queries.prune_spans()
        return deleted, busy

    def _delete(self, tx: Tx, chat_id: int, message_id: int) -> list[int]:
        """Delete a message with its comments; the chat's members are told."""
        ids = retention_queries(tx).delete_message(message_id)
        for mid in ids:
            self.events.emit(tx, MessageDeleted(chat_id=chat_id, message_id=mid), chat_id=chat_id)
        self._deleted_in_pass += 1
        if self._deleted_in_pass == self.exit_mid_pass:
            exit_for_test_fault(f"in a retention pass after {self._deleted_in_pass} deletions")
        return ids

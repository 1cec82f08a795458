"""Messages and comments: one path to post them, history, read state, unread, threads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Attachment,
    Chat,
    DeviceRef,
    ErrorCode,
    HistoryQuery,
    MarkRead,
    Message,
    MessageCreated,
    MessagePage,
    MessageUpdated,
    ReadMarker,
    ReadReceipt,
    SendMessage,
    Thread,
    ThreadActivity,
    Unread,
    UnreadChat,
    UnreadQuery,
    device_set_digest,
    limits,
)

from ..clock import Clock
from ..storage import ChatRecord, Store, Tx
from ..storage.annotations import annotation_queries
from ..storage.keys import key_queries
from ..storage.notify import notify_queries
from .actor import Actor, forbidden, require_member, require_visible
from .events import EventService
from .retention import Seen, Visibility

__all__ = [
    "Attachments",
    "Draft",
    "Mentions",
    "MessageService",
    "SendCheck",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Draft:
    """A message about to be posted, as the send checks see it."""

    actor: Actor
    chat: ChatRecord
    body: SendMessage
    thread_root: int | None = None
    scheduled_id: int | None = None


SendCheck = Callable[[Tx, Draft, float], None]
"""Runs inside the unit that stores a message, with the unit and its time, after the
message is inserted; raises an ApiError (banned, rate_limited, ...) to refuse, which
rolls the unit back (the message and whatever the checks counted)."""


class Attachments(Protocol):
    """Files on messages (the file service)."""

    def attach(self, tx: Tx, draft: Draft, message: Message) -> list[Attachment]:
        """Link the files named by the draft to the stored message, inside its unit."""
        ...

    def load(self, tx: Tx, message_ids: list[int]) -> dict[int, list[Attachment]]:
        """The attachments of messages by id (messages without any may be left out)."""
        ...


class Mentions(Protocol):
    """Mentions in messages (the notify service)."""

    def posted(
        self,
        tx: Tx,
        chat: ChatRecord,
        message: Message,
        author_id: int,
        named: Sequence[str] = (),
    ) -> None:
        """In the unit that stores ``message``: record and announce whom it mentions
        (``named``: an encrypted message's, as its sender says)."""
        ...

    def edited(self, tx: Tx, chat: ChatRecord, message: Message, author_id: int) -> None:
        """In the unit that edits ``message``: record and announce whom its new text
        mentions (each user once), and forget those it no longer does."""
        ...


class MessageService:
    """Posting, reading and read state of messages and comments."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        *,
        max_text: int,
        history_on_connect: int = limits.HISTORY_ON_CONNECT,
        send_checks: Sequence[SendCheck] = (),
        attachments: Attachments | None = None,
        visibility: Visibility | None = None,
        mentions: Mentions | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.max_text = max_text
        self.history_on_connect = min(history_on_connect, limits.HISTORY_PAGE_MAX)
        """The page of history a query without a limit gets (SPEC F2)."""
        self.send_checks = tuple(send_checks)
        """Checks every post goes through, in order (moderation, rate limits, ...)."""
        self.attachments = attachments
        """Files on messages; without it a message with attachments is refused."""
        self.visibility = visibility
        """Disappearing messages: what each reader may still see."""
        self.mentions = mentions
        """``@login`` and ``@all``: recorded and told to the mentioned, on every post."""

    # --- posting ---------------------------------------------------------------

    async def post(
        self,
        actor: Actor,
        chat_id: int,
        body: SendMessage,
        *,
        thread_root: int | None = None,
        scheduled_id: int | None = None,
    ) -> Message:
        """Store a message (or a comment under ``thread_root``) and announce it.

        Committed before it returns. A repeated ``client_id`` of the same author
        returns the message stored the first time and announces nothing. Membership,
        the idempotency key and the send checks (bans, rate limits) are all decided in
        the one unit that stores the message.
        """
        self.check_body(body)
        if body.reply_to is not None:
            await self._reply_target(actor, chat_id, body.reply_to)
        unit = self.post_unit(actor, chat_id, body, thread_root=thread_root,
                              scheduled_id=scheduled_id)  # fmt: skip
        return await self.store.write(unit)

    def check_body(self, body: SendMessage) -> None:
        """What a message's body alone must be (``invalid`` if not)."""
        if len(body.text) > self.max_text:
            raise ApiError(
                ErrorCode.INVALID,
                f"text is longer than {self.max_text} characters",
                limit=self.max_text,
            )
        if body.encrypted is not None:
            if body.text:
                raise ApiError(
                    ErrorCode.INVALID, "an encrypted message carries ciphertext only: no text"
                )
        elif not body.text.strip() and not body.attachments:
            raise ApiError(ErrorCode.INVALID, "a message needs text or an attachment")
        if body.attachments and self.attachments is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "attachments are not available yet")

    def post_unit(
        self,
        actor: Actor,
        chat_id: int,
        body: SendMessage,
        *,
        thread_root: int | None = None,
        scheduled_id: int | None = None,
    ) -> Callable[[Tx], Message]:
        """The unit of work that stores a message whose body :meth:`post` has checked
        (the scheduler runs it inside its own unit, with the claim of the row)."""
        client_id = body.client_id
        reply_to = body.reply_to
        now = self.clock.now()

        def unit(tx: Tx) -> Message:
            if client_id is not None:
                earlier = tx.message_by_client_id(actor.user_id, client_id)
                if earlier is not None:  # a retry: the first answer again, checked no more
                    return self.decorate(tx, [earlier])[0]
            chat, _ = require_member(tx, chat_id, actor.user_id)
            if chat.encrypted and body.encrypted is None:
                raise ApiError(
                    ErrorCode.INVALID,
                    "this chat is end-to-end encrypted: a message in the clear is refused",
                )
            if body.encrypted is not None and body.devices is not None:
                self.devices_unchanged(tx, chat_id, body.devices)
            draft = Draft(actor, chat, body, thread_root, scheduled_id)
            message = tx.insert_message(
                chat_id, actor.user_id, body.text, now, client_id, thread_root, scheduled_id
            )
            if message is None:  # the same client_id was committed meanwhile (another node)
                assert client_id is not None
                again = tx.message_by_client_id(actor.user_id, client_id)
                assert again is not None
                return self.decorate(tx, [again])[0]
            for check in self.send_checks:
                check(tx, draft, now)
            if body.encrypted is not None:
                key_queries(tx).set_encrypted(
                    message.id, msgspec.json.encode(body.encrypted).decode()
                )
                message = msgspec.structs.replace(message, encrypted=body.encrypted)
            if reply_to is not None:
                annotation_queries(tx).set_reply_to(message.id, reply_to)
                replied = tx.message(message.id)
                assert replied is not None
                message = replied
            if body.attachments:
                assert self.attachments is not None
                files = self.attachments.attach(tx, draft, message)
                message = msgspec.structs.replace(message, attachments=files)
            self.events.emit(tx, MessageCreated(message=message), chat_id=chat_id)
            if self.visibility is not None:
                self.visibility.posted(tx, message)
            if self.mentions is not None:
                self.mentions.posted(tx, draft.chat, message, actor.user_id, body.mentions)
            if thread_root is not None:
                self._comment_posted(tx, actor, message, thread_root, now)
            return message

        return unit

    @staticmethod
    def devices_unchanged(tx: Tx, chat_id: int, named: str) -> None:
        """An encrypted send (or edit) names the devices it was encrypted against: refuse it
        (``devices_changed``, with the devices there are now) when the chat's members
        have others. Checked in the unit that stores the message, so a device whose
        registration commits before it is never left without the message's key."""
        now = key_queries(tx).member_devices(chat_id)
        if device_set_digest(now) != named:
            raise ApiError(
                ErrorCode.DEVICES_CHANGED,
                "the devices of this chat's members changed: encrypt for them and send again",
                devices=[DeviceRef(login=login, device_id=device) for login, device in now],
            )

    async def _reply_target(self, actor: Actor, chat_id: int, message_id: int) -> None:
        """A reply names a message of the same chat the sender may see (one answer for an
        unknown, a foreign and a disappeared one), not deleted."""

        def unit(tx: Tx) -> Message:
            target = require_visible(tx, message_id, actor.user_id)
            if target.chat_id != chat_id:
                raise forbidden("no such message, or not in a chat of yours")
            return target

        target = await self.store.read(unit)
        if self.visibility is not None:
            target = await self.visibility.visible_one(actor.user_id, target)
        if target.deleted_at is not None:
            raise ApiError(ErrorCode.CONFLICT, f"message #{message_id} was deleted")

    def _comment_posted(
        self, tx: Tx, actor: Actor, comment: Message, root_id: int, now: float
    ) -> None:
        root = tx.count_comment(root_id, now)
        self.events.emit(
            tx, MessageUpdated(message=self.decorate(tx, [root])[0]), chat_id=root.chat_id
        )
        members = set(tx.member_ids(root.chat_id))
        for user_id in sorted(tx.thread_participants(root_id) - {actor.user_id}):
            if user_id in members:
                activity = ThreadActivity(chat_id=root.chat_id, root_id=root_id, comment=comment)
                self.events.emit(tx, activity, user_id=user_id)

    async def comment(self, actor: Actor, message_id: int, body: SendMessage) -> Message:
        """Comment on a message; a comment on a comment joins its root's thread (flat)."""
        root = await self.store.read(lambda tx: self._root(tx, message_id, actor.user_id))
        return await self.post(actor, root.chat_id, body, thread_root=root.id)

    def _root(self, tx: Tx, message_id: int, user_id: int) -> Message:
        """The thread root of a message the user may see (``forbidden`` otherwise)."""
        message = self._visible(tx, message_id, user_id)
        if message.thread_root is None:
            return message
        root = tx.message(message.thread_root)
        assert root is not None
        return root

    @staticmethod
    def _visible(tx: Tx, message_id: int, user_id: int) -> Message:
        """A message of a chat the user belongs to (``forbidden`` otherwise)."""
        return require_visible(tx, message_id, user_id)

    # --- reading ---------------------------------------------------------------

    def decorate(self, tx: Tx, messages: list[Message]) -> list[Message]:
        """Messages with their attachments and reactions."""
        if not messages:
            return messages
        ids = [m.id for m in messages]
        files = self.attachments.load(tx, ids) if self.attachments is not None else {}
        reactions = annotation_queries(tx).reactions(ids)
        if not files and not reactions:
            return messages
        return [
            msgspec.structs.replace(
                m, attachments=files.get(m.id, m.attachments), reactions=reactions.get(m.id, [])
            )
            if m.id in files or m.id in reactions
            else m
            for m in messages
        ]

    async def history(self, actor: Actor, chat_id: int, query: HistoryQuery) -> MessagePage:
        """A page of a chat's messages (comments are in threads), oldest first; without
        a limit the configured history on connect."""
        limit = self.history_on_connect if query.limit is None else query.limit

        visibility = self.visibility

        def unit(tx: Tx) -> tuple[list[Message], bool, Seen | None]:
            require_member(tx, chat_id, actor.user_id)
            messages, more = tx.history(chat_id, query.before, query.after, limit)
            messages = self.decorate(tx, messages)
            if visibility is None:
                return messages, more, None
            # in the same read: one snapshot, one trip to a PostgreSQL reader thread
            return messages, more, visibility.visible_in(tx, actor.user_id, messages)

        messages, more, seen = await self.store.read(unit)
        if visibility is not None and seen is not None:
            messages = await visibility.settle(actor.user_id, seen)
        return MessagePage(messages=messages, has_more=more)

    async def message(self, actor: Actor, message_id: int) -> Message:
        """One message or comment of a chat the user belongs to."""

        def unit(tx: Tx) -> Message:
            message = self._visible(tx, message_id, actor.user_id)
            return self.decorate(tx, [message])[0]

        message = await self.store.read(unit)
        if self.visibility is None:
            return message
        return await self.visibility.visible_one(actor.user_id, message)

    async def mark_read(self, actor: Actor, chat_id: int, body: MarkRead) -> Chat:
        """Move the user's read cursor of a chat; all their clients are told, and, in a
        chat small enough for "seen by", the other members (a ``receipt`` event, unless
        the user hides their read receipts)."""

        def unit(tx: Tx) -> tuple[Chat, int, list[int]]:
            chat, before = require_member(tx, chat_id, actor.user_id)
            up_to = tx.set_last_read(chat_id, actor.user_id, min(body.up_to, chat.last_message_id))
            self.events.emit(tx, ReadMarker(chat_id=chat_id, up_to=up_to), user_id=actor.user_id)
            told = self._receipt_to(tx, chat_id, actor, moved=up_to > before)
            return tx.chat_view(chat, actor.user_id), up_to, told

        view, up_to, told = await self.store.write(unit)
        if told:
            receipt = ReadReceipt(chat_id=chat_id, login=actor.login, up_to=up_to)
            self.events.ephemeral(receipt, told)
        return view

    async def unread(self, actor: Actor, query: UnreadQuery | None = None) -> Unread:
        """Per chat: how many messages of others are unread, and a page of them, oldest first.

        Without ``query.chat_id``: every chat with unread messages and its first page.
        With it: that chat alone, the page after ``query.after`` (a message id). Reading
        here never moves the read cursor; only ``mark_read`` does.
        """
        query = query or UnreadQuery()
        limit = min(query.limit, limits.UNREAD_PAGE_MAX)

        def one(tx: Tx, chat: ChatRecord) -> UnreadChat | None:
            view = tx.chat_view(chat, actor.user_id)
            if view.unread == 0:
                return None
            after = max(view.last_read, query.after or 0)
            page = tx.unread_messages(chat.id, actor.user_id, after, limit + 1)
            return UnreadChat(
                chat=view,
                count=view.unread,
                messages=self.decorate(tx, page[:limit]),
                has_more=len(page) > limit,
            )

        def unit(tx: Tx) -> Unread:
            if query.chat_id is not None:
                chat, _ = require_member(tx, query.chat_id, actor.user_id)
                found = one(tx, chat)
                chats = [found] if found is not None else []
            else:
                chats = []
                for chat_id in tx.chat_ids_of(actor.user_id):
                    record = tx.chat(chat_id)
                    assert record is not None
                    found = one(tx, record)
                    if found is not None:
                        chats.append(found)
            chats.sort(key=lambda c: (c.chat.id != GENERAL_CHAT_ID, c.chat.id))
            return Unread(chats=chats, total=sum(c.count for c in chats))

        unread = await self.store.read(unit)
        if self.visibility is None:
            return unread
        return await self.visibility.unread(actor.user_id, unread)

    # --- threads -----------------------------------------------------------------

    async def thread(self, actor: Actor, message_id: int) -> Thread:
        """A root message and all its comments, with the user's unread count."""

        def unit(tx: Tx) -> Thread:
            root = self._root(tx, message_id, actor.user_id)
            last_read = tx.thread_last_read(actor.user_id, root.id)
            return Thread(
                root=self.decorate(tx, [root])[0],
                comments=self.decorate(tx, tx.comments(root.id)),
                unread=tx.thread_unread(root.id, actor.user_id, last_read),
            )

        thread = await self.store.read(unit)
        if self.visibility is None:
            return thread
        root = await self.visibility.visible_one(actor.user_id, thread.root)
        comments = await self.visibility.visible(actor.user_id, thread.comments)
        return msgspec.structs.replace(thread, root=root, comments=comments)

    async def mark_thread_read(self, actor: Actor, message_id: int, body: MarkRead) -> None:
        """Move the user's read cursor of a thread; all their clients are told, and, in a
        chat small enough for "seen by", the other members (a ``receipt`` event with the
        thread's root, unless the user hides their read receipts)."""

        def unit(tx: Tx) -> tuple[ReadReceipt, list[int]]:
            root = self._root(tx, message_id, actor.user_id)
            comments = tx.comments(root.id)
            newest = comments[-1].id if comments else root.id
            before = tx.thread_last_read(actor.user_id, root.id)
            # never past the newest comment: later ones must still count as unread
            up_to = tx.set_thread_read(actor.user_id, root.id, min(body.up_to, newest))
            marker = ReadMarker(chat_id=root.chat_id, up_to=up_to, thread_root=root.id)
            self.events.emit(tx, marker, user_id=actor.user_id)
            receipt = ReadReceipt(
                chat_id=root.chat_id, login=actor.login, up_to=up_to, thread_root=root.id
            )
            return receipt, self._receipt_to(tx, root.chat_id, actor, moved=up_to > before)

        receipt, told = await self.store.write(unit)
        if told:
            self.events.ephemeral(receipt, told)

    @staticmethod
    def _receipt_to(tx: Tx, chat_id: int, actor: Actor, *, moved: bool) -> list[int]:
        """Who hears of a read cursor that ``moved``: the other members of a chat small
        enough for "seen by", unless the reader hides their receipts."""
        if (
            moved
            and tx.member_count(chat_id) <= limits.SEEN_BY_MAX_MEMBERS
            and not notify_queries(tx).hide_receipts(actor.user_id)
        ):
            return [u for u in tx.member_ids(chat_id) if u != actor.user_id]
        return []

"""Mentions, per-chat mute, typing notices, read receipts ("seen by") and their privacy.

Mentions are parsed by the server in the unit that stores a message (every path that
posts goes through :meth:`MessageService.post <.messages.MessageService.post>`): each
``@login`` of a member other than the author, and ``@all`` in a group chat whose owner
allows it, is recorded and told to the mentioned user by a logged ``mention`` event.
An edit reads the mentions again (:meth:`NotifyService.edited`). The chat's ``mentions``
count (unread messages and comments that mention the user: a chat message after the
chat's read cursor, a comment after its thread's) does not care about mute: a mention in
a muted chat still counts.

Typing notices are ephemeral: never logged, never replayed on resume; one per 3 s per
chat per user goes out (the others are dropped and answered ``sent: false``), to the
other members only, and says when it expires (6 s later).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from messenger_protocol import (
    ApiError,
    Chat,
    ChatOptions,
    ChatUpdated,
    ErrorCode,
    Mention,
    Mentioned,
    MentionList,
    MentionsQuery,
    Message,
    Privacy,
    PrivacySettings,
    SeenBy,
    SetMute,
    Typing,
    TypingResult,
    limits,
)

from ..clock import Clock
from ..storage import ChatRecord, Store, Tx
from ..storage.notify import notify_queries
from .actor import Actor, chat_names, forbidden, require_member, require_owner
from .events import EventService
from .retention import Visibility

__all__ = ["MAX_MENTIONS", "NotifyService", "mentioned_logins"]

log = logging.getLogger(__name__)

MAX_MENTIONS = 50
"""Distinct ``@login`` mentions of one message that are looked up (the rest are text)."""

_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_][A-Za-z0-9_.\-]{0,31})")


def mentioned_logins(text: str) -> list[str]:
    """The ``@login`` words of a text, in order, once each (lower case); ``all`` included."""
    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        found.setdefault(match.group(1).lower(), None)
    return list(found)[:MAX_MENTIONS]


class NotifyService:
    """Mentions, mute, typing, read receipts."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        *,
        visibility: Visibility | None = None,
        typing_interval: float = limits.TYPING_INTERVAL_SECONDS,
        typing_ttl: float = limits.TYPING_TTL_SECONDS,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.visibility = visibility
        self.typing_interval = typing_interval
        self.typing_ttl = typing_ttl
        self._typed: dict[tuple[int, int], float] = {}
        """When each (chat, user) last sent a typing notice that went out."""

    # --- mentions ------------------------------------------------------------------

    def posted(
        self,
        tx: Tx,
        chat: ChatRecord,
        message: Message,
        author_id: int,
        named: Sequence[str] = (),
    ) -> None:
        """In the unit that stores ``message``: record and announce whom it mentions --
        an encrypted message whom its sender names (the server cannot read its text),
        by the same rules (members only, ``all`` where allowed, never the author)."""
        text = message.text
        if message.encrypted is not None:
            text = " ".join(f"@{login}" for login in named)
        targets = sorted(self._targets(tx, chat, text, author_id))
        if not targets:
            return
        notify_queries(tx).add_mentions(message.id, chat.id, targets)
        for user_id in targets:
            self.events.emit(tx, Mentioned(chat_id=chat.id, message=message), user_id=user_id)

    def edited(self, tx: Tx, chat: ChatRecord, message: Message, author_id: int) -> None:
        """In the unit that edits ``message``: whom its new text mentions. A user it names
        for the first time gets a ``mention`` event (once: naming them again in a later
        edit tells them nothing new); one it no longer names leaves the counts and the
        ``/mentions`` list, and their devices get the chat's counts (``chat`` event)."""
        queries = notify_queries(tx)
        before = queries.mentioned(message.id)
        now = self._targets(tx, chat, message.text, author_id)
        added, removed = sorted(now - before), sorted(before - now)
        if added:
            queries.add_mentions(message.id, chat.id, added)
        if removed:
            queries.remove_mentions(message.id, removed)
        for user_id in added:
            self.events.emit(tx, Mentioned(chat_id=chat.id, message=message), user_id=user_id)
        for user_id in removed:
            if tx.last_read(chat.id, user_id) is not None:
                view = tx.chat_view(chat, user_id)
                self.events.emit(tx, ChatUpdated(chat=view), user_id=user_id)

    @staticmethod
    def _targets(tx: Tx, chat: ChatRecord, text: str, author_id: int) -> set[int]:
        """The members a text mentions: ``@login`` of a member, ``@all`` where allowed;
        never the author."""
        if "@" not in text:
            return set()
        targets: set[int] = set()
        for login in mentioned_logins(text):
            if login == "all":
                if chat.kind == "group" and notify_queries(tx).mention_all(chat.id):
                    targets.update(tx.member_ids(chat.id))
                continue
            user = tx.user_by_login(login) or tx.user_by_login(login.rstrip(".-"))
            if user is not None and tx.last_read(chat.id, user.id) is not None:
                targets.add(user.id)
        targets.discard(author_id)
        return targets

    async def mentions(self, actor: Actor, query: MentionsQuery) -> MentionList:
        """Recent messages that mention the user, newest first (``unread``: after the read
        cursor of its chat)."""

        def unit(tx: Tx) -> tuple[list[tuple[Message, int]], dict[int, str]]:
            rows = notify_queries(tx).mentions(actor.user_id, query.before, query.limit + 1)
            names = chat_names(tx, actor.user_id, {m.chat_id for m, _ in rows})
            return rows, names

        rows, names = await self.store.read(unit)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursors = {m.id: last_read for m, last_read in rows}
        messages = [m for m, _ in rows]
        if self.visibility is not None:
            messages = await self.visibility.visible(actor.user_id, messages)
        return MentionList(
            mentions=[
                Mention(
                    message=m,
                    chat_name=names[m.chat_id],
                    unread=m.id > cursors[m.id],
                )
                for m in messages
            ],
            has_more=more,
            next_before=rows[-1][0].id if more else None,
        )

    # --- mute and options ---------------------------------------------------------

    async def mute(self, actor: Actor, chat_id: int, body: SetMute) -> Chat:
        """Set what of a chat is muted for the user; all their devices are told."""

        def unit(tx: Tx) -> Chat:
            chat, _ = require_member(tx, chat_id, actor.user_id)
            notify_queries(tx).set_mute(chat_id, actor.user_id, body.mute)
            view = tx.chat_view(chat, actor.user_id)
            self.events.emit(tx, ChatUpdated(chat=view), user_id=actor.user_id)
            return view

        chat = await self.store.write(unit)
        log.info("%s set mute of chat %d to %s", actor.login, chat_id, body.mute)
        return chat

    async def chat_options(self, actor: Actor, chat_id: int, body: ChatOptions) -> Chat:
        """The owner sets whether ``@all`` mentions every member; the members are told."""

        def unit(tx: Tx) -> Chat:
            require_owner(tx, chat_id, actor.user_id)
            notify_queries(tx).set_mention_all(chat_id, body.mention_all)
            chat = tx.chat(chat_id)
            assert chat is not None
            for user_id in tx.member_ids(chat_id):
                view = tx.chat_view(chat, user_id)
                self.events.emit(tx, ChatUpdated(chat=view), user_id=user_id)
            return tx.chat_view(chat, actor.user_id)

        return await self.store.write(unit)

    # --- typing ----------------------------------------------------------------------

    async def typing(self, actor: Actor, chat_id: int) -> TypingResult:
        """Tell the other members the user is typing, unless a notice went out less than
        ``typing_interval`` ago (then nothing is sent: ``sent`` is False)."""
        recipients = await self.store.read(
            lambda tx: (require_member(tx, chat_id, actor.user_id), tx.member_ids(chat_id))[1]
        )
        now = self.clock.now()
        key = (chat_id, actor.user_id)
        last = self._typed.get(key)
        if last is not None and now - last < self.typing_interval:
            return TypingResult(sent=False, expires_at=last + self.typing_ttl)
        self._typed[key] = now
        if len(self._typed) > 10_000:
            self._prune(now)
        expires_at = now + self.typing_ttl
        event = Typing(chat_id=chat_id, login=actor.login, expires_at=expires_at)
        self.events.ephemeral(event, [u for u in recipients if u != actor.user_id])
        return TypingResult(sent=True, expires_at=expires_at)

    def _prune(self, now: float) -> None:
        old = [k for k, at in self._typed.items() if now - at >= self.typing_interval]
        for key in old:
            del self._typed[key]

    # --- read receipts ---------------------------------------------------------------

    async def seen_by(self, actor: Actor, message_id: int) -> SeenBy:
        """Who read a message of a chat of at most ``SEEN_BY_MAX_MEMBERS`` members: for a
        chat message the members whose chat read cursor passed it, for a comment those
        whose read cursor of its thread did (``POST /messages/{root}/thread/read``)."""

        def unit(tx: Tx) -> tuple[Message, SeenBy]:
            message = tx.message(message_id)
            if message is None or tx.last_read(message.chat_id, actor.user_id) is None:
                raise forbidden("no such message, or not in a chat of yours")
            members = tx.member_count(message.chat_id)
            most = limits.SEEN_BY_MAX_MEMBERS
            if members > most:
                raise ApiError(
                    ErrorCode.INVALID,
                    f"seen-by is kept for chats of at most {most} members ({members} here)",
                    limit=most,
                )
            author = tx.message_author_id(message_id)
            assert author is not None
            queries = notify_queries(tx)
            if message.thread_root is None:
                logins = queries.seen_by(message.chat_id, message_id, author)
            else:  # a comment: the thread read cursors (the chat's covers chat messages)
                logins = queries.comment_seen_by(
                    message.chat_id, message.thread_root, message_id, author
                )
            seen = SeenBy(
                message_id=message_id, chat_id=message.chat_id, seen_by=logins, members=members
            )
            return message, seen

        message, seen = await self.store.read(unit)
        if self.visibility is not None:
            await self.visibility.visible_one(actor.user_id, message)
        return seen

    async def privacy(self, actor: Actor) -> PrivacySettings:
        """The user's privacy settings."""
        hide = await self.store.read(lambda tx: notify_queries(tx).hide_receipts(actor.user_id))
        return PrivacySettings(hide_read_receipts=hide)

    async def set_privacy(self, actor: Actor, body: Privacy) -> PrivacySettings:
        """Change the user's privacy settings."""

        def unit(tx: Tx) -> PrivacySettings:
            notify_queries(tx).set_hide_receipts(actor.user_id, body.hide_read_receipts)
            return PrivacySettings(hide_read_receipts=body.hide_read_receipts)

        return await self.store.write(unit)

"""What users do to posted messages: edit, delete, react, pin.

Every change is stored and announced in one unit of work, so each device and a
resuming stream see it exactly once, in order. News of a message goes to those who
may still see it: the chat's members, or (disappearing messages) only the members
for whom it has not disappeared yet; outsiders never hear of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from messenger_protocol import (
    ApiError,
    BaseEvent,
    EditHistory,
    EditMessage,
    ErrorCode,
    Mentioned,
    Message,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    MessageUpdated,
    MessageVersion,
    Pin,
    PinChanged,
    PinList,
    React,
    ReactionChanged,
    ReactionList,
    ThreadActivity,
    decode_event,
    encode_event,
    format_duration,
    limits,
)

from ..clock import Clock
from ..storage import Store, Tx
from ..storage.annotations import annotation_queries
from ..storage.notify import notify_queries
from .actor import Actor, forbidden, require_member, require_visible
from .events import EventService
from .messages import MessageService

__all__ = ["AnnotationService", "FileRelease", "check_emoji", "with_current"]

log = logging.getLogger(__name__)

_REACTION = re.compile(limits.REACTION_PATTERN)


def check_emoji(emoji: str) -> str:
    """A reaction as given, or ``invalid``: 1 to ``MAX_REACTION`` code points, none a space,
    a control or an invisible format character (``REACTION_PATTERN``)."""
    if not emoji or len(emoji) > limits.MAX_REACTION:
        raise ApiError(
            ErrorCode.INVALID,
            f"a reaction is 1 to {limits.MAX_REACTION} characters",
            limit=limits.MAX_REACTION,
        )
    if not _REACTION.match(emoji):
        raise ApiError(
            ErrorCode.INVALID, "a reaction cannot hold spaces, control or invisible characters"
        )
    return emoji


class FileRelease(Protocol):
    """Files of deleted messages (the file service)."""

    def detach(self, tx: Tx, message_id: int) -> list[str]:
        """In the deleting unit: take the message's files off it; their ids."""
        ...

    async def release(self, file_ids: list[str]) -> int:
        """After the commit: collect those no message carries any more."""
        ...


def _fresh(logged: Message, now: Message) -> Message:
    """A message as an event logged it, with the text (or ciphertext: the recipients'
    devices read it), edit mark and quote it has now."""
    return msgspec.structs.replace(
        logged,
        text=now.text,
        encrypted=now.encrypted,
        edited_at=now.edited_at,
        reply_to=now.reply_to,
    )


def with_current(event: BaseEvent, message: Message) -> BaseEvent:
    """A logged event carrying ``message`` (in an older state) as it would be logged now."""
    match event:
        case (
            MessageCreated(message=m)
            | MessageUpdated(message=m)
            | MessageEdited(message=m)
            | Mentioned(message=m)
        ) if m.id == message.id:
            return msgspec.structs.replace(event, message=_fresh(m, message))
        case ThreadActivity(comment=m) if m.id == message.id:
            return msgspec.structs.replace(event, comment=_fresh(m, message))
        case PinChanged(pin=Pin(message=m) as pin) if m.id == message.id:
            return msgspec.structs.replace(
                event, pin=msgspec.structs.replace(pin, message=_fresh(m, message))
            )
    return event


def _first_line(text: str) -> str:
    """What a quote of a text shows (its first line)."""
    return text.strip().split("\n", 1)[0].strip()


def _deleted(message_id: int) -> ApiError:
    return ApiError(ErrorCode.CONFLICT, f"message #{message_id} was deleted")


class AnnotationService:
    """Edits (with their history), deletion tombstones, reactions and pins."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        messages: MessageService,
        *,
        edit_window: int | None = None,
        files: FileRelease | None = None,
        max_reactions: int = limits.MAX_REACTIONS_PER_MESSAGE,
        max_pins: int = limits.PINS_MAX,
        ban_check: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.messages = messages
        self.edit_window = edit_window
        """Seconds after sending a message may be edited (None: always; 0: never)."""
        self.files = files
        self.max_reactions = max_reactions
        self.max_pins = max_pins
        self.ban_check = ban_check
        """Refuses a banned user (``banned``): they may not edit, react or pin, only delete."""

    # --- shared -----------------------------------------------------------------

    async def _not_banned(self, actor: Actor) -> None:
        if self.ban_check is not None:
            await self.ban_check(actor.user_id)

    async def _target(self, actor: Actor, message_id: int, *, admin: bool = False) -> Message:
        """A message the user may see now; an admin (with ``admin``) any message. Unknown,
        foreign and disappeared ids get the same answer."""

        def unit(tx: Tx) -> Message:
            if admin and actor.is_admin:
                message = tx.message(message_id)
                if message is None:
                    raise forbidden("no such message, or not in a chat of yours")
                return message
            return require_visible(tx, message_id, actor.user_id)

        message = await self.store.read(unit)
        visibility = self.messages.visibility
        if visibility is not None:
            message = await visibility.visible_one(actor.user_id, message)
        return message

    def _current(self, tx: Tx, message_id: int) -> Message:
        message = tx.message(message_id)
        if message is None:  # deleted for good meanwhile (disappearing messages)
            raise forbidden("no such message, or not in a chat of yours")
        return self.messages.decorate(tx, [message])[0]

    def _announce(self, tx: Tx, message: Message, event: BaseEvent) -> None:
        """Log ``event`` for everyone who may see ``message``."""
        visibility = self.messages.visibility
        users = visibility.audience(tx, message) if visibility is not None else None
        if users is None:
            self.events.emit(tx, event, chat_id=message.chat_id)
            return
        for user_id in users:
            self.events.emit(tx, event, user_id=user_id)

    def _requote(self, tx: Tx, message_id: int) -> list[int]:
        """After ``message_id`` changed: each reply to it gets its new quote to everyone who
        may see the reply (``message_updated``); the ids of the replies."""
        replies = annotation_queries(tx).replies_to(message_id)
        for reply_id in replies:
            reply = tx.message(reply_id)
            if reply is not None and reply.deleted_at is None:
                current = self.messages.decorate(tx, [reply])[0]
                self._announce(tx, current, MessageUpdated(message=current))
        return replies

    def _relog(self, tx: Tx, message_ids: list[int]) -> None:
        """The logged events that carry these messages take their current text, edit mark
        and quote, so a resume never replays a text or quote they no longer have; a logged
        ``mention`` of a user the message no longer mentions leaves the log."""
        queries = annotation_queries(tx)
        logged = queries.logged(message_ids)
        wanted = set(message_ids)
        # on PostgreSQL the events of this commit's earlier units (a pin, a comment on
        # the message in the same loop turn) are not rows yet: they take the text too
        unnumbered = [e for e in tx.unnumbered_events() if e.message_id in wanted]
        if not logged and not unnumbered:
            return
        current: dict[int, Message | None] = {}
        mentioned: dict[int, set[int]] = {}

        def message_of(message_id: int) -> Message | None:
            if message_id not in current:
                current[message_id] = tx.message(message_id)
            return current[message_id]

        def still_mentions(message_id: int, user_id: int | None) -> bool:
            if message_id not in mentioned:
                mentioned[message_id] = notify_queries(tx).mentioned(message_id)
            return user_id in mentioned[message_id]

        rewritten: dict[bytes, bytes] = {}
        payloads: list[tuple[int, bytes]] = []
        gone: list[int] = []
        for record in logged:
            message = message_of(record.message_id)
            if message is None:
                continue
            if record.name == "mention" and not still_mentions(record.message_id, record.user_id):
                gone.append(record.seq)
                continue
            payload = rewritten.get(record.payload)
            if payload is None:
                payload = encode_event(with_current(decode_event(record.payload), message))
                rewritten[record.payload] = payload
            if payload != record.payload:
                payloads.append((record.seq, payload))
        for handle in unnumbered:
            assert handle.message_id is not None
            message = message_of(handle.message_id)
            if message is None:
                continue
            if handle.name == "mention" and not still_mentions(handle.message_id, handle.user_id):
                handle.logged = False  # as a logged one leaves the log (above)
                continue
            handle.payload = encode_event(with_current(decode_event(handle.payload), message))
        if payloads:
            queries.relog(payloads)
        if gone:
            queries.unlog(gone)

    # --- edit -------------------------------------------------------------------

    async def edit(self, actor: Actor, message_id: int, body: EditMessage) -> Message:
        """Replace the text of one's own message (attachments stay); everyone who may
        see it gets ``message_edited``. The texts it had are kept (:meth:`edits`). Its
        mentions are read again; if its first line changed, each reply's quote follows
        (``message_updated``); the logged events that carry it (or a reply's quote of it)
        take the new text, so a resume never replays the old one."""
        window = self.edit_window
        if window == 0:
            raise ApiError(ErrorCode.FORBIDDEN, "editing messages is turned off on this server")
        max_text = self.messages.max_text
        if len(body.text) > max_text:
            raise ApiError(
                ErrorCode.INVALID, f"text is longer than {max_text} characters", limit=max_text
            )
        await self._not_banned(actor)
        await self._target(actor, message_id)
        now = self.clock.now()

        def unit(tx: Tx) -> Message:
            message = self._current(tx, message_id)
            if tx.message_author_id(message_id) != actor.user_id:
                raise ApiError(ErrorCode.FORBIDDEN, "you can only edit your own messages")
            if message.deleted_at is not None:
                raise _deleted(message_id)
            sealed = body.encrypted
            if message.encrypted is not None and sealed is None:
                # a plaintext edit would leak what the encryption hides (issue 14)
                raise ApiError(
                    ErrorCode.CONFLICT, "an encrypted message is edited with ciphertext only"
                )
            if sealed is not None and (message.encrypted is None or body.text):
                raise ApiError(
                    ErrorCode.INVALID,
                    "only an encrypted message is edited with ciphertext, and without text",
                )
            if window is not None and now - message.created_at > window:
                raise ApiError(
                    ErrorCode.FORBIDDEN,
                    f"a message can be edited for {format_duration(window)} after it is sent",
                    limit=window,
                )
            if sealed is None and not body.text.strip() and not message.attachments:
                raise ApiError(ErrorCode.INVALID, "a message needs text or an attachment")
            if sealed is None and body.text == message.text:
                return message
            if sealed is not None and body.devices is not None:
                self.messages.devices_unchanged(tx, message.chat_id, body.devices)
            ciphertext = None if sealed is None else msgspec.json.encode(sealed).decode()
            annotation_queries(tx).edit_text(message_id, body.text, now, ciphertext)
            edited = self._current(tx, message_id)
            self._announce(tx, edited, MessageEdited(message=edited))
            mentions = self.messages.mentions
            if mentions is not None:
                chat = tx.chat(edited.chat_id)
                assert chat is not None
                mentions.edited(tx, chat, edited, actor.user_id)
            replies = []
            if _first_line(body.text) != _first_line(message.text):
                replies = self._requote(tx, message_id)
            self._relog(tx, [message_id, *replies])
            return edited

        edited = await self.store.write(unit)
        log.info("%s edited message %d", actor.login, message_id)
        return edited

    async def edits(self, actor: Actor, message_id: int) -> EditHistory:
        """Every text a message had, oldest first (its author and admins only); of an
        encrypted message, every ciphertext it had (the server cannot read them)."""
        await self._target(actor, message_id, admin=True)

        def unit(tx: Tx) -> EditHistory:
            message = self._current(tx, message_id)
            if tx.message_author_id(message_id) != actor.user_id and not actor.is_admin:
                raise ApiError(
                    ErrorCode.FORBIDDEN, "only its author and admins see a message's earlier texts"
                )
            versions = annotation_queries(tx).versions(message_id)
            at = message.deleted_at or message.edited_at or message.created_at
            versions.append(MessageVersion(text=message.text, at=at, encrypted=message.encrypted))
            return EditHistory(message_id=message_id, versions=versions)

        return await self.store.read(unit)

    # --- delete -----------------------------------------------------------------

    async def delete(self, actor: Actor, message_id: int) -> Message:
        """Delete one's own message (an admin: any). Its text, earlier texts, reactions and
        files go; a tombstone stays, so threads and replies keep their shape, and everyone
        who may see it gets ``message_deleted`` with the tombstone; each reply's quote
        turns into "deleted" (``message_updated``, and in the log). Deleting twice is
        answered with the tombstone again."""
        await self._target(actor, message_id, admin=True)
        now = self.clock.now()

        def unit(tx: Tx) -> tuple[Message, list[str]]:
            message = self._current(tx, message_id)
            if tx.message_author_id(message_id) != actor.user_id and not actor.is_admin:
                raise ApiError(ErrorCode.FORBIDDEN, "you can only delete your own messages")
            if message.deleted_at is not None:
                return message, []
            files = self.files.detach(tx, message_id) if self.files is not None else []
            queries = annotation_queries(tx)
            pinned = queries.unpin(message.chat_id, message_id)
            queries.tombstone(message_id, now)
            # the tombstone removed the logged events that carry the message; on
            # PostgreSQL those of this commit's earlier units (an edit, a pin in the same
            # loop turn) are not rows yet: they stay out of the log too
            for handle in tx.unnumbered_events():
                if handle.message_id == message_id:
                    handle.logged = False
            tombstone = self._current(tx, message_id)
            gone = MessageDeleted(
                chat_id=message.chat_id, message_id=message_id, tombstone=tombstone
            )
            self._announce(tx, tombstone, gone)
            self._relog(tx, self._requote(tx, message_id))
            if pinned:
                unpinned = PinChanged(
                    chat_id=message.chat_id, message_id=message_id, pinned=False, by=actor.login
                )
                self._announce(tx, tombstone, unpinned)
            return tombstone, files

        tombstone, files = await self.store.write(unit)
        if files and self.files is not None:
            await self.files.release(files)
        log.info("%s deleted message %d", actor.login, message_id)
        return tombstone

    # --- reactions ----------------------------------------------------------------

    async def react(self, actor: Actor, message_id: int, body: React) -> ReactionList:
        """Add a reaction (each user each kind once; at most ``max_reactions`` kinds)."""
        emoji = check_emoji(body.emoji)
        await self._not_banned(actor)
        await self._target(actor, message_id)
        now = self.clock.now()

        def unit(tx: Tx) -> ReactionList:
            message = self._current(tx, message_id)
            if message.deleted_at is not None:
                raise _deleted(message_id)
            queries = annotation_queries(tx)
            kinds = queries.reaction_kinds(message_id)
            if emoji not in kinds and len(kinds) >= self.max_reactions:
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"a message carries at most {self.max_reactions} different reactions",
                    limit=self.max_reactions,
                )
            added = queries.add_reaction(message_id, actor.user_id, emoji, now)
            return self._reacted(tx, actor, message, emoji, added=True, changed=added)

        return await self.store.write(unit)

    async def unreact(self, actor: Actor, message_id: int, emoji: str) -> ReactionList:
        """Take one's reaction back (nothing happens if there was none)."""
        emoji = check_emoji(emoji)
        await self._target(actor, message_id)

        def unit(tx: Tx) -> ReactionList:
            message = self._current(tx, message_id)
            removed = annotation_queries(tx).remove_reaction(message_id, actor.user_id, emoji)
            return self._reacted(tx, actor, message, emoji, added=False, changed=removed)

        return await self.store.write(unit)

    def _reacted(
        self, tx: Tx, actor: Actor, message: Message, emoji: str, *, added: bool, changed: bool
    ) -> ReactionList:
        reactions = annotation_queries(tx).reactions([message.id]).get(message.id, [])
        if changed:
            event = ReactionChanged(
                chat_id=message.chat_id,
                message_id=message.id,
                emoji=emoji,
                login=actor.login,
                added=added,
                reactions=reactions,
            )
            self._announce(tx, message, event)
        return ReactionList(message_id=message.id, reactions=reactions)

    # --- pins -----------------------------------------------------------------------

    @staticmethod
    def _may_pin(tx: Tx, actor: Actor, chat_id: int) -> None:
        """The owner of a group chat, either member of a private one, and admins."""
        chat, _ = require_member(tx, chat_id, actor.user_id)
        if actor.is_admin or chat.kind == "direct":
            return
        if chat.kind == "group" and chat.owner_id == actor.user_id:
            return
        raise ApiError(ErrorCode.FORBIDDEN, "only the chat's owner and admins pin messages")

    async def pin(self, actor: Actor, message_id: int) -> Pin:
        """Pin a message in its chat; the chat hears of it (``pin``)."""
        await self._not_banned(actor)
        await self._target(actor, message_id)
        now = self.clock.now()

        def unit(tx: Tx) -> Pin:
            message = self._current(tx, message_id)
            self._may_pin(tx, actor, message.chat_id)
            if message.deleted_at is not None:
                raise _deleted(message_id)
            queries = annotation_queries(tx)
            pins = queries.pins(message.chat_id)
            for pinned_id, by, at in pins:
                if pinned_id == message_id:
                    return Pin(message=message, pinned_by=by, pinned_at=at)
            if len(pins) >= self.max_pins:
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"a chat has at most {self.max_pins} pinned messages",
                    limit=self.max_pins,
                )
            queries.pin(message.chat_id, message_id, actor.user_id, now)
            pin = Pin(message=message, pinned_by=actor.login, pinned_at=now)
            event = PinChanged(
                chat_id=message.chat_id, message_id=message_id, pinned=True, by=actor.login, pin=pin
            )
            self._announce(tx, message, event)
            return pin

        return await self.store.write(unit)

    async def unpin(self, actor: Actor, message_id: int) -> None:
        """Unpin a message (nothing happens if it was not pinned)."""
        await self._target(actor, message_id)

        def unit(tx: Tx) -> None:
            message = self._current(tx, message_id)
            self._may_pin(tx, actor, message.chat_id)
            if annotation_queries(tx).unpin(message.chat_id, message_id):
                event = PinChanged(
                    chat_id=message.chat_id, message_id=message_id, pinned=False, by=actor.login
                )
                self._announce(tx, message, event)

        await self.store.write(unit)

    async def pins(self, actor: Actor, chat_id: int) -> PinList:
        """The messages pinned in a chat, newest pin first (those the user may still see)."""

        def unit(tx: Tx) -> list[Pin]:
            require_member(tx, chat_id, actor.user_id)
            found: list[Pin] = []
            for message_id, by, at in annotation_queries(tx).pins(chat_id):
                message = tx.message(message_id)
                if message is not None:
                    decorated = self.messages.decorate(tx, [message])[0]
                    found.append(Pin(message=decorated, pinned_by=by, pinned_at=at))
            return found

        pins = await self.store.read(unit)
        visibility = self.messages.visibility
        if visibility is not None and pins:
            alive = {
                m.id for m in await visibility.visible(actor.user_id, [p.message for p in pins])
            }
            pins = [p for p in pins if p.message.id in alive]
        return PinList(chat_id=chat_id, pins=pins)

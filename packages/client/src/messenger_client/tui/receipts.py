"""Typing notices and read receipts: telling a chat this user types, and "seen by".

:class:`Receipts` is the part of the app that sends a typing notice while the user
types in the composer -- at most one per chat every :data:`TYPING_EVERY` seconds, the
server's own limit -- and asks who has read a selected message of the user's, which it
tells the main screen as :class:`~.messages.SeenByChanged`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from messenger_protocol import Message, MessengerError

from .host import Host
from .messages import SeenByChanged
from .tasks import app_work

__all__ = ["TYPING_EVERY", "Receipts"]

log = logging.getLogger(__name__)

TYPING_EVERY = 3.0
"""Seconds between two typing notices to one chat (the server drops closer ones)."""


class Receipts:
    """Typing notices and "seen by", for one app."""

    def __init__(self, app: Host, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self._typed: dict[int, float] = {}
        """Chat id -> when the last typing notice went to it."""

    def typed(self, chat_id: int) -> None:
        """The user typed in ``chat_id``'s composer: tell the chat, unless it was told
        less than :data:`TYPING_EVERY` seconds ago."""
        if self.app.connection.state != "connected":
            return
        now = self.clock()
        if now - self._typed.get(chat_id, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typed[chat_id] = now
        self._send_typing(chat_id)

    def sent(self, chat_id: int) -> None:
        """A message went to ``chat_id``: the next key typed there says so again."""
        self._typed.pop(chat_id, None)

    @app_work(group="typing")
    async def _send_typing(self, chat_id: int) -> None:
        client = self.app.client
        if client is None:
            return
        try:
            await client.typing(chat_id)
        except MessengerError as exc:
            log.debug("typing notice to %d: %s", chat_id, exc)

    def seen_by(self, message: Message, *, in_thread: bool = False) -> None:
        """Ask who has read ``message``; the main screen shows it while it is selected.
        The chat's line and the thread panel's are asked in workers of their own: a newer
        question about one cancels the older one about it, never the other's."""
        if in_thread:
            self._thread_seen_by(message)
        else:
            self._chat_seen_by(message)

    @app_work(group="seen", exclusive=True)
    async def _chat_seen_by(self, message: Message) -> None:
        await self._ask_seen_by(message)

    @app_work(group="thread-seen", exclusive=True)
    async def _thread_seen_by(self, message: Message) -> None:
        await self._ask_seen_by(message)

    async def _ask_seen_by(self, message: Message) -> None:
        client, main = self.app.client, self.app.main
        if client is None or main is None or not message.id:
            return
        try:
            seen = await client.seen_by(message.id)
        except MessengerError as exc:
            log.debug("seen by of %d: %s", message.id, exc)
            return
        main.post_message(SeenByChanged(message.id, seen.seen_by, seen.members))

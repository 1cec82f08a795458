"""Reading chats: opening one, paging its history, and marking it read as it is shown.

:class:`ChatReader` is the part of the app that decides what of a chat is on screen and
what counts as read: a chat opens at its "new messages" line, older and newer pages
load as the view asks, Home and End jump, and messages count as read only as far as
the chat in front shows them (never because history loaded). Its network calls run as
the app's workers (they outlive screens); each coroutine is made when its worker starts,
as ``@work`` does, so a worker that never starts leaves none behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Literal

from textual.worker import Worker

from messenger_protocol import ApiError, Chat, MessengerError

from ..api import ServerUnavailable
from .host import Host
from .robust import describe_error
from .store import PAGE_SIZE

__all__ = ["LATEST_PAGE", "ChatReader"]

log = logging.getLogger(__name__)

LATEST_PAGE = 50
"""Messages fetched from the server when a chat is opened (older ones load on scroll);
on connect the server's ``history_on_connect`` instead."""


class ChatReader:
    """Opening chats, their history pages and read marks, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.chats_fresh = False
        """The chat in front is settled since connecting (:meth:`settle`): the server's
        chat list (unread counts, read cursors) arrived and the chat opened at its
        divider. Until then nothing is marked read (the cached counts may be old, and
        the replay of missed events may have scrolled the view past them)."""
        self._marked: dict[int, int] = {}

    def _start(
        self,
        work: Callable[[], Coroutine[None, None, None]],
        *,
        name: str,
        group: str,
        exclusive: bool = False,
    ) -> None:
        """Run ``work`` as the app's worker (the coroutine is made when it starts)."""
        started: Worker[None] = self.app.run_worker(
            work, name=name, group=group, exclusive=exclusive
        )
        log.debug("worker %s started", started.name)

    def reading(self, chat_id: int) -> bool:
        """Whether the user is looking at the bottom of this chat right now."""
        main = self.app.main
        return main is not None and self.looking_at(chat_id) and main.view.pinned

    def looking_at(self, chat_id: int) -> bool:
        """Whether this chat is on screen, in front, in a focused terminal."""
        main = self.app.main
        if main is None or main.current_chat != chat_id or not self.app.app_focus:
            return False
        stack = self.app._screen_stacks.get(self.app._current_mode) or []
        # the stack is empty while the app shuts down, and late view messages still come
        return bool(stack) and stack[-1] is main

    def open_chat(self, chat_id: int, *, connect: bool = False) -> None:
        """Show a chat from what is known at once, then bring it up to date (``connect``:
        the session starts, and the page is the server's history on connect)."""
        if self.show_known(chat_id):
            self.load_latest(chat_id, connect)

    def show_known(self, chat_id: int) -> bool:
        """Show a chat from what is known (the store, the cache); False: no such chat."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return False
        chat = store.chats.get(chat_id)
        if chat is None:
            return False
        main.show_chat(chat, store.timeline(chat_id))
        self.open_unread(chat)
        if self.app.runner is not None:
            self.app.runner.current_chat_id = chat_id
        self.mark_shown()
        self.app.refresh_chat_list()
        return True

    def load_latest(self, chat_id: int, connect: bool = False) -> None:
        """Bring a chat's newest page (a worker: the newest request wins)."""
        self._start(
            partial(self.load_latest_now, chat_id, connect),
            name="latest",
            group="latest",
            exclusive=True,
        )

    async def load_latest_now(self, chat_id: int, connect: bool = False) -> None:
        """The newest page of a chat: on connect as many as the server's history on
        connect says (the login answer, or the session's for a saved token)."""
        client, store, main = self.app.client, self.app.store, self.app.main
        if client is None or store is None or main is None:
            return
        limit = LATEST_PAGE
        if connect:
            session = await self.app.known_session()
            if self.app.client is not client:
                return  # the session is over
            limit = session.history_on_connect if session is not None else LATEST_PAGE
        try:
            page = await client.history(chat_id, limit=limit)
        except ServerUnavailable:
            return
        except ApiError as exc:
            self.app.notify(describe_error(exc), severity="error")
            return
        timeline = store.merge_latest(chat_id, page)
        if main.current_chat == chat_id:
            main.view.show(timeline)
            self.mark_shown()

    def load_older(self, chat_id: int, before: int | None) -> None:
        """The page before ``before`` (from the cache while offline)."""
        self._start(partial(self._load_older, chat_id, before), name="older", group="older")

    async def _load_older(self, chat_id: int, before: int | None) -> None:
        client, store, main = self.app.client, self.app.store, self.app.main
        if client is None or store is None or main is None:
            return
        timeline = store.timeline(chat_id)
        if before is None:
            return  # nothing shown yet: the newest page is on its way, paging starts there
        try:
            if self.app.connection.state != "connected":
                raise ServerUnavailable("offline: reading the cache")
            page = await client.history(chat_id, before=before, limit=PAGE_SIZE)
            store.add_older(chat_id, page.messages, page.has_more)
        except ServerUnavailable:
            # Offline: the cache is all there is; whether the server has more is known
            # only when it answers again, so an exhausted cache does not end paging.
            cached = store.older_from_cache(chat_id)
            if not cached:
                return  # asked again when the connection is back (older_loaded)
            store.add_older(chat_id, cached, has_more=True, from_cache=True)
        except ApiError as exc:
            timeline.has_more = False
            log.info("older history of %d: %s", chat_id, exc)
        if main.current_chat == chat_id:
            main.view.older_loaded()

    async def settle(self, chat: Chat | None) -> None:
        """After (re)connecting, with the server's chat list: bring the chat in front
        (``chat`` as the server just told it) up to date and open it at the divider of
        its read cursor -- the cursor of the last disconnect, which nothing has moved
        since -- before anything counts as read again."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return
        if chat is not None:
            await self.load_latest_now(chat.id, connect=True)
            if chat.unread and main.current_chat == chat.id:
                oldest = store.timeline(chat.id).oldest_id
                if oldest is None or oldest > chat.last_read:
                    # the first missed message is older than the page: the page after it
                    await self._jump(chat.id, chat.last_read)
                if main.current_chat == chat.id:
                    main.view.open_at_divider(chat.last_read, again=True)
        self.chats_fresh = True
        self.mark_shown()

    def open_unread(self, chat: Chat) -> None:
        """Open a chat at its "new messages" line; when more are unread than its newest
        page holds, go straight to the page after the read cursor."""
        store, main = self.app.store, self.app.main
        if store is None or main is None or not chat.unread:
            return
        main.view.open_at_divider(chat.last_read)
        timeline = store.timeline(chat.id)
        oldest = timeline.oldest_id
        if chat.unread > LATEST_PAGE and (oldest is None or oldest > chat.last_read):
            self.jump(chat.id, chat.last_read)

    def jump(self, chat_id: int, after: int | None) -> None:
        """Home (``after=0``), the page after the read cursor, or End (None)."""
        self._start(partial(self._jump, chat_id, after), name="jump", group="jump", exclusive=True)

    async def _jump(self, chat_id: int, after: int | None) -> None:
        """Home (``after=0``): the chat's first page at once, one request however long the
        chat; the page after the read cursor; End in a window into the past (None): its
        newest page."""
        client, store, main = self.app.client, self.app.store, self.app.main
        if client is None or store is None or main is None:
            return
        try:
            if after is not None:
                page = await client.history(chat_id, after=after, limit=PAGE_SIZE)
            else:
                page = await client.history(chat_id, limit=LATEST_PAGE)
        except MessengerError as exc:
            self.app.notify(describe_error(exc, self.app.server), severity="error")
            if after == 0 and main.current_chat == chat_id:
                main.view.top_of_loaded()
            return
        timeline = store.jump(chat_id, page, after=after)
        if main.current_chat == chat_id:
            where: Literal["top", "bottom"] | None = "top" if after == 0 else "bottom"
            main.view.show(timeline, at=where if not main.view.reveal_pending else None)
            self.mark_shown()

    def load_newer(self, chat_id: int, after: int) -> None:
        """The page after ``after`` (a window into the past grows towards now)."""
        self._start(partial(self._load_newer, chat_id, after), name="newer", group="newer")

    async def _load_newer(self, chat_id: int, after: int) -> None:
        client, store, main = self.app.client, self.app.store, self.app.main
        if client is None or store is None or main is None:
            return
        try:
            page = await client.history(chat_id, after=after, limit=PAGE_SIZE)
        except ServerUnavailable:
            return
        except ApiError as exc:
            self.app.notify(describe_error(exc), severity="error")
            return
        store.add_newer(chat_id, page)
        if main.current_chat == chat_id:
            main.view.newer_loaded()

    def mark_shown(self) -> None:
        """Messages count as read as they are shown: up to the newest one on screen of
        the chat in front (never because history loaded or a replay arrived, nor before
        the chat settled after connecting, nor while it waits to open at its divider)."""
        store, main = self.app.store, self.app.main
        if store is None or main is None or main.current_chat is None or not self.chats_fresh:
            return
        chat_id = main.current_chat
        if not self.looking_at(chat_id) or main.view.reveal_pending:
            return
        up_to = main.view.last_shown_id()
        if up_to is None:
            return
        chat = store.chats.get(chat_id)
        known = max(self._marked.get(chat_id, 0), chat.last_read if chat is not None else 0)
        store.read_up_to(chat_id, up_to)
        self.app.refresh_chat_list()
        if up_to > known:
            self._marked[chat_id] = up_to
            self._mark_read(chat_id, up_to)

    def _mark_read(self, chat_id: int, up_to: int) -> None:
        self._start(partial(self._send_read, chat_id, up_to), name="mark read", group="read")

    async def _send_read(self, chat_id: int, up_to: int) -> None:
        client = self.app.client
        if client is None:
            return
        try:
            await client.mark_read(chat_id, up_to)
        except MessengerError as exc:
            self._marked.pop(chat_id, None)
            log.info("mark read failed: %s", exc)

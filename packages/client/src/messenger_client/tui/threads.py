"""Threads: opening the panel on a message, and what is read and what is waiting.

The panel itself (root, comments, its composer) lives in the main screen; opening it
shows the cached comments at once, then the server's, and marks the thread read.
:class:`Threads` hears every live event (:meth:`Threads.event`):

- a comment from someone else in the thread on screen is marked read on the server
  at once, so the user's other clients and unread counts agree;
- a comment in a thread that is not open counts as unread until the thread is read
  here or on another client (``ReadMarker`` with ``thread_root``);
  :meth:`Threads.actions` puts "Threads with new comments" in the command palette.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from messenger_protocol import (
    ApiError,
    Event,
    Message,
    MessageCreated,
    MessengerError,
    ReadMarker,
    ThreadActivity,
)

from .. import commands as slash
from ..api import Client, ServerUnavailable
from .host import Host
from .robust import describe_error
from .tasks import app_work

__all__ = ["Threads"]

log = logging.getLogger(__name__)


def _comment_of(event: Event) -> Message | None:
    match event:
        case MessageCreated(message=message) if message.thread_root is not None:
            return message
        case ThreadActivity(comment=comment):
            return comment
        case _:
            return None


class Threads:
    """The thread panel's contents and the threads' read state, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self._marked: dict[int, int] = {}
        """Thread root id -> newest comment id already marked read."""
        self._unread: dict[int, list[Message]] = {}
        """Thread root id -> comments from others not read yet (newest last)."""

    # --- opening --------------------------------------------------------------------

    def open(self, root: Message) -> None:
        """Open the thread panel: cached comments at once, then the server's."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return
        main.show_thread(root, store.thread(root))
        self._load_thread(root.id)

    @app_work(exclusive=True, group="thread")
    async def _load_thread(self, root_id: int) -> None:
        app = self.app
        client, store, main = app.client, app.store, app.main
        if client is None or store is None or main is None:
            return
        try:
            thread = await client.thread(root_id)
        except ServerUnavailable:
            return
        except ApiError as exc:
            app.notify(describe_error(exc), severity="error")
            return
        timeline = store.merge_thread(thread.root, thread.comments)
        if main.thread_root is not None and main.thread_root.id == root_id:
            main.show_thread(thread.root, timeline)
            newest = timeline.newest_id
            if newest is not None and thread.unread:
                with contextlib.suppress(MessengerError):
                    await client.mark_thread_read(root_id, newest)

    @app_work(exclusive=True, group="thread")
    async def open_by_id(self, message_id: int) -> None:
        """Open the thread of a message (``/thread <id>``; a comment opens its root's)."""
        app = self.app
        client = app.client
        if client is None:
            return
        try:
            root = await client.message(message_id)
        except MessengerError as exc:
            app.notify(describe_error(exc, app.server), severity="error")
            return
        if root.thread_root is not None:
            root = await client.message(root.thread_root)
        self.open(root)

    # --- read state -----------------------------------------------------------------

    def event(self, event: Event) -> None:
        """Keep the thread on screen read; count comments in the others as unread."""
        unread = self._unread
        if isinstance(event, ReadMarker) and event.thread_root is not None:
            unread.pop(event.thread_root, None)
            return
        comment = _comment_of(event)
        app = self.app
        main, client, store = app.main, app.client, app.store
        if comment is None or main is None or client is None or store is None:
            return
        if comment.author == store.me or comment.thread_root is None:
            return  # our own comments never count as unread
        root = main.thread_root
        if root is None or comment.thread_root != root.id or not main.thread_panel.display:
            if isinstance(event, ThreadActivity):  # only threads the user takes part in
                waiting = unread.setdefault(comment.thread_root, [])
                if all(c.id != comment.id for c in waiting):
                    waiting.append(comment)
            return
        unread.pop(root.id, None)
        if comment.id <= self._marked.get(root.id, 0):
            return
        self._marked[root.id] = comment.id
        app.run_worker(_mark_read(client, root.id, comment.id), group="thread-read")

    def unread(self) -> dict[int, list[Message]]:
        """Threads with comments not read yet: root id -> those comments (the open one
        aside)."""
        main = self.app.main
        if main is not None and main.thread_root is not None and main.thread_panel.display:
            self._unread.pop(main.thread_root.id, None)
        return self._unread

    def open_newest_unread(self) -> None:
        """Open the thread with the most recent unread comment."""
        app = self.app
        unread = self.unread()
        if not unread or app.main is None:
            app.notify("No threads with new comments", timeout=3)
            return
        root_id = max(unread, key=lambda r: unread[r][-1].id)
        chat_id = unread[root_id][-1].chat_id
        if app.main.current_chat != chat_id:
            app.open_chat(chat_id)  # the thread beside the chat it belongs to
        line = f"/thread {root_id}"
        app.run_command(slash.ParsedCommand("thread", {"message_id": root_id}, line), chat_id)

    def actions(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Command-palette entries for threads."""
        unread = self.unread()
        comments = sum(len(c) for c in unread.values())
        if unread:
            help_text = f"{comments} new in {len(unread)} thread(s); opens the newest"
        else:
            help_text = "Nothing new in your threads"
        return [("Threads with new comments", help_text, self.open_newest_unread)]


async def _mark_read(client: Client, root_id: int, up_to: int) -> None:
    try:
        await client.mark_thread_read(root_id, up_to)
    except MessengerError as exc:
        log.info("thread %d not marked read: %s", root_id, exc)

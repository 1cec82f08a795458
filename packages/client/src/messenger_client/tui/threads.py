"""Thread read state around the panel: what is read, and what is waiting.

The panel itself (root, comments, its composer) lives in the main screen; opening it
marks the thread read. The app calls :func:`thread_event` for every live event:

- a comment from someone else in the thread on screen is marked read on the server
  at once, so the user's other clients and unread counts agree;
- a comment in a thread that is not open counts as unread until the thread is read
  here or on another client (``ReadMarker`` with ``thread_root``);
  :func:`thread_actions` puts "Threads with new comments" in the command palette.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

from messenger_protocol import (
    Event,
    Message,
    MessageCreated,
    MessengerError,
    ReadMarker,
    ThreadActivity,
)

from .. import commands as slash
from ..api import Client
from .host import Host

__all__ = ["thread_actions", "thread_event", "unread_threads"]

log = logging.getLogger(__name__)

_marked: weakref.WeakKeyDictionary[Host, dict[int, int]] = weakref.WeakKeyDictionary()
"""Per app: thread root id -> newest comment id already marked read."""
_unread: weakref.WeakKeyDictionary[Host, dict[int, list[Message]]] = weakref.WeakKeyDictionary()
"""Per app: thread root id -> comments from others not read yet (newest last)."""


def _comment_of(event: Event) -> Message | None:
    match event:
        case MessageCreated(message=message) if message.thread_root is not None:
            return message
        case ThreadActivity(comment=comment):
            return comment
        case _:
            return None


def thread_event(app: Host, event: Event) -> None:
    """Keep the thread on screen read; count comments in the others as unread."""
    unread = _unread.setdefault(app, {})
    if isinstance(event, ReadMarker) and event.thread_root is not None:
        unread.pop(event.thread_root, None)
        return
    comment = _comment_of(event)
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
    marked = _marked.setdefault(app, {})
    if comment.id <= marked.get(root.id, 0):
        return
    marked[root.id] = comment.id
    app.run_worker(_mark_read(client, root.id, comment.id), group="thread-read")


def unread_threads(app: Host) -> dict[int, list[Message]]:
    """Threads with comments not read yet: root id -> those comments (the open one aside)."""
    unread = _unread.setdefault(app, {})
    main = app.main
    if main is not None and main.thread_root is not None and main.thread_panel.display:
        unread.pop(main.thread_root.id, None)
    return unread


def open_newest_unread(app: Host) -> None:
    """Open the thread with the most recent unread comment."""
    unread = unread_threads(app)
    if not unread or app.main is None:
        app.notify("No threads with new comments", timeout=3)
        return
    root_id = max(unread, key=lambda r: unread[r][-1].id)
    chat_id = unread[root_id][-1].chat_id
    if app.main.current_chat != chat_id:
        app.open_chat(chat_id)  # the thread beside the chat it belongs to
    line = f"/thread {root_id}"
    app.run_command(slash.ParsedCommand("thread", {"message_id": root_id}, line), chat_id)


def thread_actions(app: Host) -> list[tuple[str, str, Callable[[], object]]]:
    """Command-palette entries for threads."""
    unread = unread_threads(app)
    comments = sum(len(c) for c in unread.values())
    if unread:
        help_text = f"{comments} new in {len(unread)} thread(s); opens the newest"
    else:
        help_text = "Nothing new in your threads"
    return [("Threads with new comments", help_text, lambda: open_newest_unread(app))]


async def _mark_read(client: Client, root_id: int, up_to: int) -> None:
    try:
        await client.mark_thread_read(root_id, up_to)
    except MessengerError as exc:
        log.info("thread %d not marked read: %s", root_id, exc)

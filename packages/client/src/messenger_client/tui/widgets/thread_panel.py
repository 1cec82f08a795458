"""Keeping the open thread panel read: comments that arrive while it shows count as read.

The panel itself (root, comments, its composer) lives in the main screen; opening it
marks the thread read. This module covers what happens afterwards: the app calls
:func:`thread_event` for every live event, and a comment from someone else in the
thread on screen moves the user's thread read cursor on the server, so their other
clients and their unread counts agree.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING

from messenger_protocol import ApiError, Event, Message, MessageCreated, ThreadActivity

from ...api import Client, ServerUnavailable

if TYPE_CHECKING:
    from ..app import MessengerApp

__all__ = ["thread_event"]

log = logging.getLogger(__name__)

_marked: weakref.WeakKeyDictionary[MessengerApp, dict[int, int]] = weakref.WeakKeyDictionary()
"""Per app: thread root id -> newest comment id already marked read."""


def _comment_of(event: Event) -> Message | None:
    match event:
        case MessageCreated(message=message) if message.thread_root is not None:
            return message
        case ThreadActivity(comment=comment):
            return comment
        case _:
            return None


def thread_event(app: MessengerApp, event: Event) -> None:
    """A comment in the thread on screen is read as it arrives."""
    comment = _comment_of(event)
    main, client, store = app.main, app.client, app.store
    if comment is None or main is None or client is None or store is None:
        return
    root = main.thread_root
    if root is None or comment.thread_root != root.id or not main.thread_panel.display:
        return
    if comment.author == store.me:
        return  # our own comments never count as unread
    marked = _marked.setdefault(app, {})
    if comment.id <= marked.get(root.id, 0):
        return
    marked[root.id] = comment.id
    app.run_worker(_mark_read(client, root.id, comment.id), group="thread-read")


async def _mark_read(client: Client, root_id: int, up_to: int) -> None:
    try:
        await client.mark_thread_read(root_id, up_to)
    except (ApiError, ServerUnavailable) as exc:
        log.info("thread %d not marked read: %s", root_id, exc)

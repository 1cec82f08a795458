"""How a message row is read, for every query module that returns messages (no driver
here: services may import the query modules, never a database driver)."""

from __future__ import annotations

from typing import Any

import msgspec

from messenger_protocol import Encrypted, Message, quote_of

__all__ = ["MESSAGE_COLUMNS", "MESSAGE_FROM", "message_row", "quote_of"]

MESSAGE_COLUMNS = (
    "m.id, m.chat_id, u.login, m.text, m.created_at, m.client_id, m.thread_root, "
    "m.comment_count, m.last_comment_at, m.scheduled_id, m.edited_at, m.deleted_at, "
    "m.reply_to, ru.login, r.text, r.deleted_at, m.encrypted"
)
MESSAGE_FROM = (
    "messages m JOIN users u ON u.id = m.author_id"
    " LEFT JOIN messages r ON r.id = m.reply_to LEFT JOIN users ru ON ru.id = r.author_id"
)


def message_row(row: Any) -> Message:
    """A message from the columns of :data:`MESSAGE_COLUMNS`, in that order."""
    reply = None if row[12] is None else quote_of(row[12], row[13], row[14], row[15] is not None)
    return Message(
        id=row[0],
        chat_id=row[1],
        author=row[2],
        text=row[3],
        created_at=row[4],
        client_id=row[5],
        thread_root=row[6],
        comment_count=row[7],
        last_comment_at=row[8],
        scheduled_id=row[9],
        edited_at=row[10],
        deleted_at=row[11],
        reply_to=reply,
        encrypted=None if row[16] is None else msgspec.json.decode(row[16], type=Encrypted),
    )

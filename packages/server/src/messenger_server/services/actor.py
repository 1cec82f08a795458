"""Who is acting, and the access rules every chat operation shares."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_protocol import ApiError, ErrorCode, Message

from ..storage import ChatRecord, Tx

__all__ = [
    "Actor",
    "address_ip",
    "chat_names",
    "forbidden",
    "require_member",
    "require_owner",
    "require_visible",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user behind a request."""

    user_id: int
    login: str
    session_id: str
    is_admin: bool = False
    address: str = ""


def address_ip(peer: str) -> str:
    """The IP part of an ``ip:port`` peer address."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host.strip("[]")


def forbidden(message: str = "you are not a member of this chat") -> ApiError:
    """The one answer for a chat that does not exist or that the user may not see."""
    return ApiError(ErrorCode.FORBIDDEN, message)


def require_member(tx: Tx, chat_id: int, user_id: int) -> tuple[ChatRecord, int]:
    """The chat and the user's read cursor; ``forbidden`` if either is missing.

    A chat that does not exist is refused the same way, so ids cannot be probed.
    """
    found = tx.member_chat(chat_id, user_id)
    if found is None:
        raise forbidden()
    return found


def require_owner(tx: Tx, chat_id: int, user_id: int) -> ChatRecord:
    """The group chat this user owns; ``forbidden`` otherwise."""
    chat, _ = require_member(tx, chat_id, user_id)
    if chat.kind != "group" or chat.owner_id != user_id:
        raise forbidden("only the owner of this chat may do that")
    return chat


def require_visible(tx: Tx, message_id: int, user_id: int) -> Message:
    """A message of a chat the user belongs to; one answer for unknown and forbidden
    ids alike, so nobody can learn which ids exist."""
    message = tx.message(message_id)
    if message is None or tx.last_read(message.chat_id, user_id) is None:
        raise forbidden("no such message, or not in a chat of yours")
    return message


def chat_names(tx: Tx, user_id: int, chat_ids: set[int]) -> dict[int, str]:
    """Each chat's name as the user sees it (``@peer`` for a private conversation)."""
    names: dict[int, str] = {}
    for chat_id in chat_ids:
        chat = tx.chat(chat_id)
        if chat is not None:
            names[chat_id] = (
                tx.chat_view(chat, user_id).name if chat.kind == "direct" else chat.name
            )
    return names

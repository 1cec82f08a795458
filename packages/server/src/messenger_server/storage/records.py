"""Rows the services need beyond the protocol models (secrets, internal ids)."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_protocol import ChatKind

__all__ = ["ChatRecord", "EventRecord", "LinkRecord", "SessionRecord", "UserRecord"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user row."""

    id: int
    login: str
    password_hash: str
    created_at: float
    is_admin: bool
    last_seen: float | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session row joined with its user."""

    id: str
    user_id: int
    login: str
    is_admin: bool
    device: str
    created_at: float
    last_address: str
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """A chat row with its owner's login."""

    id: int
    kind: ChatKind
    name: str
    owner_id: int | None
    owner_login: str | None
    created_at: float
    last_message_id: int
    last_message_at: float | None


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """An invite key of a group chat."""

    key: str
    chat_id: int
    created_at: float
    expires_at: float | None
    max_uses: int | None
    uses: int
    revoked_at: float | None

    def usable(self, now: float) -> bool:
        """Not revoked, not expired, not used up."""
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and (self.max_uses is None or self.uses < self.max_uses)
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One logged event: its sequence number, SSE name and encoded JSON."""

    seq: int
    name: str
    payload: bytes

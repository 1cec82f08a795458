"""Rows the services need beyond the protocol models (secrets, internal ids)."""

from __future__ import annotations

from dataclasses import dataclass

from messenger_protocol import ChatKind

__all__ = ["ChatRecord", "EventHandle", "EventRecord", "LinkRecord", "SessionRecord", "UserRecord"]


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
    expired: bool = False
    """It ended because it expired (see :meth:`~.base.Tx.expire_session`)."""


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
    encrypted: bool = False
    """End-to-end encrypted (issue 14): the owner chose it when creating the group."""


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
    """One logged event: its sequence number, SSE name and encoded JSON.

    ``chat_id`` / ``user_id`` (its audience) are filled in by
    :meth:`~messenger_server.storage.EventQueries.events_range` only.
    """

    seq: int
    name: str
    payload: bytes
    chat_id: int | None = None
    user_id: int | None = None
    except_late: int | None = None
    """A chat's event that skips the members whose copy of this message came late."""


class EventHandle:
    """An event appended in a unit of work; its ``seq`` is known once the unit commits.

    PostgreSQL numbers a group's events as the last statement before COMMIT (so
    seq order is commit order); read :attr:`seq` in an after-commit callback.
    """

    __slots__ = (
        "_seq", "chat_id", "created_at", "except_late", "logged", "message_id", "name", "payload",
        "user_id",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        payload: bytes,
        chat_id: int | None,
        user_id: int | None,
        now: float,
        message_id: int | None = None,
        except_late: int | None = None,
    ) -> None:
        self.name = name
        self.message_id = message_id
        self.except_late = except_late
        self.payload = payload
        self.chat_id = chat_id
        self.user_id = user_id
        self.created_at = now
        self.logged = True
        """False: numbered and published, but kept out of the log (a unit of the same
        commit removed what it carries, as a delete removes its message's logged events)."""
        self._seq: int | None = None

    @property
    def seq(self) -> int:
        """The sequence number (only after commit)."""
        if self._seq is None:
            raise RuntimeError("the event is numbered at commit; read seq after commit")
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._seq = value

"""Queries of the admin screen, the admin endpoints and the admin CLI: users with their
counts, and the numbers of ``stats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .base import Tx
from .sql import Connection, connection

__all__ = ["AdminQueries", "AdminUserRecord", "SqlAdminQueries", "admin_queries"]

RECENT_SCAN = 100_000
"""Newest messages looked at when counting the recent ones (ids grow with time)."""


@dataclass(frozen=True, slots=True)
class AdminUserRecord:
    """A user as an admin sees them."""

    id: int
    login: str
    created_at: float
    is_admin: bool
    last_login_at: float | None
    last_login_address: str | None
    messages: int
    complaints: int
    banned_until: float | None


class AdminQueries(Protocol):
    """What the admin tools need of the database."""

    def admin_users(self, now: float) -> list[AdminUserRecord]:
        """Every user by login, with last login, message and complaint counts, running ban."""
        ...

    def user_count(self) -> int:
        """Users registered."""
        ...

    def messages_since(self, since: float) -> int:
        """Messages and comments posted after ``since`` (among the newest ``RECENT_SCAN``)."""
        ...

    def open_complaint_count(self) -> int:
        """Complaints waiting for an admin."""
        ...

    def banned_user_count(self, now: float) -> int:
        """Users with a running ban."""
        ...

    def pending_scheduled_count(self) -> int:
        """Scheduled messages not yet sent."""
        ...


class SqlAdminQueries:
    """:class:`AdminQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _count(self, sql: str, *args: object) -> int:
        return int(self.conn.execute(sql, args).fetchone()[0])

    def admin_users(self, now: float) -> list[AdminUserRecord]:
        """Every user by login, with last login, message and complaint counts, running ban."""
        rows = self.conn.execute(
            "SELECT u.id, u.login, u.created_at, u.is_admin,"
            " (SELECT l.at FROM logins l WHERE l.user_id = u.id AND l.success = 1"
            "  ORDER BY l.id DESC LIMIT 1),"
            " (SELECT l.address FROM logins l WHERE l.user_id = u.id AND l.success = 1"
            "  ORDER BY l.id DESC LIMIT 1),"
            " (SELECT count(*) FROM messages m WHERE m.author_id = u.id),"
            " (SELECT count(DISTINCT c.author_id) FROM complaints c"
            "  WHERE c.target_id = u.id AND c.counted = 1),"
            " (SELECT max(b.until) FROM bans b WHERE b.user_id = u.id AND b.lifted_at IS NULL"
            "  AND b.until > ?)"
            " FROM users u ORDER BY u.login",
            (now,),
        ).fetchall()
        return [
            AdminUserRecord(
                id=r[0],
                login=r[1],
                created_at=r[2],
                is_admin=bool(r[3]),
                last_login_at=r[4],
                last_login_address=r[5],
                messages=r[6],
                complaints=r[7],
                banned_until=r[8],
            )
            for r in rows
        ]

    def user_count(self) -> int:
        """Users registered."""
        return self._count("SELECT count(*) FROM users")

    def messages_since(self, since: float) -> int:
        """Messages and comments posted after ``since`` (among the newest ``RECENT_SCAN``)."""
        # the newest rows only: ids grow with time, so this stays an index walk
        return self._count(
            "SELECT count(*) FROM (SELECT created_at FROM messages ORDER BY id DESC"
            " LIMIT ?) AS recent WHERE created_at > ?",
            RECENT_SCAN,
            since,
        )

    def open_complaint_count(self) -> int:
        """Complaints waiting for an admin."""
        return self._count("SELECT count(*) FROM complaints WHERE state = 'open'")

    def banned_user_count(self, now: float) -> int:
        """Users with a running ban."""
        return self._count(
            "SELECT count(DISTINCT user_id) FROM bans WHERE lifted_at IS NULL AND until > ?", now
        )

    def pending_scheduled_count(self) -> int:
        """Scheduled messages not yet sent."""
        return self._count("SELECT count(*) FROM scheduled WHERE state = 'pending'")


def admin_queries(tx: Tx) -> AdminQueries:
    """The admin queries of a unit of work."""
    return SqlAdminQueries(connection(tx))

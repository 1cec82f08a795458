"""Queries of the moderation tables: complaints, bans, the audit log, rate windows.

:class:`ModerationQueries` is what the moderation service and the admin CLI need;
:class:`SqlModerationQueries` runs it on any :class:`~.sql.Connection`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

from messenger_protocol import Complaint, format_duration, format_time

from ..states import COMPLAINT, sources
from .base import Tx
from .sql import Connection, connection, marks

__all__ = ["AuditRecord", "ModerationQueries", "SqlModerationQueries", "moderation_queries"]

_COMPLAINT_COLUMNS = (
    "c.id, a.login, t.login, c.reason, c.created_at, c.message_id, c.state, c.quoted"
    " FROM complaints c JOIN users a ON a.id = c.author_id JOIN users t ON t.id = c.target_id"
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log: who did what to whom, when, why."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: str


def _complaint(row: Any) -> Complaint:
    return Complaint(
        id=int(row[0]),
        author=str(row[1]),
        target=str(row[2]),
        reason=str(row[3]),
        created_at=float(row[4]),
        message_id=None if row[5] is None else int(row[5]),
        state=str(row[6]),  # type: ignore[arg-type]
        quoted=str(row[7]),
    )


class ModerationQueries(Protocol):
    """What moderation needs of the database."""

    def add_audit(self, now: float, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append one line to the audit log."""
        ...

    def audit(self, limit: int) -> list[AuditRecord]:
        """The newest ``limit`` lines of the audit log, oldest first."""
        ...

    def newest_audit_id(self) -> int:
        """Id of the newest audit line (0 when there is none)."""
        ...

    def cli_ban_targets(self, after: int) -> list[str]:
        """Logins the admin CLI banned or unbanned after audit line ``after``, in order."""
        ...

    def active_ban(self, user_id: int, now: float) -> tuple[float, str] | None:
        """``(until, reason)`` of the longest ban of a user still running at ``now``."""
        ...

    def running_bans(self, now: float) -> dict[str, float]:
        """``until`` of every running ban, by lower-case login."""
        ...

    def ban(
        self, user_id: int, login: str, now: float, seconds: float, reason: str, by: str
    ) -> float:
        """Ban a user from sending for ``seconds``; open complaints about them are actioned.

        The complaint count starts again; the ban is audited. Returns when it ends.
        """
        ...

    def lift_bans(self, user_id: int, login: str, now: float, by: str) -> int:
        """End every running ban of a user now (audited); how many there were."""
        ...

    def rate_window(self, user_id: int) -> tuple[float, int] | None:
        """``(window_start, count)`` of a user's general-chat rate window."""
        ...

    def count_post(self, user_id: int, window_start: float, now: float) -> tuple[int, bool]:
        """Count one general-chat post of a user in the window starting at ``window_start``
        (a newer window starts again at 1): the count including this post, and whether
        the user has a ban running at ``now`` (see :meth:`active_ban` for which).

        One statement (an upsert that also reads the bans), so concurrent writers on any
        node count exactly and a send checks both in one round trip; run it inside the
        unit that stores the post, whose rollback takes the count back.
        """
        ...

    def has_counted_complaint(self, author_id: int, target_id: int) -> bool:
        """The author already has a complaint about the target that counts."""
        ...

    def insert_complaint(
        self,
        author_id: int,
        target_id: int,
        reason: str,
        message_id: int | None,
        now: float,
        counted: bool,
        quoted: str = "",
    ) -> int:
        """Store an open complaint (``quoted``: the message's text as its reporter
        includes it); its id."""
        ...

    def distinct_complainers(self, target_id: int) -> int:
        """Distinct users whose complaints about the target count."""
        ...

    def complaint(self, complaint_id: int) -> Complaint | None:
        """One complaint."""
        ...

    def open_complaints(self) -> list[Complaint]:
        """The open complaints, oldest first."""
        ...

    def dismiss_complaint(self, complaint_id: int, by: str, now: float) -> bool:
        """Dismiss an open complaint (it no longer counts); False if it was not open."""
        ...


class SqlModerationQueries:
    """:class:`ModerationQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _scalar(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def add_audit(self, now: float, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append one line to the audit log."""
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (now, actor, action, target, detail),
        )

    def audit(self, limit: int) -> list[AuditRecord]:
        """The newest ``limit`` lines of the audit log, oldest first."""
        rows = self.conn.execute(
            "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in reversed(rows)]

    def newest_audit_id(self) -> int:
        """Id of the newest audit line (0 when there is none)."""
        return int(self._scalar("SELECT coalesce(max(id), 0) FROM audit"))

    def cli_ban_targets(self, after: int) -> list[str]:
        """Logins the admin CLI banned or unbanned after audit line ``after``, in order."""
        rows = self.conn.execute(
            "SELECT target FROM audit WHERE id > ? AND actor = 'cli'"
            " AND action IN ('ban', 'unban') ORDER BY id",
            (after,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def active_ban(self, user_id: int, now: float) -> tuple[float, str] | None:
        """``(until, reason)`` of the longest ban of a user still running at ``now``."""
        row = self.conn.execute(
            "SELECT until, reason FROM bans WHERE user_id = ? AND lifted_at IS NULL AND until > ?"
            " ORDER BY until DESC LIMIT 1",
            (user_id, now),
        ).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def running_bans(self, now: float) -> dict[str, float]:
        """``until`` of every running ban, by lower-case login."""
        rows = self.conn.execute(
            "SELECT lower(u.login), max(b.until) FROM bans b JOIN users u ON u.id = b.user_id"
            " WHERE b.lifted_at IS NULL AND b.until > ? GROUP BY b.user_id, u.login",
            (now,),
        ).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def ban(
        self, user_id: int, login: str, now: float, seconds: float, reason: str, by: str
    ) -> float:
        """Ban a user from sending for ``seconds``; open complaints about them are actioned."""
        until = now + seconds
        self.conn.execute(
            "INSERT INTO bans (user_id, created_at, until, reason, banned_by)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, now, until, reason, by),
        )
        actionable = sources(COMPLAINT, "actioned")
        among = marks(len(actionable))
        self.conn.execute(
            "UPDATE complaints SET counted = 0,"
            f" state = CASE WHEN state IN ({among}) THEN 'actioned' ELSE state END,"
            " decided_by = coalesce(decided_by, ?), decided_at = coalesce(decided_at, ?)"
            f" WHERE target_id = ? AND (counted = 1 OR state IN ({among}))",
            (*actionable, by, now, user_id, *actionable),
        )
        ends = format_time(until, tz=UTC, zone=True)
        self.add_audit(now, by, "ban", login, f"{format_duration(seconds)} until {ends}: {reason}")
        return until

    def lift_bans(self, user_id: int, login: str, now: float, by: str) -> int:
        """End every running ban of a user now (audited); how many there were."""
        cur = self.conn.execute(
            "UPDATE bans SET lifted_at = ?, lifted_by = ?"
            " WHERE user_id = ? AND lifted_at IS NULL AND until > ?",
            (now, by, user_id, now),
        )
        if cur.rowcount:
            self.add_audit(now, by, "unban", login)
        return cur.rowcount

    def rate_window(self, user_id: int) -> tuple[float, int] | None:
        """``(window_start, count)`` of a user's general-chat rate window."""
        row = self.conn.execute(
            "SELECT window_start, count FROM rate_counts WHERE user_id = ?", (user_id,)
        ).fetchone()
        return None if row is None else (float(row[0]), int(row[1]))

    def count_post(self, user_id: int, window_start: float, now: float) -> tuple[int, bool]:
        """Count one general-chat post in the window at ``window_start``: the new count,
        and whether a ban runs at ``now``."""
        row = self.conn.execute(
            "INSERT INTO rate_counts (user_id, window_start, count) VALUES (?, ?, 1)"
            " ON CONFLICT (user_id) DO UPDATE SET count = CASE"
            " WHEN rate_counts.window_start = excluded.window_start"
            " THEN rate_counts.count + 1 ELSE 1 END,"
            " window_start = excluded.window_start RETURNING count, EXISTS (SELECT 1 FROM bans"
            " WHERE user_id = ? AND lifted_at IS NULL AND until > ?)",
            (user_id, window_start, user_id, now),
        ).fetchone()
        return int(row[0]), bool(row[1])

    def has_counted_complaint(self, author_id: int, target_id: int) -> bool:
        """The author already has a complaint about the target that counts."""
        row = self.conn.execute(
            "SELECT 1 FROM complaints WHERE author_id = ? AND target_id = ? AND counted = 1",
            (author_id, target_id),
        ).fetchone()
        return row is not None

    def insert_complaint(
        self,
        author_id: int,
        target_id: int,
        reason: str,
        message_id: int | None,
        now: float,
        counted: bool,
        quoted: str = "",
    ) -> int:
        """Store an open complaint (``quoted``: the message's text as its reporter
        includes it); its id."""
        return int(
            self._scalar(
                "INSERT INTO complaints (author_id, target_id, reason, message_id, created_at,"
                " counted, quoted) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (author_id, target_id, reason, message_id, now, int(counted), quoted),
            )
        )

    def distinct_complainers(self, target_id: int) -> int:
        """Distinct users whose complaints about the target count."""
        return int(
            self._scalar(
                "SELECT count(DISTINCT author_id) FROM complaints"
                " WHERE target_id = ? AND counted = 1",
                (target_id,),
            )
        )

    def complaint(self, complaint_id: int) -> Complaint | None:
        """One complaint."""
        row = self.conn.execute(
            f"SELECT {_COMPLAINT_COLUMNS} WHERE c.id = ?", (complaint_id,)
        ).fetchone()
        return None if row is None else _complaint(row)

    def open_complaints(self) -> list[Complaint]:
        """The open complaints, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_COMPLAINT_COLUMNS} WHERE c.state = 'open' ORDER BY c.id"
        ).fetchall()
        return [_complaint(r) for r in rows]

    def dismiss_complaint(self, complaint_id: int, by: str, now: float) -> bool:
        """Dismiss an open complaint (it no longer counts); False if it was not open."""
        source = sources(COMPLAINT, "dismissed")
        cur = self.conn.execute(
            "UPDATE complaints SET state = 'dismissed', counted = 0, decided_by = ?,"
            f" decided_at = ? WHERE id = ? AND state IN ({marks(len(source))})",
            (by, now, complaint_id, *source),
        )
        return cur.rowcount > 0


def moderation_queries(tx: Tx) -> ModerationQueries:
    """The moderation queries of a unit of work."""
    return SqlModerationQueries(connection(tx))

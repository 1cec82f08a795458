"""Queries of presence over several nodes: ``node_leases`` and ``live_streams``.

A node renews its lease (``renewed_at``, the node's wall clock) every few seconds; its
rows in ``live_streams`` count only while that lease is fresh. A user is online while
they have a stream on a node with a fresh lease. One node at a time (a singleton pass)
drops the rows of nodes whose lease went stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .base import Tx
from .sql import Connection, connection, marks

__all__ = ["LiveStreamRecord", "PresenceQueries", "SqlPresenceQueries", "presence_queries"]


@dataclass(frozen=True, slots=True)
class LiveStreamRecord:
    """A live event stream of a session on a node (for ``/status``)."""

    node: str
    session_id: str
    peer: str
    """The client's address."""
    connected_at: float


class PresenceQueries(Protocol):
    """What presence needs of the database."""

    def renew_lease(self, node: str, boot: str, now: float) -> bool:
        """Renew this run's lease; False if it is not there any more (taken as dead)."""
        ...

    def take_lease(self, node: str, boot: str, now: float) -> None:
        """Hold the lease of ``node`` for this run (``boot``), from ``now``."""
        ...

    def add_stream(
        self, node: str, stream_id: str, user_id: int, session_id: str, connected_at: float,
        peer: str,
    ) -> None:  # fmt: skip
        """A live stream of ``user_id`` on ``node`` from ``peer`` (once: a second add
        changes nothing)."""
        ...

    def streams_of(self, user_id: int, fresh_since: float) -> list[LiveStreamRecord]:
        """The user's streams on nodes whose lease was renewed at or after ``fresh_since``,
        oldest first."""
        ...

    def remove_stream(self, node: str, stream_id: str) -> None:
        """The stream went."""
        ...

    def live_streams_of(self, user_id: int, fresh_since: float) -> int:
        """The user's streams on nodes whose lease was renewed at or after ``fresh_since``."""
        ...

    def stale_nodes(self, fresh_since: float) -> list[str]:
        """Nodes whose lease was last renewed before ``fresh_since``."""
        ...

    def drop_node(self, node: str) -> list[int]:
        """Forget ``node``'s lease and streams; the users who had a stream there."""
        ...

    def online_users(self, fresh_since: float) -> set[int]:
        """Users with a stream on a node with a fresh lease."""
        ...

    def users_without_streams(self, user_ids: list[int], fresh_since: float) -> list[int]:
        """Those of ``user_ids`` with no stream on a node with a fresh lease."""
        ...


class SqlPresenceQueries:
    """:class:`PresenceQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def renew_lease(self, node: str, boot: str, now: float) -> bool:
        """Renew this run's lease; False if it is not there any more (taken as dead)."""
        cur = self.conn.execute(
            "UPDATE node_leases SET renewed_at = ? WHERE node = ? AND boot = ?", (now, node, boot)
        )
        return cur.rowcount > 0

    def take_lease(self, node: str, boot: str, now: float) -> None:
        """Hold the lease of ``node`` for this run (``boot``), from ``now``."""
        self.conn.execute(
            "INSERT INTO node_leases (node, boot, renewed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET boot = excluded.boot,"
            " renewed_at = excluded.renewed_at",
            (node, boot, now),
        )

    def add_stream(
        self, node: str, stream_id: str, user_id: int, session_id: str, connected_at: float,
        peer: str,
    ) -> None:  # fmt: skip
        """A live stream of ``user_id`` on ``node`` from ``peer`` (once: a second add
        changes nothing)."""
        self.conn.execute(
            "INSERT INTO live_streams (node, stream_id, user_id, session_id, connected_at,"
            " peer) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node, stream_id) DO NOTHING",
            (node, stream_id, user_id, session_id, connected_at, peer),
        )

    def streams_of(self, user_id: int, fresh_since: float) -> list[LiveStreamRecord]:
        """The user's streams on nodes whose lease was renewed at or after ``fresh_since``,
        oldest first."""
        rows = self.conn.execute(
            "SELECT s.node, s.session_id, s.peer, s.connected_at FROM live_streams s"
            " JOIN node_leases l ON l.node = s.node WHERE s.user_id = ? AND l.renewed_at >= ?"
            " ORDER BY s.connected_at, s.node, s.stream_id",
            (user_id, fresh_since),
        ).fetchall()
        return [LiveStreamRecord(r[0], r[1], r[2], r[3]) for r in rows]

    def remove_stream(self, node: str, stream_id: str) -> None:
        """The stream went."""
        self.conn.execute(
            "DELETE FROM live_streams WHERE node = ? AND stream_id = ?", (node, stream_id)
        )

    def live_streams_of(self, user_id: int, fresh_since: float) -> int:
        """The user's streams on nodes whose lease was renewed at or after ``fresh_since``."""
        count: int = self.conn.execute(
            "SELECT count(*) FROM live_streams s JOIN node_leases l ON l.node = s.node"
            " WHERE s.user_id = ? AND l.renewed_at >= ?",
            (user_id, fresh_since),
        ).fetchone()[0]
        return count

    def stale_nodes(self, fresh_since: float) -> list[str]:
        """Nodes whose lease was last renewed before ``fresh_since``."""
        rows = self.conn.execute(
            "SELECT node FROM node_leases WHERE renewed_at < ? ORDER BY node", (fresh_since,)
        ).fetchall()
        return [r[0] for r in rows]

    def drop_node(self, node: str) -> list[int]:
        """Forget ``node``'s lease and streams; the users who had a stream there."""
        rows = self.conn.execute(
            "DELETE FROM live_streams WHERE node = ? RETURNING user_id", (node,)
        ).fetchall()
        self.conn.execute("DELETE FROM node_leases WHERE node = ?", (node,))
        return sorted({r[0] for r in rows})

    def online_users(self, fresh_since: float) -> set[int]:
        """Users with a stream on a node with a fresh lease."""
        rows = self.conn.execute(
            "SELECT DISTINCT s.user_id FROM live_streams s JOIN node_leases l ON l.node = s.node"
            " WHERE l.renewed_at >= ?",
            (fresh_since,),
        ).fetchall()
        return {r[0] for r in rows}

    def users_without_streams(self, user_ids: list[int], fresh_since: float) -> list[int]:
        """Those of ``user_ids`` with no stream on a node with a fresh lease."""
        if not user_ids:
            return []
        online = self.conn.execute(
            "SELECT DISTINCT s.user_id FROM live_streams s JOIN node_leases l ON l.node = s.node"
            f" WHERE l.renewed_at >= ? AND s.user_id IN ({marks(len(user_ids))})",
            (fresh_since, *user_ids),
        ).fetchall()
        have = {r[0] for r in online}
        return [u for u in user_ids if u not in have]


def presence_queries(tx: Tx) -> PresenceQueries:
    """The presence queries of a unit of work."""
    return SqlPresenceQueries(connection(tx))

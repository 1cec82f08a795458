"""Queries of full-text search: SQLite's FTS5 index ``messages_fts``, PostgreSQL's
``messages.tsv`` column (GIN index). The index follows every insert, edit and delete of
a message inside the same transaction, so nothing that is gone can be found and a sent
message is found once its send is answered. PostgreSQL: a generated column. SQLite:
new messages go into the index just before a group's COMMIT, at most every 0.1 s
(``storage.sqlite.INDEX_EVERY``), and before any search (:func:`index_new_messages`, one
FTS5 segment each time; inside each unit's SAVEPOINT a trigger per row made one segment
per message; FTS5 merges a level at 16 segments),
and triggers follow the edits and deletions of the messages already in it
(``search_indexed.upto`` and below).

The query's last word may be a prefix (``ParsedSearch.prefix``): FTS5 ``"noo"*``,
PostgreSQL ``'noo':*``, both answered by the index.

Both answer in the same words: runs of letters and digits in lower case, no stemming.
SQLite also drops accents (``café`` finds ``cafe``); PostgreSQL's ``simple`` dictionary
keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from messenger_protocol import Message, ParsedSearch, fts5_match

from .base import Tx
from .rows import MESSAGE_COLUMNS, MESSAGE_FROM, message_row
from .sql import Connection, connection, unprepared

__all__ = [
    "SearchFilter",
    "SearchQueries",
    "SqlSearchQueries",
    "index_new_messages",
    "search_queries",
]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a search looks for, with names resolved to ids by the service."""

    query: ParsedSearch
    chat_id: int | None = None
    author_id: int | None = None


class SearchQueries(Protocol):
    """What the search service needs of the database."""

    def search(
        self, user_id: int, found: SearchFilter, before: int | None, limit: int
    ) -> list[Message]:
        """Messages and comments of the chats ``user_id`` is a member of that match,
        newest first, older than message ``before``; at most ``limit``."""
        ...


class SqlSearchQueries:
    """:class:`SearchQueries` on SQLite (FTS5 ``MATCH``); :class:`PgSearchQueries` overrides
    only the text match."""

    def __init__(self, conn: Connection, tx: Tx | None = None) -> None:
        self.conn = conn
        self.tx = tx
        """SQLite: the unit, whose ``index_pending`` indexes the messages stored since the
        last indexing (a search finds them)."""

    def _match(self, query: ParsedSearch) -> tuple[str, str, list[Any], str]:
        """Dialect hook: the FROM addition, the WHERE clause, its arguments, and the id
        column to page and order by (FTS5 hands its matches out newest first when asked
        for its own rowid in descending order: no sort of every match)."""
        return (
            " JOIN messages_fts f ON f.rowid = m.id",
            "messages_fts MATCH ?",
            [fts5_match(query)],
            "f.rowid",
        )

    def search(
        self, user_id: int, found: SearchFilter, before: int | None, limit: int
    ) -> list[Message]:
        """Matching messages of the user's chats, newest first, older than ``before``."""
        query = found.query
        index_pending = getattr(self.tx, "index_pending", None)
        if index_pending is not None:
            index_pending()  # SQLite: messages stored since the last indexing are found too
        where = [
            "m.chat_id IN (SELECT chat_id FROM members WHERE user_id = ?)",
            "m.deleted_at IS NULL",
        ]
        args: list[Any] = [user_id]
        source = MESSAGE_FROM
        order = "m.id"
        if query.has_text:
            join, clause, match_args, order = self._match(query)
            source += join
            where.append(clause)
            args += match_args
        if found.chat_id is not None:
            where.append("m.chat_id = ?")
            args.append(found.chat_id)
        if found.author_id is not None:
            where.append("m.author_id = ?")
            args.append(found.author_id)
        if query.before is not None:
            where.append("m.created_at < ?")
            args.append(query.before)
        if query.after is not None:
            where.append("m.created_at >= ?")
            args.append(query.after)
        if query.has_file:
            where.append("EXISTS (SELECT 1 FROM message_files mf WHERE mf.message_id = m.id)")
        if before is not None:
            where.append(f"{order} < ?")
            args.append(before)
        rows = self.conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM {source} WHERE {' AND '.join(where)}"
            f" ORDER BY {order} DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [message_row(r) for r in rows]


class PgSearchQueries(SqlSearchQueries):
    """:class:`SearchQueries` on PostgreSQL: ``tsv @@ tsquery`` (GIN index)."""

    def _match(self, query: ParsedSearch) -> tuple[str, str, list[Any], str]:
        parts: list[str] = []
        args: list[Any] = []
        if query.words:
            parts.append("plainto_tsquery('simple', ?)")
            args.append(" ".join(query.words))
        if query.prefix is not None:
            # a prefix lexeme ``'noo':*`` (the GIN index answers it too); quoted, so nothing
            # in it is an operator (a prefix holds letters and digits only anyway)
            parts.append("to_tsquery('simple', ?)")
            args.append("'" + query.prefix.replace("\\", "\\\\").replace("'", "''") + "':*")
        for phrase in query.phrases:
            parts.append("phraseto_tsquery('simple', ?)")
            args.append(" ".join(phrase))
        return "", f"m.tsv @@ ({' && '.join(parts)})", args, "m.id"


def search_queries(tx: Tx) -> SearchQueries:
    """The search queries of a unit of work, in its database's dialect."""
    if tx.dialect == "postgresql":
        # planned at every run with its words: a plan for all of them cannot see how
        # selective a tsquery is
        return PgSearchQueries(unprepared(tx))
    return SqlSearchQueries(connection(tx), tx)


def index_new_messages(conn: Connection) -> None:
    """SQLite: put the messages newer than ``search_indexed.upto`` into the FTS5 index and
    move the mark to the newest message (in the group's transaction, outside any unit)."""
    conn.execute(
        "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages"
        " WHERE id > (SELECT upto FROM search_indexed WHERE id = 1)"
    )
    conn.execute(
        "UPDATE search_indexed SET upto = (SELECT coalesce(max(id), 0) FROM messages)"
        " WHERE id = 1 AND upto < (SELECT coalesce(max(id), 0) FROM messages)"
    )

"""Storage: the :class:`Store` interface, its SQLite (WAL) and PostgreSQL implementations.

New tables come as new steps of :data:`MIGRATIONS`; new queries as methods of
:class:`Tx` and :class:`SqliteTx`, in portable SQL (PostgreSQL runs the same
methods through :class:`~.postgres.PgConnection`).
"""

from pathlib import Path

from .base import Store, Tx
from .migrations import MIGRATIONS
from .records import ChatRecord, EventHandle, EventRecord, LinkRecord, SessionRecord, UserRecord
from .sqlite import DB_FILE, SqliteStore, SqliteTx


def store_for(url: str, data_dir: Path, *, sqlite_synchronous: str = "NORMAL") -> Store:
    """The store a ``store`` setting names: SQLite in ``data_dir`` when empty, else PostgreSQL."""
    if not url:
        return SqliteStore.in_dir(data_dir, synchronous=sqlite_synchronous)
    from .postgres import PostgresStore  # psycopg only when it is used

    return PostgresStore(url)


__all__ = [
    "DB_FILE",
    "MIGRATIONS",
    "ChatRecord",
    "EventHandle",
    "EventRecord",
    "LinkRecord",
    "SessionRecord",
    "SqliteStore",
    "SqliteTx",
    "Store",
    "Tx",
    "UserRecord",
    "store_for",
]

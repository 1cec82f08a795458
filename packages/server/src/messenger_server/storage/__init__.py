"""Storage: the :class:`Store` interface and its SQLite (WAL) implementation.

New tables come as new entries of :data:`MIGRATIONS`; new queries as methods of
:class:`Tx` and :class:`SqliteTx`.
"""

import sqlite3

from .base import Store, Tx
from .migrations import MIGRATIONS
from .records import ChatRecord, EventRecord, LinkRecord, SessionRecord, UserRecord
from .sqlite import DB_FILE, SqliteStore, SqliteTx

STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
"""What a store raises when the database itself fails (not a domain error)."""

__all__ = [
    "DB_FILE",
    "MIGRATIONS",
    "STORE_ERRORS",
    "ChatRecord",
    "EventRecord",
    "LinkRecord",
    "SessionRecord",
    "SqliteStore",
    "SqliteTx",
    "Store",
    "Tx",
    "UserRecord",
]

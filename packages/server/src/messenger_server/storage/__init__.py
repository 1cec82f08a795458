"""Storage: the :class:`Store` interface and its SQLite (WAL) implementation.

New tables come as new entries of :data:`MIGRATIONS`; new queries as methods of
:class:`Tx` and :class:`SqliteTx`.
"""

from .base import Store, Tx
from .migrations import MIGRATIONS
from .records import ChatRecord, EventRecord, LinkRecord, SessionRecord, UserRecord
from .sqlite import DB_FILE, SqliteStore, SqliteTx

__all__ = [
    "DB_FILE",
    "MIGRATIONS",
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

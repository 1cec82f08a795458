"""Look into a test server's database directly, whichever store it runs on."""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.support import postgres
from tests.support.server import ServerProcess

__all__ = ["count", "events_mentioning", "execute", "rows"]


def rows(srv: ServerProcess, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement (``?`` placeholders) on the server's database."""
    url = srv.store_url
    if url:
        return postgres.query(url, sql.replace("?", "%s"), args)
    conn = sqlite3.connect(srv.data_dir / "messenger.db")
    try:
        return list(conn.execute(sql, args).fetchall())
    finally:
        conn.close()


def execute(srv: ServerProcess, sql: str, args: tuple[Any, ...] = ()) -> None:
    """Run one changing statement (``?`` placeholders) on the server's database, committed
    (what someone who can write the server's database could do)."""
    url = srv.store_url
    if url:
        postgres.execute(url, sql.replace("?", "%s"), args)
        return
    conn = sqlite3.connect(srv.data_dir / "messenger.db")
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


def count(srv: ServerProcess, table: str) -> int:
    """Rows in a table."""
    return int(rows(srv, f"SELECT count(*) FROM {table}", ())[0][0])


def events_mentioning(srv: ServerProcess, text: str) -> int:
    """Logged events whose payload contains ``text``."""
    needle = text.encode()
    return sum(1 for (payload,) in rows(srv, "SELECT payload FROM events", ()) if needle in payload)

"""PostgreSQL for tests: a database per test module, a schema per server, never other data.

``MESSENGER_TEST_POSTGRES`` names the server to use (an admin URL; default the
local trust-auth server). Every database this module creates is called
``m_<uuid>``, made from ``template0`` and dropped after the module, so tests never
touch data they did not create.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

__all__ = [
    "ADMIN_URL",
    "UNAVAILABLE_PREFIX",
    "PgDatabase",
    "execute",
    "query",
    "unavailable",
    "url_with",
]

ADMIN_URL = os.environ.get(
    "MESSENGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""A database on the test server to connect to for CREATE/DROP DATABASE."""


UNAVAILABLE_PREFIX = "no PostgreSQL at "
"""How every skip reason for want of PostgreSQL begins."""


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used here (None: it can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parts = urlsplit(ADMIN_URL)  # host and port only: never a password
        return f"{UNAVAILABLE_PREFIX}{parts.hostname}:{parts.port or 5432}: {first}"
    return None


def url_with(base: str, dbname: str, schema: str | None = None) -> str:
    """``base`` pointed at another database (and, with ``schema``, its search_path)."""
    parts = urlsplit(base)
    query = f"options={quote(f'-csearch_path={schema}', safe='')}" if schema else ""
    return urlunsplit(parts._replace(path="/" + dbname, query=query))


class PgDatabase:
    """A throwaway database; :meth:`new_store` hands out an empty schema per server."""

    def __init__(self) -> None:
        self.name = "m_" + uuid.uuid4().hex
        self.url = url_with(ADMIN_URL, self.name)
        self._schemas = 0

    def create(self) -> None:
        """CREATE DATABASE m_<uuid> TEMPLATE template0."""
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE template0')

    def drop(self) -> None:
        """Drop it, cutting any connection a killed server left behind."""
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def new_store(self) -> str:
        """The ``--store`` URL of a fresh, empty schema in this database."""
        self._schemas += 1
        schema = f"s{self._schemas}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return url_with(ADMIN_URL, self.name, schema)


def query(store_url: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement (``%s`` placeholders) on a server's store."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        return list(conn.execute(sql.encode(), tuple(args)).fetchall())


def execute(store_url: str, sql: str, args: Sequence[Any] = ()) -> None:
    """Run one changing statement (``%s`` placeholders) on a server's store, committed."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(sql.encode(), tuple(args))

"""``messenger-server admin|users|ban|unban|stats|audit``: administer the data of a server.

These work on the SQLite database directly (WAL mode lets them run next to a live
server). The running server reads bans from the database on every send, so a ban
or unban made here takes effect at once; admin rights count from the user's next
request. Times use the server's clock (``MESSENGER_TEST_CLOCK_FILE`` in tests).
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import time
from collections.abc import Sequence

from .clock import clock_from_env
from .config import Settings
from .services.admin import admin_users, dir_bytes
from .services.moderation import ban_user, lift_bans
from .storage import DB_FILE, SqliteStore

__all__ = ["run"]

log = logging.getLogger(__name__)

PROG = "messenger-server"


class CliError(Exception):
    """One line for stderr, exit status 1."""


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        _out("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _connect(settings: Settings) -> sqlite3.Connection:
    path = settings.data_dir / DB_FILE
    if not path.exists():
        raise CliError(f"no database at {str(path)!r} (wrong --data-dir?)")
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    # a database older than this code gets our tables (what the server does at start)
    SqliteStore._migrate(conn)
    return conn


def _user_id(conn: sqlite3.Connection, login: str) -> tuple[int, str]:
    row = conn.execute("SELECT id, login FROM users WHERE login = ?", (login,)).fetchone()
    if row is None:
        raise CliError(f"no such user: {login}")
    return int(row[0]), str(row[1])


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one admin subcommand; the exit status."""
    try:
        conn = _connect(settings)
        try:
            return _dispatch(conn, settings, args)
        finally:
            conn.close()
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except sqlite3.Error as exc:
        sys.stderr.write(f"{PROG}: error: database: {exc}\n")
        return 1


def _dispatch(conn: sqlite3.Connection, settings: Settings, args: argparse.Namespace) -> int:
    now = clock_from_env().now()
    command: str = args.command
    if command == "admin":
        user_id, login = _user_id(conn, args.login)
        grant = args.admin_command == "add"
        with conn:
            conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(grant), user_id))
            conn.execute(
                "INSERT INTO audit (at, actor, action, target) VALUES (?, 'cli', ?, ?)",
                (now, "admin add" if grant else "admin remove", login),
            )
        _out(f"{login} is {'now' if grant else 'no longer'} an admin")
        if not grant and login.lower() in {a.lower() for a in settings.admins}:
            _out(f"note: {login} is still named in the 'admins' setting")
        return 0
    if command == "users":
        admins = {a.lower() for a in settings.admins}
        users = admin_users(conn, now, set(), admins)
        rows = [
            (
                u.login,
                "admin" if u.is_admin else "",
                _when(u.last_login_at),
                u.last_login_address or "-",
                str(u.messages),
                str(u.complaints),
                _when(u.banned_until),
            )
            for u in users
        ]
        header = ("login", "role", "last login", "address", "messages", "complaints", "banned")
        _table(header, rows)
        return 0
    if command == "ban":
        user_id, login = _user_id(conn, args.login)
        seconds = settings.ban_seconds if args.seconds is None else args.seconds
        if seconds <= 0:
            raise CliError(f"--seconds must be a positive integer, got {seconds}")
        with conn:
            until = ban_user(
                conn, user_id, login, now, seconds, "banned from the command line", "cli"
            )
        _out(f"{login} banned from sending until {_when(until)}")
        return 0
    if command == "unban":
        user_id, login = _user_id(conn, args.login)
        with conn:
            lifted = lift_bans(conn, user_id, login, now, "cli")
        _out(f"{login} unbanned" if lifted else f"{login} was not banned")
        return 0
    if command == "stats":
        _stats(conn, settings, now)
        return 0
    if command == "audit":
        entries = conn.execute(
            "SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
            (max(1, args.limit),),
        ).fetchall()
        lines = [(_when(e[0]), e[1], e[2], e[3], e[4]) for e in reversed(entries)]
        _table(("when", "who", "action", "whom", "why"), lines)
        return 0
    raise CliError(f"unknown command {command!r}")


def _stats(conn: sqlite3.Connection, settings: Settings, now: float) -> None:
    def one(query: str, *params: object) -> int:
        return int(conn.execute(query, params).fetchone()[0])

    db = sum(p.stat().st_size for p in settings.data_dir.glob(f"{DB_FILE}*") if p.is_file())
    rows = [
        ("users", str(one("SELECT count(*) FROM users"))),
        ("messages", str(one("SELECT count(*) FROM messages"))),
        ("messages in the last hour", str(one(
            "SELECT count(*) FROM (SELECT created_at FROM messages ORDER BY id DESC"
            " LIMIT 100000) WHERE created_at > ?", now - 3600,
        ))),
        ("open complaints", str(one("SELECT count(*) FROM complaints WHERE state = 'open'"))),
        ("users banned now", str(one(
            "SELECT count(DISTINCT user_id) FROM bans WHERE lifted_at IS NULL AND until > ?", now
        ))),
        ("scheduled pending", str(one("SELECT count(*) FROM scheduled WHERE state = 'pending'"))),
        ("database bytes", str(db)),
        ("file bytes", str(dir_bytes(settings.data_dir / "files"))),
    ]  # fmt: skip
    _table(("stat", "value"), rows)

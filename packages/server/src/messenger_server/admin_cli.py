"""``messenger-server admin|users|ban|unban|stats|audit``: administer the data of a server.

These open the server's store themselves (SQLite's WAL mode lets them run next to a
live server) and run the same storage queries as the server. The running server
reads bans from the database on every send, so a ban or unban made here takes
effect at once; admin rights count from the user's next request. Times use the
server's clock (``MESSENGER_TEST_CLOCK_FILE`` in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from messenger_protocol import format_time

from .clock import clock_from_env
from .config import Settings
from .services.admin import admin_view, dir_bytes
from .storage import DB_FILE, Store, Tx, UserRecord, store_for
from .storage.admin import admin_queries
from .storage.moderation import moderation_queries

__all__ = ["run"]

log = logging.getLogger(__name__)

PROG = "messenger-server"


class CliError(Exception):
    """One line for stderr, exit status 1."""


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _when(at: float | None) -> str:
    return "-" if at is None else format_time(at)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        _out("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _store(settings: Settings) -> Store:
    path = settings.data_dir / DB_FILE
    if not settings.store and not path.exists():
        raise CliError(f"no database at {str(path)!r} (wrong --data-dir or --store?)")
    # opening brings a database older than this code up to date (as the server does)
    return store_for(
        settings.store, settings.data_dir, sqlite_synchronous=settings.sqlite_synchronous
    )


def _user(tx: Tx, login: str) -> UserRecord:
    user = tx.user_by_login(login)
    if user is None:
        raise CliError(f"no such user: {login}")
    return user


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one admin subcommand; the exit status."""
    try:
        store = _store(settings)
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    try:
        return asyncio.run(_run(store, settings, args))
    except CliError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except store.errors as exc:
        sys.stderr.write(f"{PROG}: error: database: {exc}\n")
        return 1


async def _run(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    await store.open()
    try:
        return await _dispatch(store, settings, args)
    finally:
        await store.close()


async def _dispatch(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    now = clock_from_env().now()
    command: str = args.command

    if command == "admin":
        grant = args.admin_command == "add"

        def set_admin(tx: Tx) -> str:
            user = _user(tx, args.login)
            tx.set_admin(user.id, grant)
            action = "admin add" if grant else "admin remove"
            moderation_queries(tx).add_audit(now, "cli", action, user.login)
            return user.login

        login = await store.write(set_admin)
        _out(f"{login} is {'now' if grant else 'no longer'} an admin")
        if not grant and login.lower() in {a.lower() for a in settings.admins}:
            _out(f"note: {login} is still named in the 'admins' setting")
        return 0
    if command == "users":
        admins = {a.lower() for a in settings.admins}
        records = await store.read(lambda tx: admin_queries(tx).admin_users(now))
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
            for u in admin_view(records, set(), admins)
        ]
        header = ("login", "role", "last login", "address", "messages", "complaints", "banned")
        _table(header, rows)
        return 0
    if command == "ban":
        seconds = settings.ban_seconds if args.seconds is None else args.seconds
        if seconds <= 0:
            raise CliError(f"--seconds must be a positive integer, got {seconds}")

        def ban(tx: Tx) -> tuple[str, float]:
            user = _user(tx, args.login)
            why = "banned from the command line"
            return user.login, moderation_queries(tx).ban(
                user.id, user.login, now, seconds, why, "cli"
            )

        login, until = await store.write(ban)
        _out(f"{login} banned from sending until {_when(until)}")
        return 0
    if command == "unban":

        def unban(tx: Tx) -> tuple[str, int]:
            user = _user(tx, args.login)
            return user.login, moderation_queries(tx).lift_bans(user.id, user.login, now, "cli")

        login, lifted = await store.write(unban)
        _out(f"{login} unbanned" if lifted else f"{login} was not banned")
        return 0
    if command == "stats":
        _table(("stat", "value"), await store.read(lambda tx: _stats(tx, settings, now)))
        return 0
    if command == "audit":
        entries = await store.read(lambda tx: moderation_queries(tx).audit(max(1, args.limit)))
        lines = [(_when(e.at), e.actor, e.action, e.target, e.detail) for e in entries]
        _table(("when", "who", "action", "whom", "why"), lines)
        return 0
    raise CliError(f"unknown command {command!r}")


def _stats(tx: Tx, settings: Settings, now: float) -> list[tuple[str, str]]:
    queries = admin_queries(tx)
    return [
        ("users", str(queries.user_count())),
        ("messages", str(tx.message_count())),
        ("messages in the last hour", str(queries.messages_since(now - 3600))),
        ("open complaints", str(queries.open_complaint_count())),
        ("users banned now", str(queries.banned_user_count(now))),
        ("scheduled pending", str(queries.pending_scheduled_count())),
        ("database bytes", str(tx.database_bytes())),
        ("file bytes", str(dir_bytes(settings.data_dir / "files"))),
    ]

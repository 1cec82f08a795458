"""The PostgreSQL store: psycopg 3 (sync) on a writer thread with group commit, and a read pool.

The queries are those of :class:`~.sqlite.SqliteTx`, run through :class:`PgConnection`
(``?`` placeholders become ``%s``); only the dialect hooks differ. Writes: the units
submitted during one event-loop turn go to the writer thread together and run in ONE
transaction, each in its own SAVEPOINT (a unit that raises rolls back only itself).
Their events are numbered by the last statement before COMMIT, which bumps the
``event_counter`` row: the row lock makes seq order equal commit order, and a rollback
gives the numbers back, so committed seqs have no holes. After the COMMIT the
writers' futures are resolved and the after-commit callbacks run on the loop, in
commit order. Reads run on a small pool of threads, each with its own autocommit
connection (no BEGIN/COMMIT round trips: a read sees what is committed, statement
by statement, as on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ..loglimit import LogLimiter
from .migrations import MIGRATIONS, postgres_script
from .records import EventHandle
from .sql import Cursor
from .sqlite import SqliteTx

__all__ = ["PgConnection", "PostgresStore", "PostgresTx", "is_postgres_url", "redact_url"]

log = logging.getLogger(__name__)
_commit_log_limit = LogLimiter(logger=log)
"""While the database is away every write group fails: a few lines per window say so
(one writer thread uses it)."""

T = TypeVar("T")

READ_POOL_SIZE = 4
"""Connections serving :meth:`PostgresStore.read`."""
MIGRATION_LOCK = 0x6D657373  # "mess"
"""``pg_advisory_lock`` key held while migrating (nodes starting together wait)."""
JOB_LOCK_SPACE = 0x6A6F6273  # "jobs"
"""First key of the advisory locks of singleton jobs (the second is the job's hash)."""
WRITE_LOCK = 0x6D657374  # "mest"
"""First key of the ``pg_advisory_xact_lock`` every write group holds (the second is the
schema's hash): the writers of all nodes of one store take turns, like SQLite's one
writer, so their groups cannot deadlock one another."""
CONNECT_TIMEOUT = 10.0
SLOW = 1.0
"""Seconds after which a read or a write group is logged as slow, with where the time went
(waiting for the writer, for the cluster's write lock, in the slowest unit, in COMMIT)."""


def is_postgres_url(url: str) -> bool:
    """The ``--store`` value names a PostgreSQL database."""
    return url.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """The URL without its password (for logs and the settings view)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


@functools.lru_cache(maxsize=2048)
def _placeholders(sql: str) -> str:
    """``?`` outside string literals becomes ``%s``; a literal ``%`` becomes ``%%``."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            out.append(ch)
        elif ch == "?" and not quoted:
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PgConnection:
    """A psycopg connection that speaks the ``?`` placeholders of :class:`~.sql.Connection`.

    psycopg prepares a statement after its 5th run, and PostgreSQL then plans it once
    for all parameters when that plan is no dearer; with ``prepare=False`` every run is
    planned with its own parameters instead (see :meth:`unprepared`)."""

    def __init__(self, raw: psycopg.Connection[Any], *, prepare: bool | None = None) -> None:
        self.raw = raw
        self.prepare = prepare

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement."""
        if not parameters:
            return self.raw.execute(sql.encode(), prepare=self.prepare)
        return self.raw.execute(
            _placeholders(sql).encode(), tuple(parameters), prepare=self.prepare
        )

    def unprepared(self) -> PgConnection:
        """The same connection, each statement planned with its parameters at every run: for
        a search, whose plan depends on how selective its tsquery is (a plan made for all
        parameters cannot see that). Planning costs a statement as long as running it."""
        return PgConnection(self.raw, prepare=False)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement per parameter tuple."""
        cur = self.raw.cursor()
        cur.executemany(_placeholders(sql).encode(), [tuple(p) for p in seq_of_parameters])
        return cur


class PostgresTx(SqliteTx):
    """:class:`~.sqlite.SqliteTx`'s queries on PostgreSQL; events are numbered at commit."""

    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(
        self,
        conn: PgConnection,
        after_commit: list[Callable[[], None]],
        events: list[EventHandle] | None,
    ) -> None:
        super().__init__(conn, after_commit)
        self._events = events

    def append_event(
        self,
        name: str,
        payload: bytes,
        chat_id: int | None,
        user_id: int | None,
        now: float,
        message_id: int | None = None,
        except_late: int | None = None,
    ) -> EventHandle:
        """Buffer an event; it is inserted and numbered by the group's last statement."""
        if self._events is None:
            raise RuntimeError("events are appended in write units only")
        handle = EventHandle(name, payload, chat_id, user_id, now, message_id, except_late)
        self._events.append(handle)
        return handle

    def unnumbered_events(self) -> list[EventHandle]:
        """The group's events so far (of its earlier units too): rows at its end."""
        return [] if self._events is None else list(self._events)

    def _event_mark(self) -> int:
        return 0 if self._events is None else len(self._events)

    def _drop_events(self, mark: int) -> None:
        if self._events is not None:
            del self._events[mark:]

    def _newest_seq(self) -> int:
        newest: int = self._scalar("SELECT v FROM event_counter WHERE id = 1")
        return newest

    def try_job_lock(self, job: str) -> bool:
        """The lock of a singleton job until this transaction ends; False if another
        connection (node) holds it. Keyed by the schema too: one database may hold the
        schemas of several independent stores."""
        if self._events is None:
            raise RuntimeError("a job lock is taken in write units only")
        held: bool = self._scalar(
            "SELECT pg_try_advisory_xact_lock(?, hashtext(current_schema() || ':' || ?))",
            (JOB_LOCK_SPACE, job),
        )
        return held

    def database_bytes(self) -> int:
        """Bytes of the tables of this store's schema with their indexes and TOAST (one
        database may hold the schemas of several stores, so not ``pg_database_size``)."""
        size = self._scalar(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
        )
        return int(size)


_NUMBER_EVENTS = (
    b"WITH c AS (UPDATE event_counter SET v = v + %s WHERE id = 1 RETURNING v)"
    b" INSERT INTO events (seq, chat_id, user_id, name, payload, created_at, message_id,"
    b" except_late)"
    b" SELECT c.v - %s + e.ord, e.chat_id, e.user_id, e.name, e.payload, e.created_at,"
    b" e.message_id, e.except_late FROM c, unnest(%s::bigint[], %s::bigint[], %s::text[],"
    b" %s::bytea[], %s::float8[], %s::bigint[], %s::bigint[])"
    b" WITH ORDINALITY AS e(chat_id, user_id, name, payload, created_at, message_id,"
    b" except_late, ord)"
    b" RETURNING seq"
)


def _number_events(conn: psycopg.Connection[Any], events: list[EventHandle]) -> None:
    """Insert a group's events with the next ``len(events)`` seqs (the counter row last)."""
    n = len(events)
    rows = conn.execute(
        _NUMBER_EVENTS,
        (
            n, n,
            [e.chat_id for e in events], [e.user_id for e in events],
            [e.name for e in events], [e.payload for e in events],
            [e.created_at for e in events], [e.message_id for e in events],
            [e.except_late for e in events],
        ),
    ).fetchall()  # fmt: skip
    first = min(r[0] for r in rows)
    for offset, handle in enumerate(events):
        handle.seq = first + offset
    unlogged = [handle.seq for handle in events if not handle.logged]
    if unlogged:  # numbered (a later unit of the group removed what they carry): not kept
        conn.execute(b"DELETE FROM events WHERE seq = ANY(%s)", (unlogged,))


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Run pending migration steps under an advisory lock; refuse a newer schema."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (id smallint PRIMARY KEY CHECK (id = 1), version integer NOT NULL)"
        )
        conn.execute(
            "INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING"
        )
        row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        version = int(row[0]) if row is not None else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this server "
                f"({len(MIGRATIONS)}); upgrade the server"
            )
        for number in range(version, len(MIGRATIONS)):
            log.info("migrating database schema %d -> %d", number, number + 1)
            with conn.transaction():
                conn.execute(postgres_script(MIGRATIONS[number]).encode())
                conn.execute("UPDATE schema_version SET version = %s", (number + 1,))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


DEADLOCK_RETRIES = 5
"""Times a write group is run before a unit chosen as a deadlock victim fails (a safety
net: groups take turns under :data:`WRITE_LOCK`)."""
_RERUN_ON = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class _Rerun(Exception):
    """The group's transaction lost a deadlock: roll it all back and run it again."""


@dataclass(slots=True)
class _Job:
    unit: Callable[[PostgresTx], Any]
    future: asyncio.Future[Any]
    queued: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class _Outcome:
    future: asyncio.Future[Any]
    ok: bool
    value: Any


@dataclass(slots=True)
class _Group:
    jobs: list[_Job]
    outcomes: list[_Outcome] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class PostgresStore:
    """:class:`~messenger_server.storage.Store` on a PostgreSQL database (``postgresql://…``)."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    unavailable: tuple[type[Exception], ...] = (psycopg.OperationalError,)

    def __init__(self, url: str, *, read_pool: int = READ_POOL_SIZE) -> None:
        self.url = url
        self.read_pool = read_pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[psycopg.Connection[Any]] = []
        self._read_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._pending: list[_Job] = []
        self._dispatch_handle: asyncio.Handle | None = None
        self._last: asyncio.Future[Any] | None = None
        self.commits = 0
        """Groups committed so far (one per loop turn with writes, or fewer)."""

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT))

    async def open(self) -> None:
        """Connect, migrate, open the read pool and start the writer thread."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_sync)
        self._readers = ThreadPoolExecutor(self.read_pool, thread_name_prefix="pg-read")
        self._writer = threading.Thread(target=self._write_loop, name="pg-writer", daemon=True)
        self._writer.start()

    def _open_sync(self) -> None:
        conn = self._connect()
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Commit what is pending, stop the writer and disconnect."""
        if self._writer is None:
            return
        if self._dispatch_handle is not None:
            self._dispatch_handle.cancel()
            self._dispatch()
        await self.sync()
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- reads ------------------------------------------------------------------

    async def read(self, unit: Callable[[PostgresTx], T]) -> T:
        """Run a read-only unit on a pooled connection (one snapshot)."""
        if self._readers is None or self._loop is None:
            raise RuntimeError("store is not open")
        after: list[Callable[[], None]] = []
        result = await self._loop.run_in_executor(self._readers, self._read_sync, unit, after)
        for callback in after:
            callback()
        return result

    def _read_sync(self, unit: Callable[[PostgresTx], T], after: list[Callable[[], None]]) -> T:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            # not plan_cache_mode = force_custom_plan for every read: planning the chat
            # list's statement at each GET /chats cost the server 500-700 us of PostgreSQL
            # CPU (issue 11). Searches are planned with their parameters on their own
            # (PgConnection.unprepared)
            self._local.conn = conn
            with self._read_lock:
                self._read_conns.append(conn)
        started = time.perf_counter()
        try:
            return unit(PostgresTx(PgConnection(conn), after, None))
        finally:
            took = time.perf_counter() - started
            if took > SLOW and _slow_lines("read"):
                log.warning("slow read: %s took %.2f s", _unit_name(unit), took)

    # --- writes -----------------------------------------------------------------

    async def write(self, unit: Callable[[PostgresTx], T]) -> T:
        """Run a unit atomically with the others of this loop turn; return once committed."""
        if self._writer is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._pending.append(_Job(unit, future))
        self._last = future
        if self._dispatch_handle is None:
            self._dispatch_handle = loop.call_soon(self._dispatch)
        # the commit happens whether or not this waiter is still interested
        return await asyncio.shield(future)

    async def sync(self) -> None:
        """Wait until every write so far is committed."""
        if self._last is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._last)

    def _dispatch(self) -> None:
        self._dispatch_handle = None
        jobs, self._pending = self._pending, []
        if jobs:
            self._queue.put(jobs)

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            jobs = list(first)
            while True:  # everything queued meanwhile joins this group
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.extend(more)
            group = _Group(jobs)
            try:
                self._commit(group)
            except psycopg.OperationalError as exc:
                # the database is away: every group fails alike, a few lines say so
                if _commit_log_limit.allow("commit failed"):
                    log.warning("commit of %d unit(s) failed, rolled back: the database did"
                                " not answer: %s", len(jobs), exc)  # fmt: skip
                self._fail(jobs, exc)
                continue
            except Exception as exc:
                log.exception("commit failed; the group is rolled back")
                self._fail(jobs, exc)
                continue
            self._finish(group)

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        self._recover()
        self._finish(_Group(jobs, [_Outcome(job.future, False, exc) for job in jobs]))

    def _commit(self, group: _Group) -> None:
        """Run and commit the group; rerun it whole if PostgreSQL picked it as a deadlock
        victim (several nodes' groups may lock the same rows in another order)."""
        first_started = time.perf_counter()
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                self._commit_once(group, last=attempt == DEADLOCK_RETRIES, since=first_started)
                return
            except _Rerun as rerun:
                log.info("write group of %d unit(s) rerun (attempt %d): %s",
                         len(group.jobs), attempt, rerun.__cause__)  # fmt: skip
                assert self._conn is not None
                self._conn.execute(b"ROLLBACK")
                group.outcomes.clear()
                group.after_commit.clear()

    def _commit_once(self, group: _Group, *, last: bool, since: float) -> None:
        """One attempt; ``since`` is when the group's first attempt began (a rerun's time
        in the earlier attempts is reported apart from the wait for the writer)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        conn = self._conn
        events: list[EventHandle] = []
        tx = PostgresTx(PgConnection(conn), group.after_commit, events)
        # one writing group at a time in the whole cluster (one round trip with BEGIN): units
        # of different nodes' groups lock hot rows (the chat row, rate counters) in any
        # order, and the chat row and the counter row serialize such groups anyway
        started = time.perf_counter()
        conn.execute(
            b"BEGIN; SELECT pg_advisory_xact_lock(%d, hashtext(current_schema()))" % WRITE_LOCK
        )
        locked = time.perf_counter()
        slowest, slowest_unit = 0.0, None
        for job in group.jobs:
            events_mark, after_mark = len(events), len(group.after_commit)
            conn.execute(b"SAVEPOINT unit")
            unit_started = time.perf_counter()
            try:
                result = job.unit(tx)
            except Exception as exc:
                if not last and isinstance(exc, _RERUN_ON):
                    raise _Rerun from exc
                conn.execute(b"ROLLBACK TO SAVEPOINT unit")
                conn.execute(b"RELEASE SAVEPOINT unit")
                del events[events_mark:]
                del group.after_commit[after_mark:]
                group.outcomes.append(_Outcome(job.future, False, exc))
                continue
            finally:
                took = time.perf_counter() - unit_started
                if took > slowest:
                    slowest, slowest_unit = took, job.unit
            conn.execute(b"RELEASE SAVEPOINT unit")
            group.outcomes.append(_Outcome(job.future, True, result))
        if events:
            _number_events(conn, events)
        committing = time.perf_counter()
        conn.execute(b"COMMIT")
        self.commits += 1
        done = time.perf_counter()
        waited = since - min(job.queued for job in group.jobs)
        if waited + done - since > SLOW and _slow_lines("write"):
            log.warning(
                "slow write group of %d unit(s): %.2f s for the writer, %.2f s in earlier"
                " attempts (deadlock reruns), %.2f s for the write lock, %.2f s in its slowest"
                " unit (%s), %.2f s to commit",
                len(group.jobs), waited, started - since, locked - started, slowest,
                _unit_name(slowest_unit), done - committing,
            )  # fmt: skip

    def _recover(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if conn.broken or conn.closed:
                raise psycopg.OperationalError("connection lost")
            conn.execute(b"ROLLBACK")
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._conn = None

    def _finish(self, group: _Group) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(_resolve, group)
        except RuntimeError:  # the loop is closed (shutting down)
            log.warning("event loop closed before %d writes were acknowledged", len(group.jobs))


_slow_log_limit = LogLimiter(logger=log)
"""Slow write groups (the writer thread) and reads (the pool's threads): under a lock."""
_slow_log_lock = threading.Lock()


def _slow_lines(kind: str) -> bool:
    with _slow_log_lock:
        return _slow_log_limit.allow(kind)


def _unit_name(unit: Callable[..., Any] | None) -> str:
    """Where a unit of work was written (a service method's closure, mostly)."""
    return getattr(unit, "__qualname__", repr(unit))


def _resolve(group: _Group) -> None:
    """On the loop: after-commit callbacks in commit order, then the writers' results."""
    for callback in group.after_commit:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")
    for outcome in group.outcomes:
        if outcome.future.done():
            continue
        if outcome.ok:
            outcome.future.set_result(outcome.value)
        else:
            outcome.future.set_exception(outcome.value)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed write's exception as seen (its waiter may have gone)."""
    if not future.cancelled():
        future.exception()

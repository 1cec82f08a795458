"""Several real server nodes on one PostgreSQL database with a Redis or NATS bus.

:class:`Cluster` starts N ``messenger-server`` processes on free ports, every one on the
same fresh schema (``--store``) and the same bus with a channel prefix of its own
(``--bus-channel``), so clusters of different tests never hear each other. Redis pub/sub
and core NATS keep nothing, so stopping the nodes is the whole clean-up.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import postgres
from tests.support.server import ServerProcess

__all__ = [
    "BUS_URLS",
    "UNAVAILABLE_PREFIXES",
    "Cluster",
    "RoundRobin",
    "bus_unavailable",
    "host_port",
    "one_node",
    "require_bus",
]

BUS_URLS = {
    "redis": os.environ.get("MESSENGER_TEST_REDIS", "redis://127.0.0.1:6379"),
    "nats": os.environ.get("MESSENGER_TEST_NATS", "nats://127.0.0.1:4222"),
}
"""The bus servers the cluster tests use (override with MESSENGER_TEST_REDIS / _NATS)."""

UNAVAILABLE_PREFIXES = ("no Redis at ", "no NATS at ", "no S3 emulator at ")
"""How every skip reason for want of a bus (or of the S3 emulator) begins."""


def host_port(url: str, default: int) -> tuple[str, int]:
    """The host and port of a service URL."""
    rest = url.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port) if port else default


def bus_unavailable(kind: str) -> str | None:
    """Why the ``kind`` bus ("redis" or "nats") cannot be used here (None: it can)."""
    url = BUS_URLS[kind]
    host, port = host_port(url, 6379 if kind == "redis" else 4222)
    prefix = UNAVAILABLE_PREFIXES[0] if kind == "redis" else UNAVAILABLE_PREFIXES[1]
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.settimeout(3)
            if kind == "redis":
                sock.sendall(b"PING\r\n")
                answer = sock.recv(64)
                ok = answer.startswith(b"+PONG") or answer.startswith(b"-NOAUTH")
            else:
                ok = sock.recv(4096).startswith(b"INFO ")
    except OSError as exc:
        return f"{prefix}{host}:{port}: {exc.strerror or type(exc).__name__}"
    if not ok:
        return f"{prefix}{host}:{port}: it does not answer as {kind} does"
    return None


def require_bus(kind: str) -> None:
    """Skip the test without the ``kind`` bus (fail instead under ``CI=true``)."""
    reason = bus_unavailable(kind)
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


_KEPT_TABLES = ("schema_version", "event_counter", "node_leases")
"""What :meth:`Cluster.empty_store` leaves: the schema's version, the event id counter
(ids go on, as the nodes' event windows expect) and the nodes' leases."""


def _delete_order(store_url: str) -> list[str]:
    """The store's tables but the kept ones, each after every table that references it
    (a foreign key's table is emptied before the one it points to)."""
    tables = {name for (name,) in postgres.query(
        store_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )} - set(_KEPT_TABLES)  # fmt: skip
    refs = postgres.query(
        store_url,
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    referenced_by: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in refs:
        if child != parent and child in tables and parent in tables:
            referenced_by[parent].add(child)
    order: list[str] = []
    while referenced_by:
        ready = sorted(t for t, children in referenced_by.items() if not children)
        assert ready, f"a cycle of foreign keys among {sorted(referenced_by)}"
        order += ready
        for t in ready:
            del referenced_by[t]
        for children in referenced_by.values():
            children.difference_update(ready)
    return order


class Cluster:
    """N nodes on one store and one bus; ``nodes[i].url`` is node i.

    ``node_env`` adds env vars to some nodes (``{0: {"MESSENGER_TEST_FAULTS": ...}}``);
    ``node_bus`` points some nodes at another bus URL (a :class:`FaultProxy` in front),
    ``node_store`` some at another URL of the same store (the same, through a proxy);
    ``clock_file`` is one test clock every node reads (``ServerProcess.set_time``);
    ``blob_dir`` is the nodes' one ``--blob-store`` directory, which :meth:`empty_store`
    empties too.
    """

    def __init__(
        self,
        root: Path,
        store_url: str,
        bus: str,
        *,
        size: int = 3,
        args: Sequence[str] = (),
        node_env: Mapping[int, Mapping[str, str]] | None = None,
        node_bus: Mapping[int, str] | None = None,
        node_store: Mapping[int, str] | None = None,
        clock_file: Path | None = None,
        blob_dir: Path | None = None,
    ) -> None:
        self.store_url = store_url
        self.blob_dir = blob_dir
        self.bus_url = "postgres" if bus == "postgres" else BUS_URLS[bus]  # postgres: the store
        self.node_bus = dict(node_bus or {})
        self.node_store = dict(node_store or {})
        self.channel = "mtest-" + uuid.uuid4().hex[:12]
        blobs = ["--blob-store", str(blob_dir)] if blob_dir is not None else []
        self.nodes = [
            ServerProcess(
                root / f"node{i}",
                args=[*self._flags(i), *blobs, *args],
                env=dict((node_env or {}).get(i, {})),
                clock_file=clock_file,
            )
            for i in range(size)
        ]
        self._seed: list[tuple[Any, ...]] | None = None
        self._plan: list[str] | None = None

    def _flags(self, i: int) -> list[str]:
        return ["--store", self.node_store.get(i, self.store_url),
                "--bus", self.node_bus.get(i, self.bus_url),
                "--bus-channel", self.channel, "--node-id", f"node{i}"]  # fmt: skip

    def start(self) -> None:
        """Start every node at once (the first migrates, the others wait for its lock)."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(node.start) for node in self.nodes]:
                future.result()

    def stop(self) -> None:
        """Kill every node (nothing of the bus outlives them)."""
        for node in self.nodes:
            node.kill()

    def shut_down(self) -> None:
        """SIGTERM every node at once and wait for each to exit (drained)."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(node.stop) for node in self.nodes]:
                future.result()

    def url(self, i: int) -> str:
        """The base URL of node ``i % size`` (round robin)."""
        return self.nodes[i % len(self.nodes)].url

    def empty_store(self) -> None:
        """Make the running cluster's store as a fresh schema is, ids aside: every table
        emptied but the kept ones, the general chat as the migration made it. The nodes
        keep running; call it between tests, with no request or stream open.

        One transaction of ``DELETE``s, referencing tables first: on these few rows that
        is ~20 times cheaper than a ``TRUNCATE`` of every table (a new file per table),
        and it locks rows, not tables, so a node's own late write (a stream's row, a
        lease) waits at most for it or is waited for, instead of deadlocking against
        table locks taken one by one. A deadlock or a row a node inserted meanwhile
        (an FK failure) rolls it back; it tries again."""
        if self._plan is None:
            self._plan = _delete_order(self.store_url)
            self._seed = postgres.query(self.store_url, "SELECT * FROM chats WHERE id = 1")
        assert self._seed is not None
        retry = (psycopg.errors.DeadlockDetected, psycopg.errors.ForeignKeyViolation,
                 psycopg.errors.LockNotAvailable)  # fmt: skip
        with psycopg.connect(self.store_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")
            for attempt in range(5):
                try:
                    with conn.transaction():
                        # one round trip: statements without parameters go as one query
                        conn.execute("; ".join(f"DELETE FROM {t}" for t in self._plan).encode())
                        for row in self._seed:
                            marks = ", ".join(["%s"] * len(row))
                            conn.execute(f"INSERT INTO chats VALUES ({marks})".encode(), row)
                    break
                except retry:
                    if attempt == 4:
                        raise
        if self.blob_dir is not None and self.blob_dir.exists():  # the rows are gone: the bytes
            for entry in self.blob_dir.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def set_time(self, now: float) -> None:
        """Move the one clock of every node (needs ``clock_file``)."""
        self.nodes[0].set_time(now)

    def real_time(self) -> None:
        """Give every node the real time again (no clock file)."""
        clock = self.nodes[0].clock_file
        assert clock is not None, "start the cluster with a clock_file"
        clock.unlink(missing_ok=True)

    def logs(self) -> str:
        """The tail of every node's log (for a failing assertion)."""
        return "\n".join(f"--- node{i}\n{n.log()[-2000:]}" for i, n in enumerate(self.nodes))


class RoundRobin:
    """A cluster in place of one server for the e2e tests: every read of :attr:`url`
    names the next node, so consecutive requests and streams of a test (each a new
    connection) land on different nodes, as a balancer would put them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._turn = 0

    @property
    def url(self) -> str:
        """The base URL of the next node."""
        return self.node().url

    def node(self) -> ServerProcess:
        """The next node (a test that needs one process: its files, its memory)."""
        self._turn += 1
        return self.cluster.nodes[(self._turn - 1) % len(self.cluster.nodes)]

    def restart(self) -> None:
        """One step of a rolling restart: SIGTERM the node the next :attr:`url` names and
        start it again, the others serving meanwhile; the next request goes to it."""
        self.cluster.nodes[self._turn % len(self.cluster.nodes)].restart()

    def stop(self) -> None:
        """Stop every node (the whole cluster down; :meth:`start` brings it back)."""
        self.cluster.shut_down()

    def start(self) -> None:
        """Start every node again."""
        self.cluster.start()

    @property
    def store_url(self) -> str:
        """The nodes' one PostgreSQL store (for ``tests/support/db``)."""
        return self.cluster.store_url

    def set_time(self, now: float) -> None:
        """Move the cluster's one clock (``ServerProcess.set_time`` of every node)."""
        self.cluster.set_time(now)


def one_node(server: ServerProcess | RoundRobin) -> ServerProcess:
    """The server itself, or the next node of a cluster (a test about one process)."""
    return server.node() if isinstance(server, RoundRobin) else server

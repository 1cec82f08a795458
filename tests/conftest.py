"""Shared fixtures: the real server process on a free port with a temporary data dir.

The server runs on SQLite in its data dir, or, where ``store_kind`` is
``"postgres"`` (``tests/e2e/`` runs every test on both), on a fresh schema of a
PostgreSQL database made for the test module. Without a reachable PostgreSQL
those tests skip (one summary line says why); with ``CI=true`` they fail.

Where ``store_kind`` is ``"cluster"`` (the e2e tests marked ``cluster_too``), ``server``
is three nodes on PostgreSQL with a Redis bus, one cluster per xdist worker emptied
before each test, and every read of ``server.url`` names the next node. ``clocked`` is a
server whose clock the test moves (on the cluster: its nodes' one clock file).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from messenger_client import Client
from tests.support import postgres
from tests.support.cluster import UNAVAILABLE_PREFIXES, Cluster, RoundRobin, require_bus
from tests.support.plain import Plain, StartPlain
from tests.support.server import ServerProcess

_PG_SKIPPED: list[str] = []


def _require_postgres() -> None:
    reason = postgres.unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    _PG_SKIPPED.append(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[postgres.PgDatabase]:
    """A PostgreSQL database for this test module (``m_<uuid>``), dropped after it."""
    _require_postgres()
    database = postgres.PgDatabase()
    database.create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def store_kind() -> str:
    """Which store the servers of a test run on (``tests/e2e`` parametrizes it)."""
    return "sqlite"


@pytest.fixture
def server_factory(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra flags/env: ``server_factory(args=[...], clock_file=...)``."""
    started: list[ServerProcess] = []
    database: postgres.PgDatabase | None = None
    if store_kind == "postgres":
        database = request.getfixturevalue("pg_database")

    def start(**kwargs: object) -> ServerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        env = dict(kwargs.pop("env", None) or {})  # type: ignore[call-overload]
        if database is not None:
            env.setdefault("MESSENGER_STORE", database.new_store())
        srv = ServerProcess(data_dir, env=env, **kwargs)  # type: ignore[arg-type]
        started.append(srv)
        srv.start()
        return srv

    yield start
    for srv in started:
        srv.kill()


E2E_CLUSTER_ARGS = ("--admins", "root", "--scheduled-max-pending", "3",
                    "--message-max-age", "18000")  # fmt: skip
"""The flags of the e2e cluster's nodes besides their store, bus and files: a ``clocked``
test on the cluster may ask for these, no others (it cannot start nodes of its own)."""


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes on PostgreSQL with a Redis bus, shared by the ``[cluster]`` e2e tests
    of this worker (a cluster per test would cost 4 s of CPU each); they read one clock
    file, absent (the real time) except while a ``clocked`` test runs."""
    _require_postgres()
    require_bus("redis")
    database = postgres.PgDatabase()
    database.create()
    root = tmp_path_factory.mktemp("e2e-cluster")
    nodes = Cluster(root, database.new_store(), "redis", args=E2E_CLUSTER_ARGS,
                    clock_file=root / "clock", blob_dir=root / "blobs")  # fmt: skip
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        database.drop()


@pytest.fixture
def server(store_kind: str, request: pytest.FixtureRequest) -> ServerProcess | RoundRobin:
    """A running server with default settings (or, for ``cluster``, 3 nodes round robin)."""
    if store_kind == "cluster":
        nodes: Cluster = request.getfixturevalue("e2e_cluster")
        nodes.empty_store()
        nodes.real_time()  # after: nothing of the last test is left to expire or send
        return RoundRobin(nodes)
    start: Callable[..., ServerProcess] = request.getfixturevalue("server_factory")
    return start()


@pytest.fixture
def clocked(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[..., ServerProcess | RoundRobin]:
    """``clocked(t0, *args)``: a server with extra flags whose clock is a file at ``t0``,
    moved by ``set_time``. On the cluster it is the e2e cluster, its one clock at ``t0``:
    ``args`` must be among :data:`E2E_CLUSTER_ARGS`."""

    def start(t0: float, *args: str) -> ServerProcess | RoundRobin:
        if store_kind == "cluster":
            flags = dict(zip(E2E_CLUSTER_ARGS[::2], E2E_CLUSTER_ARGS[1::2], strict=True))
            asked = dict(zip(args[::2], args[1::2], strict=True))
            assert asked.items() <= flags.items(), f"the e2e cluster does not run with {args}"
            nodes: RoundRobin = request.getfixturevalue("server")
            nodes.set_time(t0)
            return nodes
        clock = tmp_path / "clock"
        clock.write_text(repr(t0))
        factory: Callable[..., ServerProcess] = request.getfixturevalue("server_factory")
        return factory(clock_file=clock, args=list(args))

    return start


def _skip_reason(report: pytest.TestReport, prefixes: tuple[str, ...]) -> str | None:
    """The reason of a test skipped for want of a service (also from an xdist worker)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(prefixes):
            return reason
    return None


@pytest.fixture
async def clients(server: ServerProcess) -> AsyncIterator[Callable[[], Client]]:
    """Client-library clients of the default server, closed after the test."""
    made: list[Client] = []

    def make() -> Client:
        client = Client(server.url, device="tests")
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
async def plain_on(tmp_path: Path) -> AsyncIterator[Callable[[ServerProcess], StartPlain]]:
    """Plain console clients (``--plain``, stdin/stdout pipes) of a given server."""
    procs: list[asyncio.subprocess.Process] = []

    def on(server: ServerProcess) -> StartPlain:
        async def start(*args: str) -> Plain:
            home = tmp_path / f"client{len(procs)}"
            env = {**os.environ, "MESSENGER_CLIENT_HOME": str(home)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "messenger_client", "--plain", "--server", server.url,
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            procs.append(proc)
            return Plain(proc)

        return start

    yield on
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
def plain(server: ServerProcess, plain_on: Callable[[ServerProcess], StartPlain]) -> StartPlain:
    """Plain console clients of the default server."""
    return plain_on(server)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker more than the machine has cores. A worker spends about a
    third of its time waiting for the server processes of its test (their CPU is counted
    apart), so a worker per core left the cores a third idle.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for all skipped PostgreSQL tests and one per missing bus (the workers'
    skips reach the controller)."""
    reasons = list(_PG_SKIPPED)
    buses: dict[str, str] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = _skip_reason(report, (postgres.UNAVAILABLE_PREFIX,))
        if reason is not None:
            reasons.append(reason)
        bus = _skip_reason(report, UNAVAILABLE_PREFIXES)
        if bus is not None:
            buses.setdefault(bus.split(" at ", 1)[0], bus)
    if reasons:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {reasons[0]}", yellow=True)
    for reason in buses.values():
        terminalreporter.write_line(f"cluster tests skipped: {reason}", yellow=True)

"""Cluster tests: 3 real nodes on one PostgreSQL database, once with Redis, once with NATS.

Every test here is marked ``cluster``. Without a reachable Redis (or NATS) the tests
on that bus skip with one summary line; with ``CI=true`` they fail instead, like the
PostgreSQL tests. A module may set ``CLUSTER_ARGS`` (extra server flags for its nodes),
``CLUSTER_NODE_ENV`` (env vars of some nodes, by index: test faults) and
``CLUSTER_CLOCK = True`` (one test clock file for its nodes, the real time until a test
writes it with ``nodes[0].set_time``: put such a test last in its module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import postgres
from tests.support.cluster import Cluster, require_bus


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/cluster ``cluster``."""
    for item in items:
        if "tests/cluster/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(params=["redis", "nats"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """A bus that answers here, for tests that build their own cluster."""
    kind: str = request.param
    require_bus(kind)
    return kind


@pytest.fixture(scope="module", params=["redis", "nats"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """Three nodes of this module on a fresh schema, with the bus of this run."""
    kind: str = request.param
    require_bus(kind)
    database: postgres.PgDatabase = request.getfixturevalue("pg_database")
    args: list[str] = list(getattr(request.module, "CLUSTER_ARGS", []))
    node_env: dict[int, dict[str, str]] = dict(getattr(request.module, "CLUSTER_NODE_ENV", {}))
    root = tmp_path_factory.mktemp(f"cluster-{kind}")
    clocked = bool(getattr(request.module, "CLUSTER_CLOCK", False))
    nodes = Cluster(
        root,
        database.new_store(),
        kind,
        args=args,
        node_env=node_env,
        clock_file=root / "clock" if clocked else None,
    )
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()

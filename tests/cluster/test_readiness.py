"""``/readyz`` on cluster nodes: ready while the store and the bus answer, 503 if not."""

from __future__ import annotations

from pathlib import Path

from messenger_protocol import Readiness, decode
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.server import ServerProcess, free_port
from tests.support.wire import call, register, send


async def test_every_node_is_ready_with_its_name_and_bus(cluster: Cluster) -> None:
    """Issue 13 (/readyz): each node answers ready, naming itself and its bus."""
    kind = cluster.bus_url.partition("://")[0]
    for i, node in enumerate(cluster.nodes):
        resp = await call(node.url, "GET", "/readyz")
        assert resp.status_code == 200, resp.text
        assert decode(Readiness, resp.content) == Readiness(node=f"node{i}", bus=kind)


async def test_a_node_without_its_bus_is_not_ready_but_serves(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 (/readyz): a node whose Redis does not answer says 503 ``unavailable``
    (a balancer stops sending it clients) yet serves what it can: its writes go to the
    database, its own streams get them."""
    nowhere = f"redis://127.0.0.1:{free_port()}"
    node = ServerProcess(
        tmp_path / "node",
        args=["--store", pg_database.new_store(), "--bus", nowhere, "--node-id", "lonely"],
    )
    node.start()
    try:
        resp = await call(node.url, "GET", "/readyz")
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["code"] == "unavailable"
        assert error["message"] == "not ready: the redis event bus does not answer"
        assert (await call(node.url, "GET", "/healthz")).status_code == 200  # alive
        token = (await register(node.url, "alone"))["token"]
        assert (await send(node.url, token, "still works")).status_code == 200
    finally:
        node.kill()

"""``/readyz``: the node's store and event bus answer (issue 13)."""

from __future__ import annotations

from messenger_protocol import Readiness, decode
from tests.support.server import ServerProcess
from tests.support.wire import call


async def test_a_single_node_is_ready(server: ServerProcess) -> None:
    """Issue 13 (/readyz): one node on the local bus is ready once it serves."""
    resp = await call(server.url, "GET", "/readyz")
    assert resp.status_code == 200, resp.text
    ready = decode(Readiness, resp.content)
    assert (ready.status, ready.bus) == ("ready", "local")
    assert ready.node.endswith(f":{server.port}")  # default node id: hostname:port

"""The client's address behind a load balancer (issue 13): PROXY protocol v2 from trusted
proxies only, on real server processes, then once through HAProxy (``send-proxy-v2``).

Without an ``haproxy`` binary the HAProxy test skips with the reason (``.ci/run``
installs Debian's package; with ``CI=true`` it fails instead)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.server import ServerProcess, free_port
from tests.support.wire import SseReader, call, message_event, proxy_v2_header, register, send

WAIT = 60.0


async def proxied(
    port: int, source: tuple[str, int] | None, request: bytes, *, header: bytes | None = None
) -> tuple[int, bytes]:
    """One request on a new connection that starts with a PROXY v2 header from ``source``
    (or ``header`` as given); the answer's status and body (the server closes after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((proxy_v2_header(source) if header is None else header) + request)
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def http(method: str, path: str, token: str | None = None, body: Any = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def addresses(status_body: bytes) -> list[tuple[str, bool]]:
    """(address, streaming) of every connection /status lists."""
    return [(c["address"], c["streaming"]) for c in json.loads(status_body)["connections"]]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServerProcess]:
    """One node behind a "proxy" at 127.0.0.1 that sends PROXY v2 headers."""
    srv = ServerProcess(
        tmp_path / "node",
        args=["--trusted-proxies", "127.0.0.1/32", "--proxy-protocol", "on",
              "--max-connections-per-ip", "2"],
        probe_prefix=proxy_v2_header(None),
    )  # fmt: skip
    yield srv
    srv.kill()


async def test_proxy_v2_from_a_trusted_proxy_gives_the_client_address(
    node: ServerProcess,
) -> None:
    """/status shows the address the PROXY header names, for the request and for a live
    stream; two connections of one client fit ``--max-connections-per-ip 2``, a third is
    refused (429) while another client still gets in; a connection from the proxy
    without a header is refused (400)."""
    await asyncio.to_thread(node.start)
    credentials = {"login": "behind", "password": "password1"}
    register_request = http("POST", "/api/v1/auth/register", body=credentials)
    status, body = await proxied(node.port, ("203.0.113.7", 5000), register_request)
    assert status == 200, body
    token = json.loads(body)["token"]
    status, body = await proxied(node.port, ("203.0.113.7", 5001), http(
        "GET", "/api/v1/status", token))  # fmt: skip
    assert status == 200 and addresses(body) == [("203.0.113.7:5001", False)], body

    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(proxy_v2_header(("198.51.100.9", 7000)) + (
        f"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode())  # fmt: skip
    _, held = await asyncio.open_connection("127.0.0.1", node.port)
    held.write(proxy_v2_header(("198.51.100.9", 7001)) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    try:
        async with asyncio.timeout(WAIT):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            status, body = await proxied(node.port, ("203.0.113.7", 5002), http(
                "POST", "/api/v1/chats/1/messages", token, {"text": "via proxy"}))  # fmt: skip
            assert status == 200, body
            while b"via proxy" not in await reader.read(65536):  # the stream is attached
                pass
        status, body = await proxied(node.port, ("203.0.113.7", 5003), http(
            "GET", "/api/v1/status", token))  # fmt: skip
        assert ("198.51.100.9:7000", True) in addresses(body), body
        # 198.51.100.9 holds 2 connections (the stream and a request under way): a third
        status, body = await proxied(node.port, ("198.51.100.9", 7002), http("GET", "/healthz"))
        assert status == 429 and b'"rate_limited"' in body, body
        status, _ = await proxied(node.port, ("192.0.2.1", 1), http("GET", "/healthz"))
        assert status == 200
    finally:
        writer.close()
        held.close()
    status, body = await proxied(node.port, None, http("GET", "/healthz"), header=b"")
    assert status == 400 and b"bad PROXY header" in body, body


async def test_an_untrusted_peer_cannot_claim_an_address(tmp_path: Path) -> None:
    """With only 10.0.0.0/8 trusted, a PROXY header from 127.0.0.1 is not HTTP (400) and
    its X-Forwarded-For is passed over: /status shows the real 127.0.0.1."""
    args = ["--trusted-proxies", "10.0.0.0/8", "--proxy-protocol", "on"]
    srv = ServerProcess(tmp_path / "node", args=args)
    await asyncio.to_thread(srv.start)
    try:
        status, _ = await proxied(srv.port, ("203.0.113.7", 5000), http("GET", "/healthz"))
        assert status == 400
        token = (await register(srv.url, "outside"))["token"]
        resp = await call(srv.url, "GET", "/api/v1/status", token,
                          headers={"X-Forwarded-For": "203.0.113.7"})  # fmt: skip
        assert resp.status_code == 200
        assert [a.split(":")[0] for a, _ in addresses(resp.content)] == ["127.0.0.1"]
    finally:
        srv.kill()


HAPROXY_CONFIG = """\
global
    maxconn 1000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option redispatch
    retries 3
frontend messenger
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""
"""docs/scaleout.md's example, on free ports: SSE lives on 60 s timeouts (15 s heartbeats)."""


def _haproxy_unavailable() -> str | None:
    if shutil.which("haproxy") is not None:
        return None
    reason = "haproxy is not installed (apt-get install haproxy)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    return reason


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_through_haproxy_send_proxy_v2_every_node_sees_the_client(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 (Phase 3 acceptance 3): 3 nodes behind HAProxy 2.6 with ``send-proxy-v2``
    and ``/readyz`` checks; a stream through it is listed in /status with the client's own
    address and port (not HAProxy's), and gets a message posted through another node."""
    reason = _haproxy_unavailable()
    if reason is not None:
        pytest.skip(reason)
    args = ["--trusted-proxies", "127.0.0.1/32", "--proxy-protocol", "on"]
    cluster = Cluster(tmp_path, pg_database.new_store(), bus_kind, args=args)
    for n in cluster.nodes:
        n.probe_prefix = proxy_v2_header(None)
    port = free_port()
    servers = "\n".join(
        f"    server node{i} 127.0.0.1:{n.port} check inter 300ms send-proxy-v2 check-send-proxy"
        for i, n in enumerate(cluster.nodes)
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    log = (tmp_path / "haproxy.log").open("wb")
    haproxy: asyncio.subprocess.Process | None = None
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(cluster.start)
        haproxy = await asyncio.create_subprocess_exec(
            "haproxy", "-db", "-f", str(config), stdout=log, stderr=log
        )
        async with (
            httpx.AsyncClient(verify=tls_context(), timeout=10.0) as client,
            asyncio.timeout(WAIT),
        ):
            up = 0
            while up < 3:  # every node's check has passed: each answers in turn
                try:
                    ready = await client.get(f"{base}/readyz", headers={"Connection": "close"})
                    up = up + 1 if ready.status_code == 200 else 0
                except httpx.TransportError:
                    up = 0
                if up < 3:
                    await asyncio.sleep(0.1)  # paces the asking; HAProxy says nothing
        alice = (await register(base, "ha-alice"))["token"]
        bob = (await register(base, "ha-bob"))["token"]
        async with SseReader(base, bob) as stream:
            assert stream.status == 200
            own_port = stream.local_port
            sent = (await send(base, alice, "through haproxy")).json()["id"]
            events = await stream.until(message_event(sent), timeout=WAIT)
            assert isinstance(events[-1][1], MessageCreated)
            # /status is answered by whichever node; only the stream's node lists it
            found: list[tuple[str, bool]] = []
            for _ in range(3):
                resp = await call(base, "GET", "/api/v1/status", bob)
                found += addresses(resp.content)
            assert (f"127.0.0.1:{own_port}", True) in found, found
    finally:
        if haproxy is not None and haproxy.returncode is None:
            haproxy.terminate()
            await haproxy.wait()
        log.close()
        cluster.stop()

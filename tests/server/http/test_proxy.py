"""The client's address behind a trusted load balancer: PROXY protocol v2 and
X-Forwarded-For (issue 13). Believed only from ``trusted_proxies``; a bad header is
refused with ``400 invalid`` and the connection closed."""

from __future__ import annotations

import pytest

from messenger_server.http import (
    ProxyHeaderError,
    ProxySource,
    Request,
    Response,
    TrustedProxies,
    parse_proxy_v2,
)
from tests.server.http.conftest import Connect, Serve
from tests.support.wire import proxy_v2_header

GET = b"GET /who HTTP/1.1\r\nHost: t\r\n\r\n"
HEADER_MAX = 4096
"""Longest address block + TLVs a v2 header may carry here."""


async def whoami(request: Request) -> Response:
    return Response(body=request.peer.encode())


def parse(header: bytes) -> ProxySource | None:
    return parse_proxy_v2(header[:16], header[16:])


def test_v2_headers_name_the_client() -> None:
    assert parse(proxy_v2_header(("203.0.113.7", 4567))) == ProxySource("203.0.113.7", 4567)
    assert parse(proxy_v2_header(("2001:db8::1", 443), ("::1", 80))) == ProxySource(
        "2001:db8::1", 443
    )
    assert parse(proxy_v2_header(("::ffff:198.51.100.2", 9), ("::1", 80))) == ProxySource(
        "198.51.100.2", 9
    )
    tlv = b"\x04\x00\x02hi"  # a NOOP TLV: passed over
    assert parse(proxy_v2_header(("192.0.2.1", 1), tlvs=tlv)) == ProxySource("192.0.2.1", 1)
    assert parse(proxy_v2_header(None)) is None  # LOCAL: the proxy's own health check


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "did not start with a PROXY protocol v2"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "v1 is not supported"),
        (proxy_v2_header(("192.0.2.1", 1)).replace(b"\n\x21", b"\n\x31", 1), "version 3"),
        (proxy_v2_header(("192.0.2.1", 1)).replace(b"\n\x21", b"\n\x22", 1), "command 2"),
        (proxy_v2_header(("192.0.2.1", 1)).replace(b"\x21\x11", b"\x21\x12", 1), "not TCP"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x08" + bytes(8), "IPv4 addresses cut short"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x0c" + bytes(12), "IPv6 addresses cut short"),
    ],
)
def test_bad_headers_are_refused(header: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why):
        parse(header)


def test_a_header_may_carry_4096_bytes_not_one_more() -> None:
    fits = proxy_v2_header(("192.0.2.1", 1), tlvs=b"\x04" + (HEADER_MAX - 15).to_bytes(2, "big")
                           + bytes(HEADER_MAX - 15))  # fmt: skip
    assert len(fits) == 16 + HEADER_MAX
    assert parse(fits) == ProxySource("192.0.2.1", 1)
    with pytest.raises(ProxyHeaderError, match="4097 bytes is too long"):
        parse(fits[:14] + (HEADER_MAX + 1).to_bytes(2, "big") + fits[16:] + b"\x00")


def test_forwarded_for_is_walked_from_the_right_past_trusted_proxies() -> None:
    trusted = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"])
    assert trusted.client_ip("127.0.0.1", "198.51.100.1, 10.1.2.3") == "198.51.100.1"
    # the left part is the client's to write: only the first untrusted hop from the right
    assert trusted.client_ip("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.0.0.9") == "198.51.100.1"
    assert trusted.client_ip("127.0.0.1", "10.0.0.1") == "10.0.0.1"
    assert trusted.client_ip("127.0.0.1", "not-an-ip") is None
    assert trusted.client_ip("192.0.2.50", "198.51.100.1") is None  # not a trusted peer
    assert "::ffff:10.2.3.4" in trusted and "10.2.3.4" in trusted and "11.0.0.1" not in trusted


async def test_a_trusted_proxys_header_sets_the_address_of_every_request(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]),
                         proxy_protocol=True)  # fmt: skip
    client = await connect(server)
    await client.send(proxy_v2_header(("203.0.113.7", 4567)) + GET)
    assert (await client.response()).body == b"203.0.113.7:4567"
    await client.send(GET)  # keep-alive: the same client
    assert (await client.response()).body == b"203.0.113.7:4567"
    six = await connect(server)
    await six.send(proxy_v2_header(("2001:db8::5", 80), ("::1", 8000)) + GET)
    assert (await six.response()).body == b"[2001:db8::5]:80"
    local = await connect(server)
    await local.send(proxy_v2_header(None) + GET)
    assert (await local.response()).body.startswith(b"127.0.0.1:")
    assert {"203.0.113.7:4567", "[2001:db8::5]:80"} < set(server.live())


async def test_a_bad_header_from_a_trusted_proxy_is_refused(serve: Serve, connect: Connect) -> None:
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]),
                         proxy_protocol=True)  # fmt: skip
    for bad in (GET, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + GET):
        client = await connect(server)
        await client.send(bad)
        answer = await client.response()
        assert answer.status == 400 and b'"invalid"' in answer.body
        assert b"bad PROXY header" in answer.body
        assert await client.closed_by_server()


async def test_a_header_that_never_comes_is_not_waited_for(serve: Serve, connect: Connect) -> None:
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]),
                         proxy_protocol=True, idle_unauthenticated=0.3)  # fmt: skip
    client = await connect(server)
    await client.send(proxy_v2_header(("203.0.113.7", 1))[:10])
    assert await client.closed_by_server()


async def test_an_untrusted_peer_is_believed_nothing(serve: Serve, connect: Connect) -> None:
    """From outside trusted_proxies a PROXY header is not HTTP (400) and X-Forwarded-For
    is passed over."""
    server = await serve(whoami, trusted_proxies=TrustedProxies(["10.0.0.0/8"]),
                         proxy_protocol=True)  # fmt: skip
    client = await connect(server)
    await client.send(proxy_v2_header(("203.0.113.7", 4567)) + GET)
    assert (await client.response()).status == 400
    plain = await connect(server)
    await plain.send(b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
    assert (await plain.response()).body.startswith(b"127.0.0.1:")


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]))
    client = await connect(server)
    await client.send(b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.4\r\n\r\n")
    assert (await client.response()).body == b"198.51.100.4:0"
    await client.send(GET)  # the next request says nothing: the proxy's own address
    assert (await client.response()).body.startswith(b"127.0.0.1:")


async def test_the_per_address_limit_counts_the_real_client(serve: Serve, connect: Connect) -> None:
    """``max_connections_per_ip`` 2 through the proxy: a third connection of one client is
    refused (429), another client's is served."""
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]),
                         proxy_protocol=True, max_connections_per_ip=2)  # fmt: skip
    for port in (1, 2):
        held = await connect(server)
        await held.send(proxy_v2_header(("203.0.113.7", port)) + GET)
        assert (await held.response()).status == 200
    third = await connect(server)
    await third.send(proxy_v2_header(("203.0.113.7", 3)) + GET)
    assert (await third.response()).status == 429
    other = await connect(server)
    await other.send(proxy_v2_header(("203.0.113.8", 1)) + GET)
    assert (await other.response()).status == 200


async def test_a_trusted_proxy_without_proxy_protocol_is_not_held_to_the_limit(
    serve: Serve, connect: Connect
) -> None:
    """Its connections carry many clients: ``max_connections_per_ip`` 1 does not cap it."""
    server = await serve(whoami, trusted_proxies=TrustedProxies(["127.0.0.1"]),
                         max_connections_per_ip=1)  # fmt: skip
    for _ in range(3):
        client = await connect(server)
        await client.send(GET)
        assert (await client.response()).status == 200

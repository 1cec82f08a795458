"""Abuse at the HTTP layer against the real server (issue 9 items 15, 18, 20, 22)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.support.wire import call, raw_exchange, register

Factory = Callable[..., ServerProcess]


def _logs(srv: ServerProcess) -> str:
    """Everything the server logged so far: its log file and its stderr."""
    path: Path = srv.data_dir / "logs" / "server.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return text + srv.log_path.read_text(errors="replace")


async def _wait_for_log(srv: ServerProcess, text: str, timeout: float = 10.0) -> str:
    """The logs once ``text`` is in them (another process writes them: nothing to await)."""
    for _ in range(int(timeout / 0.02)):
        if text in (logs := _logs(srv)):
            return logs
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in the server log")


def _log_size(srv: ServerProcess) -> int:
    path: Path = srv.data_dir / "logs" / "server.log"
    return path.stat().st_size + srv.log_path.stat().st_size


async def _reset_mid_body(port: int, target: bytes = b"/api/v1/auth/login") -> None:
    """Start a login, wait until the server reads the body, send part of it, then RST."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\nExpect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    # the 100 Continue comes when the handler asks for the body: now it is mid-body
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
    writer.write(b'{"login": "alice", "pass')
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with linger 0: a reset, not a FIN


@pytest.mark.timeout(300)  # 2,000 connections: seconds, more on a loaded machine
async def test_mid_body_resets_are_quiet_and_cheap_in_the_log(server: ServerProcess) -> None:
    """Item 15: 2,000 clients that reset mid-body leave no traceback and <= 200 KB of log."""
    await register(server.url, "alice")
    before = _log_size(server)
    for _ in range(20):
        await asyncio.gather(*(_reset_mid_body(server.port) for _ in range(100)))
    # the server is fine and answers at once
    assert (await call(server.url, "GET", "/healthz")).status_code == 200
    login = await call(
        server.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
    )
    assert login.status_code == 200
    # one INFO line says what happened
    logs = await _wait_for_log(server, "went away during POST /api/v1/auth/login")
    assert "Traceback" not in logs
    assert " ERROR " not in logs
    assert _log_size(server) - before <= 200 * 1024


async def test_malformed_head_never_echoes_a_token(server: ServerProcess) -> None:
    """Item 18: a bad request line or header does not echo tokens into the 400 or the log."""
    secret = "s3cr3t-token-value"
    attempts = [
        # header line without a colon: a parser may quote the whole line in its message
        f"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {secret}\r\n\r\n",
        # a bad header value right after the token
        f"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
        f"X-Bad: a\x00b\r\n\r\n",
        # token in the query of a broken request line
        f"GET /api/v1/events?access_token={secret} HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        f"GET /api/v1/events?access_token={secret}\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        # a request line with doubled spaces
        f"GET  /api/v1/events?access_token={secret}  HTTP/1.1\r\nHost: x\r\n\r\n",
        # a bad chunk header after a token
        f"POST /api/v1/auth/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\nzz{secret}\r\n",
    ]
    for attempt in attempts:
        raw = await raw_exchange(server.url, attempt.encode("latin-1"))
        assert raw.startswith(b"HTTP/1.1 4"), raw
        assert secret.encode() not in raw
    # a query string that does not parse is not echoed either
    bad_query = f"GET /api/v1/events?access_token={secret}&%ff=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = await raw_exchange(server.url, bad_query.encode())
    assert raw.startswith(b"HTTP/1.1 4") and secret.encode() not in raw
    assert secret not in _logs(server)


async def test_token_in_a_logged_request_target_is_redacted(server: ServerProcess) -> None:
    """Item 18: ``access_token`` in a request target the server logs is written as REDACTED."""
    secret = "s3cr3t-token-value"
    await _reset_mid_body(server.port, f"/api/v1/auth/login?access_token={secret}&x=1".encode())
    logs = await _wait_for_log(
        server, "went away during POST /api/v1/auth/login?access_token=REDACTED&x=1"
    )
    assert secret not in logs


async def test_method_not_allowed_says_allow(server: ServerProcess) -> None:
    """Item 22: 405 carries ``Allow`` (RFC 9110 §15.5.6 MUST)."""
    token = (await register(server.url, "alice"))["token"]
    resp = await call(server.url, "PUT", "/api/v1/chats", token)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, HEAD, POST"
    resp = await call(server.url, "PATCH", "/api/v1/chats/1/members/bob", token)
    assert (resp.status_code, resp.headers["allow"]) == (405, "DELETE")
    resp = await call(server.url, "DELETE", "/healthz")
    assert (resp.status_code, resp.headers["allow"]) == (405, "GET, HEAD")


async def test_methods_are_case_sensitive(server: ServerProcess) -> None:
    """Item 22: ``get`` is not ``GET`` (RFC 9110 §9.1): an unknown method is 501."""
    for method in (b"get", b"Get", b"BREW"):
        raw = await raw_exchange(
            server.url, method + b" /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 501"), raw
        assert b'"not_implemented"' in raw
    ok = await raw_exchange(
        server.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200")


async def test_absolute_form_target_is_accepted(server: ServerProcess) -> None:
    """Item 22: ``GET http://host/path`` is served like ``GET /path`` (RFC 9112 §3.2.2)."""
    raw = await raw_exchange(
        server.url,
        b"GET http://127.0.0.1/healthz?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200"), raw
    assert b'"status":"ok"' in raw
    bad = await raw_exchange(server.url, b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400")


async def test_too_slow_head_gets_408_then_close(server_factory: Factory) -> None:
    """Item 22: a head that does not complete within the idle time is answered 408, closed."""
    srv = server_factory(args=["--idle-unauthenticated", "0.5"])
    raw = await raw_exchange(srv.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", timeout=10.0)
    assert raw.startswith(b"HTTP/1.1 408"), raw
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"] == "timeout"
    # a connection that sent nothing at all is just closed
    assert await raw_exchange(srv.url, b"", timeout=10.0) == b""


async def test_forbidden_and_unknown_message_ids_look_the_same(server: ServerProcess) -> None:
    """Item 22: GET /messages/{id} and its thread answer a message of someone else's chat
    exactly as an id that does not exist (no existence oracle)."""
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    group = await call(server.url, "POST", "/api/v1/chats", alice, {"name": "secret"})
    assert group.status_code == 200, group.text
    secret = await call(
        server.url, "POST", f"/api/v1/chats/{group.json()['id']}/messages", alice, {"text": "x"}
    )
    assert secret.status_code == 200, secret.text
    hidden, unknown = secret.json()["id"], secret.json()["id"] + 1000
    for suffix in ("", "/thread"):
        theirs = await call(server.url, "GET", f"/api/v1/messages/{hidden}{suffix}", bob)
        nothing = await call(server.url, "GET", f"/api/v1/messages/{unknown}{suffix}", bob)
        assert theirs.status_code == nothing.status_code == 403
        assert theirs.content == nothing.content
    mine = await call(server.url, "GET", f"/api/v1/messages/{hidden}", alice)
    assert mine.status_code == 200


async def test_empty_upload_is_refused(server: ServerProcess) -> None:
    """Item 22: a 0-byte upload is 400 invalid, with a Content-Length and chunked alike."""
    token = (await register(server.url, "alice"))["token"]
    headers = {"Content-Type": "application/octet-stream"}

    async def nothing() -> AsyncIterator[bytes]:
        for chunk in (b"",):
            yield chunk

    for content in (b"", nothing()):
        resp = await call(
            server.url, "POST", "/api/v1/files?name=e.txt", token, content=content, headers=headers
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "invalid"
        assert "empty" in resp.json()["error"]["message"]
    one = await call(
        server.url, "POST", "/api/v1/files?name=a.txt", token, content=b"a", headers=headers
    )
    assert one.status_code == 200, one.text


async def test_html_and_svg_downloads_are_sandboxed(server: ServerProcess) -> None:
    """Item 22: downloads carry ``Content-Security-Policy: sandbox; default-src 'none'``."""
    token = (await register(server.url, "alice"))["token"]
    files = {
        "page.html": b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "pic.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    }
    for name, data in files.items():
        up = await call(
            server.url, "POST", f"/api/v1/files?name={name}", token, content=data,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert up.status_code == 200, up.text
        got = await call(server.url, "GET", f"/api/v1/files/{up.json()['id']}", token)
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert got.headers["x-content-type-options"] == "nosniff"


async def test_slow_body_is_cut_by_its_deadline(server_factory: Factory) -> None:
    """Item 20: one byte at a time never keeps a connection: 408 at the body deadline."""
    srv = server_factory(args=["--body-timeout", "0.5", "--body-min-rate", "1000"])
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{")
    await writer.drain()

    async def trickle() -> None:
        for _ in range(59):
            await asyncio.sleep(0.1)  # the attacker's pace (6 s in all), not a wait
            writer.write(b" ")
            await writer.drain()

    sender = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(5.0):
            answer = await reader.read()
    finally:
        sender.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"timeout"' in answer


async def test_connection_cap_keeps_room_for_users_and_healthz(server_factory: Factory) -> None:
    """Item 20: at the cap for anonymous clients, /healthz and a logged-in user still get in;
    an anonymous request gets 503."""
    # 2 unreserved slots; the 6 reserved ones leave room for connections still closing
    srv = server_factory(args=["--max-connections", "8", "--reserved-connections", "6"])
    token = (await register(srv.url, "alice"))["token"]
    crowd: list[asyncio.StreamWriter] = []
    while len(crowd) < 2:  # two anonymous keep-alive connections fill the unreserved slots
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        if b"connection: close" in head.lower():
            writer.close()  # it got a reserved slot (an earlier connection was still closing)
            continue
        crowd.append(writer)
    try:
        login = await call(
            srv.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
        )
        assert (login.status_code, login.json()["error"]["code"]) == (503, "unavailable")
        assert (await call(srv.url, "GET", "/healthz")).status_code == 200
        status = await call(srv.url, "GET", "/api/v1/status", token)
        assert status.status_code == 200, status.text
    finally:
        for writer in crowd:
            writer.close()

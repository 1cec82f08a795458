"""Bad input gets the right status and a typed error body; nothing crashes (SPEC §6)."""

from __future__ import annotations

import json

import pytest

from messenger_protocol import limits
from tests.support.server import ServerProcess
from tests.support.wire import call, raw_exchange, register


def _status_and_code(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body[: body.index(b"}}") + 2])["error"]["code"]


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff\xfe garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"NOT A REQUEST LINE\r\n\r\n"],
)
async def test_garbage_gets_typed_400_and_server_lives(
    server: ServerProcess, garbage: bytes
) -> None:
    raw = await raw_exchange(server.url, garbage)
    assert _status_and_code(raw) == (400, "invalid")
    assert (await call(server.url, "GET", "/healthz")).status_code == 200


async def test_request_head_limit_crossed_by_one(server: ServerProcess) -> None:
    def request(head_size: int) -> bytes:
        start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
        end = b"\r\nConnection: close\r\n\r\n"
        return start + b"a" * (head_size - len(start) - len(end)) + end

    ok = await raw_exchange(server.url, request(limits.MAX_REQUEST_HEAD))
    assert ok.startswith(b"HTTP/1.1 200")
    too_big = await raw_exchange(server.url, request(limits.MAX_REQUEST_HEAD + 1))
    assert _status_and_code(too_big) == (431, "too_large")


async def test_json_body_limit_crossed_by_one(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]

    def body_of(size: int) -> bytes:
        # valid JSON of exactly `size` bytes whose text is too long anyway
        prefix, suffix = b'{"text":"', b'"}'
        return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix

    at_limit = await call(
        server.url, "POST", "/api/v1/chats/1/messages", token,
        content=body_of(limits.MAX_JSON_BODY), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert at_limit.status_code == 400  # read fully, refused for its text length
    assert at_limit.json()["error"]["code"] == "invalid"
    over = await call(
        server.url, "POST", "/api/v1/chats/1/messages", token,
        content=body_of(limits.MAX_JSON_BODY + 1), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "too_large"


async def test_unknown_route_wrong_method_missing_field(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    nope = await call(server.url, "GET", "/api/v1/nope", token)
    assert (nope.status_code, nope.json()["error"]["code"]) == (404, "not_found")
    wrong = await call(server.url, "PUT", "/api/v1/chats", token)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    missing = await call(server.url, "POST", "/api/v1/chats/1/messages", token, {})
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "invalid")
    typed = await call(server.url, "POST", "/api/v1/chats/1/messages", token, {"text": 42})
    assert (typed.status_code, typed.json()["error"]["code"]) == (400, "invalid")
    bad_id = await call(server.url, "GET", "/api/v1/chats/abc/messages", token)
    assert bad_id.status_code == 400


async def test_bad_or_missing_token(server: ServerProcess) -> None:
    for token in (None, "not-a-token"):
        resp = await call(server.url, "GET", "/api/v1/status", token)
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "unauthorized")


async def test_chunked_body_and_keep_alive(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    body = json.dumps({"text": "chunked hello"}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (
        b"POST /api/v1/chats/1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        + chunked
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    raw = await raw_exchange(server.url, request)
    assert raw.count(b"HTTP/1.1 200") == 2  # two pipelined requests, two answers, in order
    assert b"chunked hello" in raw


async def test_idle_unauthenticated_connection_is_closed(server_factory: object) -> None:
    from collections.abc import Callable

    assert callable(server_factory)
    factory: Callable[..., ServerProcess] = server_factory
    srv = factory(args=["--idle-unauthenticated", "0.5"])
    raw = await raw_exchange(srv.url, b"", timeout=5.0)
    assert raw == b""  # closed by the server well before our 5 s timeout


async def test_malformed_json(server: ServerProcess) -> None:
    resp = await call(
        server.url,
        "POST",
        "/api/v1/auth/login",
        content=b'{"login": ',
        headers={"Content-Type": "application/json"},
    )
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid")

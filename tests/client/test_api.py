"""The client library against a small HTTP server on a real socket.

The real server's behaviour is covered by the integration tests; these pin down what
the library itself does: error bodies, unreachable servers, idempotent send retries,
streamed upload and resumable download.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from messenger_client import Client, ServerUnavailable
from messenger_client.api import numbered_name
from messenger_protocol import ApiError, ErrorCode, encode

Reply = tuple[int, dict[str, str], bytes] | None
"""Status, headers, body; None drops the connection without answering."""


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHttp:
    """Answers each request with ``handler(request)``; records every request."""

    handler: Callable[[Seen], Awaitable[Reply] | Reply]
    requests: list[Seen] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if not isinstance(event, h11.Request):
                    return
                body = b""
                while True:
                    part = conn.next_event()
                    if part is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                    elif isinstance(part, h11.Data):
                        body += part.data
                    else:
                        break
                seen = Seen(
                    event.method.decode(),
                    event.target.decode(),
                    {k.decode().lower(): v.decode() for k, v in event.headers},
                    body,
                )
                self.requests.append(seen)
                reply = self.handler(seen)
                if not isinstance(reply, tuple) and reply is not None:
                    reply = await reply
                if reply is None:
                    writer.transport.abort()
                    return
                status, headers, content = reply
                head = [*headers.items(), ("Content-Length", str(len(content)))]
                out = conn.send(h11.Response(status_code=status, headers=head))
                out += conn.send(h11.Data(data=content)) + conn.send(h11.EndOfMessage())
                writer.write(out)
                await writer.drain()
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError):
            return
        finally:
            writer.close()


def json_reply(obj: object, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


MESSAGE = {"id": 7, "chat_id": 1, "author": "alice", "text": "hi", "created_at": 1.0}


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., Awaitable[tuple[Client, FakeHttp]]]]:
    servers: list[FakeHttp] = []
    clients: list[Client] = []

    async def start(handler: Callable[[Seen], Awaitable[Reply] | Reply]) -> tuple[Client, FakeHttp]:
        server = FakeHttp(handler)
        servers.append(server)
        client = Client(await server.start(), token="tok")
        clients.append(client)
        return client, server

    yield start
    for c in clients:
        await c.close()
    for s in servers:
        await s.stop()


async def test_typed_error_bodies_become_api_errors(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    body = ApiError(ErrorCode.RATE_LIMITED, "20 per hour", retry_after=99.0).body()
    client, server = await fake(lambda r: (429, {}, encode(body)))
    with pytest.raises(ApiError) as caught:
        await client.send(1, "hi")
    assert caught.value.code == ErrorCode.RATE_LIMITED
    assert caught.value.retry_after == 99.0
    assert server.requests[0].method == "POST"
    assert server.requests[0].target == "/api/v1/chats/1/messages"
    assert server.requests[0].headers["authorization"] == "Bearer tok"


async def test_untyped_error_answers_map_by_status(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    client, _ = await fake(lambda r: (501, {}, b"Not Implemented"))
    with pytest.raises(ApiError) as caught:
        await client.status()
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "Not Implemented" in caught.value.message


async def test_unreachable_server_is_server_unavailable() -> None:
    async with Client("http://127.0.0.1:1", token="t") as client:
        with pytest.raises(ServerUnavailable) as caught:
            await client.chats()
        assert isinstance(caught.value, ConnectionError)


async def test_a_client_closed_before_its_first_request_makes_none() -> None:
    # The HTTP client is made at the first request (a UI makes its Client before its
    # first frame); closing before that still closes it for good.
    client = Client("http://127.0.0.1:1", token="t")
    assert not client.closed
    await client.close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.chats()


async def test_not_logged_in_fails_before_the_network() -> None:
    async with Client("http://127.0.0.1:1") as client:
        with pytest.raises(ApiError) as caught:
            await client.chats()
        assert caught.value.code == ErrorCode.UNAUTHORIZED


async def test_send_retries_with_the_same_client_id(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    answers: list[Reply] = [None, json_reply(MESSAGE)]  # the first try loses its answer
    client, server = await fake(lambda r: answers.pop(0))
    message = await client.send(1, "hi", retries=1)
    assert message.id == 7
    first, second = (json.loads(r.body) for r in server.requests)
    assert first == second
    assert first["text"] == "hi" and len(first["client_id"]) >= 16


async def test_failed_send_hands_back_its_client_id(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    client, server = await fake(lambda r: None)
    with pytest.raises(ServerUnavailable) as caught:
        await client.send(1, "hi", client_id="abc123")
    assert caught.value.client_id == "abc123"
    assert json.loads(server.requests[0].body)["client_id"] == "abc123"


async def test_history_sends_its_query(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    client, server = await fake(lambda r: json_reply({"messages": [MESSAGE], "has_more": True}))
    page = await client.history(3, before=100, limit=5)
    assert page.has_more and page.messages[0].id == 7
    assert server.requests[0].target == "/api/v1/chats/3/messages?before=100&limit=5"


async def test_login_keeps_the_session(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]],
) -> None:
    session = {"token": "new", "session_id": "s1", "user": {"login": "bob"}, "last_event_id": 4}
    client, server = await fake(lambda r: json_reply(session))
    client.token = None
    client.device = "tests"
    await client.login("bob", "secret1")
    assert client.token == "new" and client.login_name == "bob"
    assert json.loads(server.requests[0].body) == {
        "login": "bob",
        "password": "secret1",
        "device": "tests",
    }
    assert "authorization" not in server.requests[0].headers


async def test_upload_streams_the_file_with_progress(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]], tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1000  # 256,000 bytes: several chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    attachment = {"id": "f1", "name": "blob.bin", "size": len(data), "mime": "x", "sha256": "s"}
    client, server = await fake(lambda r: json_reply(attachment))
    progress: list[tuple[int, int | None]] = []
    result = await client.upload(path, progress=lambda done, total: progress.append((done, total)))
    assert result.id == "f1"
    request = server.requests[0]
    assert request.body == data
    assert request.headers["content-length"] == str(len(data))
    assert request.target == "/api/v1/files?name=blob.bin"
    assert progress[0] == (0, len(data)) and progress[-1] == (len(data), len(data))
    assert len(progress) > 2


async def test_download_resumes_with_range(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]], tmp_path: Path
) -> None:
    data = b"0123456789" * 10_000

    def serve(r: Seen) -> Reply:
        headers = {"Content-Disposition": 'attachment; filename="../../evil.txt"'}
        if "range" in r.headers:
            start = int(r.headers["range"].removeprefix("bytes=").rstrip("-"))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return 206, headers, data[start:]
        return 200, headers, data

    client, server = await fake(serve)
    (tmp_path / ".f1.part").write_bytes(data[:1234])  # a download broken earlier
    saved = await client.download("f1", tmp_path)
    assert saved == tmp_path / "evil.txt"  # the name cannot climb out of the directory
    assert saved.read_bytes() == data
    assert server.requests[0].headers["range"] == "bytes=1234-"
    assert not (tmp_path / ".f1.part").exists()

    target = tmp_path / "copy.bin"
    seen: list[tuple[int, int | None]] = []
    await client.download("f1", target, progress=lambda d, t: seen.append((d, t)))
    assert target.read_bytes() == data
    assert "range" not in server.requests[1].headers
    assert seen[-1] == (len(data), len(data))


async def test_download_error_is_typed(
    fake: Callable[..., Awaitable[tuple[Client, FakeHttp]]], tmp_path: Path
) -> None:
    body = encode(ApiError(ErrorCode.FORBIDDEN, "not a member").body())
    client, _ = await fake(lambda r: (403, {}, body))
    with pytest.raises(ApiError) as caught:
        await client.download("f1", tmp_path / "x")
    assert caught.value.code == ErrorCode.FORBIDDEN
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("name", "second", "third"),
    [
        ("report.pdf", "report (1).pdf", "report (2).pdf"),
        ("backup.tar.gz", "backup (1).tar.gz", "backup (2).tar.gz"),
        ("my.notes.txt", "my.notes (1).txt", "my.notes (2).txt"),
        ("README", "README (1)", "README (2)"),
        (".bashrc", ".bashrc (1)", ".bashrc (2)"),
    ],
)
def test_taken_names_get_a_number_like_browsers_do(name: str, second: str, third: str) -> None:
    """Issue 9 item 11: the names a download takes when its own is taken."""
    path = Path("/d") / name
    assert numbered_name(path, 0) == path
    assert (numbered_name(path, 1).name, numbered_name(path, 2).name) == (second, third)


async def test_a_request_cancelled_while_the_tls_context_builds_leaves_it_to_later_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process's one TLS context is built in a thread from the first request on; a
    request cancelled while it waits (a worker stopped, a screen closed) must not cancel
    that build: every later client of the process needs it."""
    import threading

    import httpx

    from messenger_client import api

    release = threading.Event()
    real = httpx.create_ssl_context

    def slow_context() -> ssl.SSLContext:
        release.wait(30)
        return real()

    monkeypatch.setattr(api, "_tls", None)  # a fresh process's state
    monkeypatch.setattr(httpx, "create_ssl_context", slow_context)
    waiting = asyncio.create_task(api.tls_ready())
    await asyncio.sleep(0)  # it waits for the thread
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await api.tls_ready()  # the next request gets the context
    assert isinstance(api.tls_context(), ssl.SSLContext)

"""The app over constructed requests: routing, auth, bodies, errors, the SSE producer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from messenger_protocol import (
    ENDPOINTS,
    ApiError,
    ErrorCode,
    Message,
    MessageCreated,
    SseParser,
    decode_event,
    endpoints,
)
from messenger_server.app import App, bind
from messenger_server.http import Body, Headers, Request, Response, StreamResponse

from .services.conftest import ManualClock, make_app


class BytesSource:
    """A request body that has fully arrived."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    async def next_body_chunk(self) -> bytes | None:
        data, self._data = self._data, None
        return data


def request(
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Request:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    head = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if token is not None:
        head.append((b"authorization", f"Bearer {token}".encode()))
    return Request(
        method=method,
        path=path,
        query=query or {},
        headers=Headers(head),
        peer="127.0.0.1:4242",
        body=Body(BytesSource(data) if data else None, len(data)),
    )


async def json_of(app: App, req: Request) -> Any:
    resp = await app.handle(req)
    assert isinstance(resp, Response) and resp.status == 200
    return json.loads(resp.body)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app, _ = make_app(tmp_path, ManualClock())
    await app.start()
    yield app
    await app.close()


async def register(app: App, login: str) -> str:
    body = await json_of(
        app, request("POST", "/api/v1/auth/register", {"login": login, "password": "password1"})
    )
    token: str = body["token"]
    return token


def test_every_endpoint_has_a_handler(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, ManualClock())
    assert set(app.handlers) == {ep.name for ep in ENDPOINTS}


def test_a_binding_is_checked_against_the_table_at_start() -> None:
    async def post(actor: object, chat_id: int, body: object) -> Message:
        raise AssertionError("not called")

    async def forget(actor: object, chat_id: int, body: object) -> None:
        return None

    bind(endpoints.SEND, post)  # (actor, chat_id, body) -> Message: as the table says
    with pytest.raises(TypeError, match="send"):
        bind(endpoints.SEND, post, actor=False)
    with pytest.raises(TypeError, match="chat"):
        bind(endpoints.CHAT, post)  # (actor, chat_id): one argument short
    with pytest.raises(TypeError, match="the table says"):
        bind(endpoints.SEND, forget)  # answers Ok, the table says Message
    with pytest.raises(TypeError, match="mark_read"):
        bind(endpoints.MARK_READ, post)  # answers a Message, the table says Chat


async def test_a_bound_method_that_returns_nothing_answers_ok(app: App) -> None:
    token = await register(app, "alice")
    response = await app.handle(request("POST", "/api/v1/auth/logout", token=token))
    assert isinstance(response, Response) and json.loads(response.body) == {"ok": True}
    with pytest.raises(ApiError) as err:  # and it did log out
        await app.handle(request("GET", "/api/v1/chats", token=token))
    assert err.value.code is ErrorCode.UNAUTHORIZED


async def test_auth_is_required_and_checked(app: App) -> None:
    for token in (None, "bogus"):
        with pytest.raises(ApiError) as err:
            await app.handle(request("GET", "/api/v1/chats", token=token))
        assert err.value.code is ErrorCode.UNAUTHORIZED
    with pytest.raises(ApiError) as err:
        await app.handle(request("GET", "/api/v1/chats", headers={"Authorization": "Basic eA=="}))
    assert err.value.code is ErrorCode.UNAUTHORIZED
    token = await register(app, "alice")
    chats = await json_of(app, request("GET", "/api/v1/chats", token=token))
    assert [c["name"] for c in chats["chats"]] == ["general"]


async def test_send_history_and_typed_errors(app: App) -> None:
    token = await register(app, "alice")
    sent = await json_of(
        app,
        request("POST", "/api/v1/chats/1/messages", {"text": "hi", "client_id": "a"}, token=token),
    )
    assert sent["text"] == "hi" and sent["author"] == "alice"
    page = await json_of(
        app, request("GET", "/api/v1/chats/1/messages", token=token, query={"limit": "5"})
    )
    assert [m["id"] for m in page["messages"]] == [sent["id"]]
    bad = [
        request("POST", "/api/v1/chats/1/messages", raw=b"{nope", token=token),
        request("POST", "/api/v1/chats/1/messages", {"txt": "typo"}, token=token),
        request("GET", "/api/v1/chats/1/messages", token=token, query={"limit": "0"}),
        request("GET", "/api/v1/chats/abc/messages", token=token),
    ]
    for req in bad:
        with pytest.raises(ApiError) as err:
            await app.handle(req)
        assert err.value.code is ErrorCode.INVALID
    with pytest.raises(ApiError) as err:
        await app.handle(request("GET", "/api/v1/chats/77/messages", token=token))
    assert err.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(ApiError) as err:
        await app.handle(request("GET", "/api/v1/nothing", token=token))
    assert err.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ApiError) as err:
        await app.handle(request("DELETE", "/api/v1/chats", token=token))
    assert err.value.code is ErrorCode.METHOD_NOT_ALLOWED


async def test_oversized_json_body_is_refused(app: App) -> None:
    token = await register(app, "alice")
    big = b'{"text": "' + b"x" * app.settings.max_json_body + b'"}'
    with pytest.raises(ApiError) as err:
        await app.handle(request("POST", "/api/v1/chats/1/messages", raw=big, token=token))
    assert err.value.code is ErrorCode.TOO_LARGE


async def test_health_and_openapi(app: App) -> None:
    assert (await json_of(app, request("GET", "/healthz")))["status"] == "ok"
    doc = await json_of(app, request("GET", "/api/v1/openapi.json"))
    assert doc["openapi"] == "3.1.0"


class StreamSink:
    """A ResponseStream stand-in that keeps what the producer and the hub write."""

    def __init__(self) -> None:
        self.peer = "127.0.0.1:4343"
        self.data = bytearray()
        self.closed = asyncio.Event()
        self.wrote = asyncio.Event()
        self.on_close: Callable[[], None] | None = None

    def write(self, data: bytes) -> None:
        self.data += data
        self.wrote.set()

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def buffer_size(self) -> int:
        return 0

    async def drain(self) -> None:
        return None

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        self.closed.set()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    async def wait_closed(self) -> None:
        await self.closed.wait()

    def keep_open(self, on_close: Callable[[], None]) -> None:
        self.on_close = on_close

    async def events_until(self, count: int) -> list[tuple[str | None, Any]]:
        """Wait until ``count`` events arrived; return them."""
        async with asyncio.timeout(5):
            while True:
                parsed = SseParser().feed(bytes(self.data))
                if len(parsed) >= count:
                    return [(e.id, decode_event(e.data)) for e in parsed]
                self.wrote.clear()
                await self.wrote.wait()


async def test_event_stream_resumes_then_goes_live(app: App) -> None:
    alice = await register(app, "alice")
    bob_session = await json_of(
        app, request("POST", "/api/v1/auth/register", {"login": "bob", "password": "password1"})
    )
    bob = bob_session["token"]
    start = bob_session["last_event_id"]
    missed = []
    for text in ("one", "two"):
        resp = await json_of(
            app, request("POST", "/api/v1/chats/1/messages", {"text": text}, token=alice)
        )
        missed.append(resp["id"])
    resp = await app.handle(
        request("GET", "/api/v1/events", token=bob, headers={"Last-Event-ID": str(start)})
    )
    assert isinstance(resp, StreamResponse)
    assert resp.content_type == "text/event-stream"
    sink = StreamSink()
    task: asyncio.Task[None] = asyncio.create_task(resp.producer(sink))  # type: ignore[arg-type]
    replayed = [e for _, e in await sink.events_until(3) if isinstance(e, MessageCreated)]
    live = await json_of(
        app, request("POST", "/api/v1/chats/1/messages", {"text": "live"}, token=alice)
    )
    events = await sink.events_until(4)
    messages = [e.message.id for _, e in events if isinstance(e, MessageCreated)]
    assert messages == [*missed, live["id"]]
    ids = [int(i) for i, _ in events if i is not None]
    assert ids == sorted(ids) and ids[0] > start
    assert [e.message.id for e in replayed] == missed
    # logging out ends the stream
    await app.handle(request("POST", "/api/v1/auth/logout", token=bob))
    async with asyncio.timeout(5):
        await task
    assert app.hub.stream_count() == 0


async def test_bad_last_event_id_is_invalid(app: App) -> None:
    token = await register(app, "alice")
    with pytest.raises(ApiError) as err:
        await app.handle(
            request("GET", "/api/v1/events", token=token, headers={"Last-Event-ID": "x1"})
        )
    assert err.value.code is ErrorCode.INVALID


async def test_history_without_limit_is_the_configured_page(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, ManualClock(), history_on_connect=3)
    await app.start()
    try:
        token = await register(app, "alice")
        for i in range(5):
            await json_of(
                app, request("POST", "/api/v1/chats/1/messages", {"text": f"m{i}"}, token=token)
            )
        page = await json_of(app, request("GET", "/api/v1/chats/1/messages", token=token))
        assert [m["text"] for m in page["messages"]] == ["m2", "m3", "m4"]
        page = await json_of(
            app, request("GET", "/api/v1/chats/1/messages", token=token, query={"limit": "4"})
        )
        assert len(page["messages"]) == 4
    finally:
        await app.close()

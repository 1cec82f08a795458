"""HttpServer over real sockets: keep-alive, pipelining, bodies, limits, timeouts, streams."""

from __future__ import annotations

import asyncio
import json

from messenger_protocol import ApiError, ErrorCode, limits
from messenger_server.http import HttpLimits, Request, Response, ResponseStream, StreamResponse
from tests.server.http.conftest import Connect, Serve
from tests.support.wire import WAIT as DEADLINE


async def echo(request: Request) -> Response:
    """Answer with what arrived: method, path, query and body length."""
    body = await request.body.read(limits.MAX_JSON_BODY)
    info = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "length": len(body),
        "body": body.decode(errors="replace")[:100],
    }
    return Response(body=json.dumps(info).encode())


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def error_code(body: bytes) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


async def test_keep_alive_two_requests_on_one_connection(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(get("/one?a=1&b=x%20y"))
    first = await client.response()
    assert first.status == 200
    assert json.loads(first.body)["query"] == {"a": "1", "b": "x y"}
    assert first.headers["server"] == "messenger"
    assert "date" in first.headers and first.headers["content-type"] == "application/json"
    await client.send(post("/two", b'{"x": 1}'))
    second = await client.response()
    assert json.loads(second.body)["path"] == "/two"
    assert json.loads(second.body)["length"] == 8
    assert server.connections == 1


async def test_pipelined_requests_answered_in_order(serve: Serve, connect: Connect) -> None:
    async def slow_first(request: Request) -> Response:
        if request.path == "/slow":
            await asyncio.sleep(0.05)  # the later requests must still wait their turn
        return await echo(request)

    server = await serve(slow_first)
    client = await connect(server)
    await client.send(get("/slow") + post("/b", b"abc") + get("/c") + get("/d"))
    paths = [json.loads((await client.response()).body)["path"] for _ in range(4)]
    assert paths == ["/slow", "/b", "/c", "/d"]


async def test_chunked_body(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    chunks = b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
    await client.send(
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + get("/n")
    )
    answer = json.loads((await client.response()).body)
    assert (answer["length"], answer["body"]) == (11, "hello world")
    assert json.loads((await client.response()).body)["path"] == "/n"


async def test_head_limit_crossed_by_one(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)

    def request(size: int) -> bytes:
        start, end = b"GET /h HTTP/1.1\r\nHost: t\r\nX-Pad: ", b"\r\n\r\n"
        return start + b"a" * (size - len(start) - len(end)) + end

    at_limit = await connect(server)
    await at_limit.send(request(limits.MAX_REQUEST_HEAD))
    assert (await at_limit.response()).status == 200
    over = await connect(server)
    await over.send(request(limits.MAX_REQUEST_HEAD + 1))
    refused = await over.response()
    assert (refused.status, error_code(refused.body)) == (431, "too_large")
    assert await over.closed_by_server()


async def test_endless_head_refused_without_waiting_for_its_end(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * (limits.MAX_REQUEST_HEAD + 100))
    refused = await client.response()
    assert (refused.status, error_code(refused.body)) == (431, "too_large")


async def test_body_limit_crossed_by_one(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(post("/b", b"x" * limits.MAX_JSON_BODY))
    assert json.loads((await client.response()).body)["length"] == limits.MAX_JSON_BODY
    await client.send(post("/b", b"x" * (limits.MAX_JSON_BODY + 1)))
    over = await client.response()
    assert (over.status, error_code(over.body)) == (413, "too_large")
    assert json.loads(over.body)["error"]["limit"] == limits.MAX_JSON_BODY
    # the refused body was small enough to be drained: the connection still works
    await client.send(get("/after"))
    assert json.loads((await client.response()).body)["path"] == "/after"


async def test_chunked_body_over_limit(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    size = limits.MAX_JSON_BODY + 1
    await client.send(
        b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % size
        + b"y" * size
        + b"\r\n0\r\n\r\n"
    )
    over = await client.response()
    assert (over.status, error_code(over.body)) == (413, "too_large")


async def test_big_refused_body_answered_then_closed(serve: Serve, connect: Connect) -> None:
    async def refuse(request: Request) -> Response:
        await request.body.read(1000)
        return Response()

    server = await serve(refuse)
    client = await connect(server)
    announced = 5 * 1024 * 1024
    await client.send(  # announces 5 MiB, sends 1 KiB
        b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % announced + b"z" * 1024
    )
    over = await client.response()
    assert (over.status, error_code(over.body)) == (413, "too_large")
    assert over.headers["connection"] == "close"
    assert await client.closed_by_server()


async def test_expect_100_continue(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(
        b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await client.response()
    assert interim.status == 100
    await client.send(b"data")
    assert json.loads((await client.response()).body)["length"] == 4


async def test_idle_unauthenticated_connection_closed(serve: Serve, connect: Connect) -> None:
    server = await serve(echo, idle_unauthenticated=0.2)
    client = await connect(server)
    assert await client.closed_by_server()
    slow = await connect(server)
    await slow.send(b"GET / HTTP/1.1\r\n")  # a head that never ends is no excuse
    assert await slow.closed_by_server()


async def test_authenticated_connection_gets_longer_idle(serve: Serve, connect: Connect) -> None:
    async def login(request: Request) -> Response:
        if request.path == "/login":
            request.mark_authenticated()
        return Response()

    server = await serve(login, idle_unauthenticated=0.1, keepalive_idle=30.0)
    client = await connect(server)
    await client.send(get("/login"))
    assert (await client.response()).status == 200
    anonymous = await connect(server)  # opened after the login: idles out after it
    await anonymous.send(get("/anon"))
    assert (await anonymous.response()).status == 200
    assert await anonymous.closed_by_server()  # the unauthenticated idle time has passed
    await client.send(get("/again"))
    assert (await client.response()).status == 200


async def test_garbage_gets_typed_400_and_close(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    for garbage in (
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: t\r\n\r\n",
        b"NOT A REQUEST LINE\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET nope HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        client = await connect(server)
        await client.send(garbage)
        answer = await client.response()
        assert (answer.status, error_code(answer.body)) == (400, "invalid"), garbage
        assert await client.closed_by_server()
    healthy = await connect(server)
    await healthy.send(get("/ok"))
    assert (await healthy.response()).status == 200


async def test_bad_chunk_framing_is_400(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    answer = await client.response()
    assert (answer.status, error_code(answer.body)) == (400, "invalid")
    assert await client.closed_by_server()


async def test_malformed_query_is_400_and_connection_survives(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(get("/q?name=%ff"))
    answer = await client.response()
    assert (answer.status, error_code(answer.body)) == (400, "invalid")
    await client.send(get("/q?name=ok"))
    assert json.loads((await client.response()).body)["query"] == {"name": "ok"}


async def test_api_error_and_crash_become_typed_bodies(serve: Serve, connect: Connect) -> None:
    async def fails(request: Request) -> Response:
        if request.path == "/limited":
            raise ApiError(ErrorCode.RATE_LIMITED, "slow down", retry_after=12.2)
        raise RuntimeError("bug")

    server = await serve(fails)
    client = await connect(server)
    await client.send(get("/limited"))
    limited = await client.response()
    assert (limited.status, error_code(limited.body)) == (429, "rate_limited")
    assert limited.headers["retry-after"] == "13"
    await client.send(get("/crash"))
    crashed = await client.response()
    assert (crashed.status, error_code(crashed.body)) == (500, "internal")
    await client.send(get("/limited"))
    assert (await client.response()).status == 429  # still the same connection


async def test_head_request_has_no_body(serve: Serve, connect: Connect) -> None:
    server = await serve(echo)
    client = await connect(server)
    await client.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = await client.response(head_only=True)
    assert answer.status == 200
    assert int(answer.headers["content-length"]) > 0
    await client.send(get("/next"))  # no body bytes were sent: the next answer parses
    assert json.loads((await client.response()).body)["method"] == "GET"


async def test_stream_with_length_keeps_connection(serve: Serve, connect: Connect) -> None:
    async def download(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            for _ in range(4):
                stream.write(b"ab" * 1000)
                await stream.drain()

        return StreamResponse(produce, content_type="text/plain", content_length=8000)

    server = await serve(download)
    client = await connect(server)
    await client.send(get("/f") + get("/f"))
    for _ in range(2):
        answer = await client.response()
        assert answer.body == b"ab" * 4000
        assert answer.headers["content-type"] == "text/plain"


async def test_event_stream_until_peer_leaves(serve: Serve, connect: Connect) -> None:
    closed = asyncio.Event()
    streams: list[ResponseStream] = []

    async def events(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            streams.append(stream)
            stream.write(b": hello\n\n")
            try:
                await stream.wait_closed()
            finally:
                closed.set()

        return StreamResponse(produce, content_type="text/event-stream")

    server = await serve(events)
    client = await connect(server)
    await client.send(get("/events"))
    head = await client.response(head_only=True)
    assert head.headers["content-type"] == "text/event-stream"
    assert "content-length" not in head.headers
    assert await client.reader.readexactly(9) == b": hello\n\n"
    streams[0].writelines([b"data: 1\n\n", b"data: 2\n\n"])
    assert await client.reader.readexactly(18) == b"data: 1\n\ndata: 2\n\n"
    await client.close()
    async with asyncio.timeout(5):
        await closed.wait()
    assert streams[0].is_closing()


async def test_a_head_of_an_event_stream_runs_no_producer_and_says_so(
    serve: Serve, connect: Connect
) -> None:
    """``HEAD`` answers the stream's head only: the producer never runs, ``abandoned`` is
    called instead (the app lets go of what it held for the stream: an online span)."""
    told: list[str] = []

    async def events(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            told.append("produced")

        return StreamResponse(produce, content_type="text/event-stream",
                              abandoned=lambda: told.append("abandoned"))  # fmt: skip

    server = await serve(events)
    client = await connect(server)
    await client.send(b"HEAD /events HTTP/1.1\r\nHost: test\r\n\r\n")
    head = await client.response(head_only=True)
    assert head.status == 200 and head.headers["content-type"] == "text/event-stream"
    assert told == ["abandoned"]


async def test_event_stream_ends_with_connection_when_producer_returns(
    serve: Serve, connect: Connect
) -> None:
    async def once(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            stream.write(b"bye")

        return StreamResponse(produce)

    server = await serve(once)
    client = await connect(server)
    await client.send(get("/once"))
    assert (await client.response()).body == b"bye"


async def test_connection_cap_per_ip(serve: Serve, connect: Connect) -> None:
    server = await serve(echo, max_connections_per_ip=2)
    first, second = await connect(server), await connect(server)
    for client in (first, second):
        await client.send(get("/x"))
        assert (await client.response()).status == 200
    third = await connect(server)
    await third.send(get("/x"))  # a request already on its way must not turn into a reset
    refused = await third.response()
    assert (refused.status, error_code(refused.body)) == (429, "rate_limited")
    await first.send(get("/bye", "Connection: close"))
    await first.response()
    assert await first.closed_by_server()
    # the slot is given back once the server has finished closing; each try waits for an answer
    for _ in range(100):
        fourth = await connect(server)
        await fourth.send(get("/x"))
        if (await fourth.response()).status == 200:
            break
    else:
        raise AssertionError("the closed connection's slot was never given back")
    assert sorted(server.live())[0].startswith("127.0.0.1:")


async def test_graceful_close_lets_running_request_finish(serve: Serve, connect: Connect) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response(body=b"{}")

    server = await serve(slow)
    busy, idle = await connect(server), await connect(server)
    await busy.send(get("/slow"))
    await started.wait()
    closing = asyncio.create_task(server.close(grace=5.0))
    assert await idle.closed_by_server()
    release.set()
    answer = await busy.response()
    assert answer.status == 200 and answer.headers["connection"] == "close"
    await closing
    assert server.connections == 0


async def test_graceful_close_ends_event_streams(serve: Serve, connect: Connect) -> None:
    async def events(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            await stream.wait_closed()

        return StreamResponse(produce, content_type="text/event-stream")

    server = await serve(events)
    client = await connect(server)
    await client.send(get("/events"))
    await client.response(head_only=True)
    async with asyncio.timeout(3):
        await server.close(grace=10.0)
    assert await client.closed_by_server()


async def test_stream_producer_cancelled_when_peer_leaves(serve: Serve, connect: Connect) -> None:
    cancelled = asyncio.Event()

    async def heartbeats(request: Request) -> StreamResponse:
        async def produce(stream: ResponseStream) -> None:
            try:
                while True:  # a heartbeat loop that never looks at wait_closed()
                    stream.write(b": ping\n\n")
                    await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        return StreamResponse(produce, content_type="text/event-stream")

    server = await serve(heartbeats)
    client = await connect(server)
    await client.send(get("/events"))
    await client.response(head_only=True)
    assert await client.reader.readexactly(8) == b": ping\n\n"
    await client.close()
    async with asyncio.timeout(5):
        await cancelled.wait()
    other = await connect(server)  # and the server goes on
    await other.send(get("/events"))
    assert (await other.response(head_only=True)).status == 200


async def test_expect_continue_refused_without_reading_the_body(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(echo)
    client = await connect(server)
    too_big = limits.MAX_JSON_BODY + 1
    await client.send(
        b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
        % too_big
    )
    answer = await client.response()  # straight to the final answer: no 100 Continue
    assert (answer.status, error_code(answer.body)) == (413, "too_large")
    assert await client.closed_by_server()


async def test_no_content_response(serve: Serve, connect: Connect) -> None:
    async def nothing(request: Request) -> Response:
        return Response(status=204, body=b"ignored")

    server = await serve(nothing)
    client = await connect(server)
    await client.send(get("/a") + get("/b"))
    for _ in range(2):
        answer = await client.response(head_only=True)
        assert answer.status == 204 and "content-length" not in answer.headers


async def test_large_body_streams_in_pieces_and_connection_goes_on(
    serve: Serve, connect: Connect
) -> None:
    pieces: list[int] = []

    async def upload(request: Request) -> Response:
        total = 0
        async for chunk in request.body.chunks(10 * 1024 * 1024):
            pieces.append(len(chunk))
            total += len(chunk)
        return Response(body=b'{"total": %d}' % total)

    server = await serve(upload)
    client = await connect(server)
    size = 3 * 1024 * 1024 + 7
    await client.send(post("/up", b"u" * size) + get("/after"))
    assert json.loads((await client.response()).body) == {"total": size}
    assert len(pieces) > 1 and max(pieces) <= HttpLimits().body_read_size  # streamed, not whole
    assert json.loads((await client.response()).body) == {"total": 0}


async def test_header_injection_from_the_app_becomes_500(serve: Serve, connect: Connect) -> None:
    async def bad_header(request: Request) -> Response:
        return Response(headers=[("Content-Disposition", 'attachment; filename="a\r\nX-Evil: 1"')])

    server = await serve(bad_header)
    client = await connect(server)
    await client.send(get("/file"))
    answer = await client.response()
    assert (answer.status, error_code(answer.body)) == (500, "internal")
    assert "x-evil" not in answer.headers


async def _trickle(client: object, data: bytes, every: float) -> None:
    """Send ``data`` one byte at a time, ``every`` s apart (a slow-loris body)."""
    from tests.server.http.conftest import RawClient

    assert isinstance(client, RawClient)
    for i in range(len(data)):
        try:
            await client.send(data[i : i + 1])
        except ConnectionError:
            return
        await asyncio.sleep(every)  # the attack's pace, not a wait for the server


async def test_trickled_body_hits_the_total_deadline(serve: Serve, connect: Connect) -> None:
    """Item 20 of issue 9: a body of one byte per interval (each read well within the
    per-read timeout) is cut at its total deadline with 408, then the connection closes."""
    server = await serve(echo, body_timeout=0.5, body_min_rate=1000.0, body_read_timeout=30.0)
    client = await connect(server)
    await client.send(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    sender = asyncio.create_task(_trickle(client, b"x" * 100, 0.05))  # 5 s for all of it
    try:
        answer = await client.response(timeout=10.0)
    finally:
        sender.cancel()
    assert (answer.status, error_code(answer.body)) == (408, "timeout")
    assert loop.time() - started < 4.0  # the deadline (0.6 s), not the whole trickle (5 s)
    assert await client.closed_by_server()


async def test_stalled_body_hits_the_read_timeout(serve: Serve, connect: Connect) -> None:
    """Issue 11: the body's one timer (no timeout per read) still cuts a body that stops
    coming for ``body_read_timeout``, long before its total deadline, with 408."""
    server = await serve(echo, body_timeout=60.0, body_read_timeout=0.2)
    for head in (
        b"POST /stall HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
        b"POST /stall HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
    ):
        client = await connect(server)
        await client.send(head)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await client.response(timeout=10.0)
        assert (answer.status, error_code(answer.body)) == (408, "timeout")
        assert loop.time() - started < 5.0  # two read timeouts at most, not the 60 s
        assert await client.closed_by_server()


async def test_body_deadline_grows_with_the_body(serve: Serve, connect: Connect) -> None:
    """Item 20: a body that takes longer than ``body_timeout`` but arrives faster than
    ``body_min_rate`` is read whole (a big upload on a slow link still works)."""
    server = await serve(echo, body_timeout=0.3, body_min_rate=1000.0)
    client = await connect(server)
    body = b"y" * 4000  # allowed 0.3 s + 4 s; sent in about 1 s
    await client.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 4000\r\n\r\n")
    for start in range(0, len(body), 400):
        await client.send(body[start : start + 400])
        await asyncio.sleep(0.1)  # 4,000 bytes/s: slower than body_timeout alone allows
    answer = await client.response()
    assert answer.status == 200 and json.loads(answer.body)["length"] == 4000


async def test_connection_cap_answers_503_and_keeps_a_reserve(
    serve: Serve, connect: Connect
) -> None:
    """Item 20: past max_connections - reserved_connections only /healthz and token bearers
    are served (and anonymous ones closed after their answer); past the cap, 503."""

    async def app(request: Request) -> Response:
        if request.headers.get("authorization") == "Bearer good":
            request.mark_authenticated()
        elif request.path != "/healthz":
            body = await request.body.read(limits.MAX_JSON_BODY)
            return Response(body=json.dumps({"anonymous": len(body)}).encode())
        return Response(body=b'{"ok": true}')

    server = await serve(app, max_connections=6, reserved_connections=2)
    crowd = [await connect(server) for _ in range(4)]
    for client in crowd:  # four anonymous keep-alive connections: the unreserved ones
        await client.send(get("/anon"))
        assert (await client.response()).status == 200
    assert server.connections == 4
    anonymous = await connect(server)
    await anonymous.send(get("/anon"))
    refused = await anonymous.response()
    assert (refused.status, error_code(refused.body)) == (503, "unavailable")
    assert refused.headers["retry-after"] == "5"
    assert await anonymous.closed_by_server()
    health = await connect(server)
    await health.send(get("/healthz"))
    assert (await health.response()).status == 200
    assert await health.closed_by_server()  # a reserved slot is not kept for it
    for _ in range(int(DEADLINE / 0.01)):  # the slot comes back once the server closed too
        if server.connections == 4:
            break
        await asyncio.sleep(0.01)
    assert server.connections == 4
    users = [await connect(server) for _ in range(2)]
    for user in users:
        for _ in range(2):  # kept alive: the token made it a user's connection
            await user.send(get("/status", "Authorization: Bearer good"))
            assert (await user.response()).status == 200
    assert server.connections == 6
    over = await connect(server)
    await over.send(get("/healthz"))
    beyond = await over.response()
    assert (beyond.status, error_code(beyond.body)) == (503, "unavailable")

"""ServerParser without sockets: any bytes are parsed or refused with our typed BadRequest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_protocol import ErrorCode, limits
from messenger_server.http import BadRequest, RequestHead, ServerParser, Signal


def drive(chunks: list[bytes], max_head: int = limits.MAX_REQUEST_HEAD) -> list[object]:
    """Feed chunks, pull every event; a head is answered at once so pipelining proceeds."""
    parser = ServerParser(max_head)
    events: list[object] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while True:
            event = parser.next_event()
            if event is Signal.NEED_DATA or event is Signal.CLOSED:
                break
            if event is Signal.PAUSED:
                break
            events.append(event)
            if event is Signal.END_OF_BODY:
                parser.response(200, [(b"content-length", b"0")])
                parser.end()
                if not parser.keep_alive:
                    return events
                parser.start_next_cycle()
    return events


def test_pipelined_requests_with_bodies() -> None:
    wire = (
        b"POST /a?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        b"GET /c HTTP/1.0\r\n\r\n"
    )
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        events = drive(chunks)
        heads = [e for e in events if isinstance(e, RequestHead)]
        assert [(h.method, h.target) for h in heads] == [
            ("POST", b"/a?x=1"),
            ("POST", b"/b"),
            ("GET", b"/c"),
        ]
        assert [h.content_length for h in heads] == [3, None, 0]
        assert b"".join(e for e in events if isinstance(e, bytes)) == b"abchi"


def test_head_size_is_exact() -> None:
    def head(size: int) -> bytes:
        start, end = b"GET / HTTP/1.1\r\nHost: t\r\nX: ", b"\r\n\r\n"
        return start + b"a" * (size - len(start) - len(end)) + end

    parsed, end = drive([head(100)], max_head=100)
    assert end is Signal.END_OF_BODY
    assert isinstance(parsed, RequestHead) and parsed.head_size == 100
    for chunks in ([head(101)], [head(101)[:60], head(101)[60:]]):
        try:
            drive(chunks, max_head=100)
        except BadRequest as exc:
            assert (exc.status, exc.code) == (431, ErrorCode.TOO_LARGE)
        else:
            raise AssertionError("a 101-byte head passed a 100-byte limit")


def test_second_request_head_measured_on_its_own() -> None:
    one = b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
    events = drive([one * 5], max_head=len(one))
    assert len([e for e in events if isinstance(e, RequestHead)]) == 5


def test_expect_continue_and_100() -> None:
    parser = ServerParser()
    parser.receive_data(
        b"PUT /f HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.expect_continue
    assert parser.they_are_waiting_for_100_continue
    assert parser.continue_100().startswith(b"HTTP/1.1 100 ")
    assert not parser.they_are_waiting_for_100_continue


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_any_bytes_parse_or_typed_400(data: bytes) -> None:
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data, b""]):
        try:
            drive(chunks)
        except BadRequest as exc:
            assert exc.status in (400, 431)
            assert exc.code in (ErrorCode.INVALID, ErrorCode.TOO_LARGE)


_token = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"G\x00T", b""])
_header = st.tuples(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"X-A", b""]),
    st.one_of(st.sampled_from([b"chunked", b"5", b"-1", b"100-continue", b"t"]), st.binary()),
)


@settings(max_examples=300, deadline=None)
@given(
    _token,
    st.binary(max_size=20),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x"]),
    st.lists(_header, max_size=5),
    st.binary(max_size=50),
)
def test_fuzz_near_valid_requests(
    method: bytes, target: bytes, version: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    wire = method + b" /" + target + b" " + version + b"\r\n"
    wire += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    wire += b"\r\n" + body
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        try:
            drive(chunks)
        except BadRequest as exc:
            assert exc.status in (400, 431)


def test_take_body_keeps_pipelined_bytes_for_the_next_request() -> None:
    wire = (
        b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    head_end = wire.index(b"\r\n\r\n") + 4
    for split in range(head_end, len(wire) + 1):
        parser = ServerParser()
        parser.receive_data(wire[:split])  # what the first read brought
        head = parser.next_event()
        assert isinstance(head, RequestHead) and head.content_length == 5
        lead = parser.take_body()
        socket_rest = wire[split:]  # still in the socket: the body's tail comes from here
        tail = socket_rest[: 5 - len(lead)]
        assert lead + tail == b"hello", split
        parser.response(200, [(b"content-length", b"0")])
        parser.end()
        assert parser.keep_alive
        parser.start_next_cycle()
        parser.receive_data(socket_rest[len(tail) :])
        following = parser.next_event()
        assert isinstance(following, RequestHead) and following.target == b"/next", split


def test_take_body_honours_connection_close() -> None:
    parser = ServerParser()
    parser.receive_data(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    )
    assert isinstance(parser.next_event(), RequestHead)
    assert parser.take_body() == b"hi"
    parser.response(200, [(b"content-length", b"0")])
    parser.end()
    assert not parser.keep_alive


def test_head_behind_a_chunked_body_keeps_the_limit() -> None:
    """A request pipelined right behind a chunked body (parsed by llhttp in the same read)
    still has its head limit: within it served, one header line over it refused 431."""
    chunked = (
        b"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    small = b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
    heads = [e for e in drive([chunked + small], max_head=200) if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"/a", b"/b"]
    big = b"GET /b HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    try:
        drive([chunked + big], max_head=200)
    except BadRequest as exc:
        assert exc.status == 431
    else:
        raise AssertionError("a 230-byte head passed a 200-byte limit")


def test_upgrade_request_is_served_with_its_body() -> None:
    """``Connection: upgrade`` is not honoured (we never switch protocols): the request is
    an ordinary one, its Content-Length body read, the next request parsed after it."""
    wire = (
        b"POST /u HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n"
        b"Content-Length: 3\r\n\r\nabc"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    parser = ServerParser()
    parser.receive_data(wire)
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.content_length == 3
    assert parser.take_body() == b"abc"
    parser.response(200, [(b"content-length", b"0")])
    parser.end()
    assert parser.keep_alive
    parser.start_next_cycle()
    following = parser.next_event()
    assert isinstance(following, RequestHead) and following.target == b"/next"


def test_unknown_method_token_reaches_the_router() -> None:
    """Issue 9 item 22: ``get`` and ``BREW`` are parsed (the router answers 501), while a
    method that is not a token is a 400."""
    for method in (b"get", b"BREW", b"M-SEARCH"):
        (head, _end) = drive([method + b" /x HTTP/1.1\r\nHost: t\r\n\r\n"])
        assert isinstance(head, RequestHead) and head.method == method.decode()
    try:
        drive([b"G(T /x HTTP/1.1\r\nHost: t\r\n\r\n"])
    except BadRequest as exc:
        assert exc.status == 400
    else:
        raise AssertionError("a method with '(' was parsed")


def test_response_header_injection_refused() -> None:
    parser = ServerParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert isinstance(parser.next_event(), RequestHead)
    for bad in ([(b"x", b"a\r\nx-evil: 1")], [(b"x y", b"1")], [(b"x", b"a\x00")]):
        try:
            parser.response(200, [(b"content-length", b"0"), *bad])
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was serialised")
    head = parser.response(200, [(b"content-length", b"2")])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    try:
        parser.body(b"abc")
    except ValueError:
        pass
    else:
        raise AssertionError("3 bytes sent for a Content-Length of 2")

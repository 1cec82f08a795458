"""Sans-I/O HTTP/1.1 for the server side: llhttp (httptools) driven by bytes in, bytes out.

:class:`ServerParser` owns one llhttp parser. It adds what llhttp leaves to us:
an exact request-head limit, accepted HTTP versions, a mandatory Host, any token as
a method (the router answers an unknown one with 501), origin- and absolute-form
targets, and turning every parse failure into our own :class:`BadRequest` (a typed
:class:`~messenger_protocol.ProtocolViolation`). Responses are serialised by hand from
pre-built status lines. Any byte sequence fed to it is either parsed or rejected with
:class:`BadRequest`; the fuzz tests hold it to that.
"""

from __future__ import annotations

import collections
import enum
import http
import math
import re
import time
from dataclasses import dataclass
from email.utils import formatdate

import httptools

from messenger_protocol import ApiError, ErrorCode, ProtocolViolation, encode, limits

__all__ = [
    "BadRequest",
    "RequestHead",
    "ServerParser",
    "Signal",
    "error_body",
    "error_headers",
    "http_date",
    "raw_response",
    "redacted_target",
    "status_line",
]


class BadRequest(ProtocolViolation):
    """The request bytes are not acceptable HTTP; answered, then the connection closes."""

    def __init__(
        self, message: str, *, status: int = 400, code: ErrorCode = ErrorCode.INVALID
    ) -> None:
        super().__init__(message, code)
        self._status = status

    @property
    def status(self) -> int:
        """HTTP status of the answer (431 for an oversized head, else 400)."""
        return self._status


class Signal(enum.Enum):
    """Events of :meth:`ServerParser.next_event` that carry no data."""

    NEED_DATA = "need_data"
    """Feed more bytes."""
    END_OF_BODY = "end_of_body"
    """The request body is complete."""
    CLOSED = "closed"
    """The peer closed the connection between requests."""
    PAUSED = "paused"
    """A pipelined request waits until the current response is finished."""


@dataclass(slots=True)
class RequestHead:
    """A parsed request line and headers."""

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    """Names lowercased, in arrival order."""
    http_version: bytes
    content_length: int | None
    """Declared body length; None for a chunked body."""
    expect_continue: bool
    head_size: int
    keep_alive: bool = True
    """The client allows another request on this connection after this one."""


_ACCEPTED_VERSIONS = {"1.0": b"1.0", "1.1": b"1.1"}
"""llhttp's version string -> the ``http_version`` of a head, for the versions we serve."""
_METHOD_NAMES = {m: m.decode("ascii") for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE",
                                                 b"PATCH", b"OPTIONS")}  # fmt: skip
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host", b"expect"})
"""Header names on_headers_complete looks at (lowercase)."""
_ABSOLUTE_FORM = re.compile(rb"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
_SECRET_PARAM = re.compile(r"(?i)((?:^|[?&;])[^=&;]*(?:token|password|secret)[^=&;]*=)[^&;#]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PLAIN_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"})
"""Methods llhttp parses like any other; every other token is fed to it as GET (llhttp
only knows a fixed list, while an unknown method must reach the router for its 501)."""
_PLAIN_STARTS = tuple(m + b" " for m in _PLAIN_METHODS)
"""How a request with one of them begins (most requests: no method to look at)."""
_LONGEST_METHOD = 32
_BODILESS = frozenset({204, 304})
_OWS = b" \t"


def redacted_target(target: bytes | str, limit: int = 200) -> str:
    """A request target fit for a log line: ``access_token`` and other secrets blanked."""
    text = target.decode("latin-1") if isinstance(target, bytes) else target
    if "?" in text:
        path, _, query = text.partition("?")
        text = path + "?" + _SECRET_PARAM.sub(r"\1REDACTED", query)
    return text[:limit]


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in http.HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()
}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, pre-built for every known status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid response: status {status}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def check_head_lines(lines: bytes, count: int) -> None:
    """Raise ValueError unless ``lines`` are ``count`` CRLF-ended header lines and nothing
    else: a CR, LF or NUL inside a name or value (header injection) is refused."""
    if lines.count(b"\n") != count or lines.count(b"\r") != count or b"\x00" in lines:
        raise ValueError("invalid response: CR, LF or NUL in a header")


class _Phase(enum.Enum):
    SCAN = 1
    """At a message boundary: head bytes are collected and fed up to the blank line."""
    DIRECT = 2
    """Inside a message (or after one that llhttp ran past): every byte goes to llhttp."""


class ServerParser:
    """One server-side HTTP/1.1 connection, without I/O.

    Feed received bytes with :meth:`receive_data` (``b""`` at EOF) and pull
    events with :meth:`next_event`; serialise the answer with :meth:`response`,
    :meth:`body` and :meth:`end`; call :meth:`start_next_cycle` before the next
    request of a keep-alive connection.

    llhttp (through httptools) does the parsing. A head that starts at a message
    boundary is found by our own scan for the blank line, so its size limit is exact
    and no body byte is fed before the caller decides to read the body itself
    (:meth:`take_body`). Only a request pipelined right behind a chunked body is parsed
    by llhttp in one go with it; its head size is then counted from its parts.
    """

    __slots__ = (
        "_by_bytes", "_bypassed", "_client_keep_alive", "_content_length", "_count",
        "_counted", "_current", "_eof", "_error", "_events", "_framing", "_head",
        "_head_fed", "_headers", "_headers_done", "_in_message", "_llhttp", "_max_head",
        "_method", "_no_body", "_phase", "_reset", "_response_done", "_response_started",
        "_rest", "_scanned", "_sent", "_their_done", "_to_send", "_url", "_waiting_100",
        "_we_close",
    )  # fmt: skip

    def __init__(self, max_head: int = limits.MAX_REQUEST_HEAD) -> None:
        self._max_head = max_head
        self._llhttp = httptools.HttpRequestParser(self)
        self._events: collections.deque[RequestHead | bytes | Signal] = collections.deque()
        self._phase = _Phase.SCAN
        self._head = b""  # the head being collected (SCAN)
        self._head_fed = 0  # how much of it llhttp has seen
        self._rest = b""  # received, not yet fed (DIRECT)
        self._eof = False
        self._error: BadRequest | None = None
        self._reset = False  # llhttp must start over at the next cycle
        self._bypassed = False
        self._their_done = False  # END_OF_BODY of the current request was pulled
        self._waiting_100 = False
        self._client_keep_alive = True
        self._current: RequestHead | None = None
        self._response_started = False
        self._response_done = False
        self._we_close = False
        self._no_body = False
        self._to_send: int | None = None
        self._sent = 0
        self._start_message()

    # -- llhttp callbacks ----------------------------------------------------------------

    def _start_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing: list[tuple[bytes, bytes]] = []  # the _FRAMING ones among them
        self._headers_done = False
        self._in_message = False
        self._method = ""
        self._content_length: int | None = 0
        self._count = 0  # head bytes counted from parts (a head llhttp ran into)
        self._counted = False  # this head began inside a read llhttp parsed whole
        self._by_bytes = False  # ... and went on in the next read: count its bytes
        self._scanned = 0  # the exact head size when our scan found it

    def on_message_begin(self) -> None:
        self._in_message = True
        self._counted = self._phase is _Phase.DIRECT

    def on_url(self, url: bytes) -> None:
        self._url += url
        if self._counted and not self._by_bytes:
            self._count += len(url)
            if self._count > self._max_head:
                raise self._too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a trailer of a chunked body: dropped, like every framing detail
        name = name.lower()
        value = value.rstrip(_OWS)
        self._headers.append((name, value))
        if name in _FRAMING:
            self._framing.append((name, value))
        if self._counted and not self._by_bytes:
            self._count += len(name) + len(value) + 4
            if self._count > self._max_head:
                raise self._too_large()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        parser = self._llhttp
        size = self._scanned or self._count + len(self._method or b"GET") + 14
        if size > self._max_head:
            raise self._too_large()
        version = parser.get_http_version()
        http_version = _ACCEPTED_VERSIONS.get(version)
        if http_version is None:
            raise BadRequest(f"unsupported HTTP version {version!r}")
        target = self._url
        if target[:1] != b"/":
            # absolute-form (RFC 9112 §3.2.2: a server MUST accept it): keep path and query
            scheme_host = _ABSOLUTE_FORM.match(target)
            if scheme_host is None:
                raise BadRequest("request target must be a path or an absolute URL")
            target = target[scheme_host.end() :]
            if not target.startswith(b"/"):
                target = b"/" + target
        method = self._method
        if not method:
            raw_method = parser.get_method()
            method = _METHOD_NAMES.get(raw_method) or raw_method.decode("ascii")
        content_length: int | None = 0
        chunked = False
        expect_continue = False
        hosts = 0
        # only the framing headers (noted by on_header), not every header
        for name, value in self._framing:
            if name == b"content-length":
                content_length = int(value)  # llhttp has validated it
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"host":
                hosts += 1
            else:  # expect
                expect_continue = value.lower() == b"100-continue"
        if hosts != 1 and (hosts or http_version == b"1.1"):
            raise BadRequest("a request needs exactly one Host header")
        if chunked:
            if content_length:
                # two framings: the classic request-smuggling shape (RFC 9112 §6.1)
                raise BadRequest("both Content-Length and Transfer-Encoding given")
            content_length = None
        self._content_length = content_length
        if parser.should_upgrade():
            # "Connection: upgrade": served like any other request (we never switch
            # protocols), but llhttp skips its body, so it must start over afterwards
            if chunked:
                raise BadRequest("an upgrade request with a chunked body")
            self._reset = True
        self._events.append(
            RequestHead(
                method,  # case-sensitive (RFC 9110 §9.1): the router refuses "get"
                target,
                self._headers,
                http_version,
                content_length,
                expect_continue and http_version == b"1.1",
                size,
                parser.should_keep_alive(),
            )
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        if self._reset and self._content_length:
            pass  # an upgrade request: its body is read around llhttp (take_body)
        else:
            self._events.append(Signal.END_OF_BODY)
        self._start_message()

    def _too_large(self) -> BadRequest:
        return BadRequest(
            f"request head exceeds {self._max_head} bytes", status=431, code=ErrorCode.TOO_LARGE
        )

    # -- bytes in ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._counted and not self._headers_done:
            self._by_bytes = True  # a head that llhttp ran into goes on in this read
            self._count += len(data)
            if self._count > self._max_head:
                raise self._too_large()
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # see on_headers_complete
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, BadRequest):
                raise exc.__context__ from None
            raise BadRequest("malformed request") from None  # pragma: no cover
        except httptools.HttpParserError as exc:
            # llhttp's reasons name the rule, never the bytes (a header may hold a token)
            raise BadRequest(f"malformed request: {exc}") from None

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer closed its side."""
        if self._eof:
            if data:
                raise BadRequest("data after the end of the connection")
            return
        if not data:
            self._eof = True
            return
        if self._error is not None:
            return
        if self._phase is _Phase.DIRECT:
            self._rest = self._rest + data if self._rest else data
            return
        try:
            self._scan(data)
        except BadRequest as exc:
            self._error = exc

    def _scan(self, data: bytes) -> None:
        head = self._head
        if not head:
            data = data.lstrip(b"\r\n")  # empty lines before a request (RFC 9112 §2.2)
            if not data:
                return
            head = data
        else:
            head += data
        self._head = head
        end = head.find(b"\r\n\r\n", max(0, len(head) - len(data) - 3))
        if end < 0:
            if len(head) >= self._max_head:
                raise self._too_large()
            upto = len(head)
        else:
            upto = end + 4
            if upto > self._max_head:
                raise self._too_large()
        fed = self._head_fed
        if fed == 0 and not head.startswith(_PLAIN_STARTS):
            space = head.find(b" ", 0, _LONGEST_METHOD + 1)
            if space < 0 and end < 0 and len(head) <= _LONGEST_METHOD:
                return  # the method is not complete yet
            if space > 0:
                method = head[:space]
                if method not in _PLAIN_METHODS and _TOKEN.fullmatch(method):
                    self._method = method.decode("ascii")
                    self._head_fed = space
                    self._feed(b"GET")
                    fed = space
        if end >= 0:
            self._scanned = upto
            self._head = b""
            self._head_fed = 0
            self._rest = head[upto:]
            self._feed(head[fed:upto] if fed or upto < len(head) else head)
            self._phase = _Phase.DIRECT
        else:
            self._head_fed = upto
            self._feed(head[fed:upto] if fed else head)

    def next_event(self) -> RequestHead | bytes | Signal:
        """The next thing the peer sent: a head, body bytes or a :class:`Signal`."""
        if self._error is not None:
            raise self._error
        if self._their_done:
            return Signal.PAUSED
        events = self._events
        while True:
            if events:
                event = events.popleft()
                if event is Signal.END_OF_BODY:
                    self._their_done = True
                elif type(event) is RequestHead:
                    self._current = event
                    self._client_keep_alive = event.keep_alive
                    self._waiting_100 = event.expect_continue and not self._rest
                else:
                    self._waiting_100 = False
                return event
            if self._phase is _Phase.DIRECT and self._rest:
                data, self._rest = self._rest, b""
                self._waiting_100 = False
                try:
                    self._feed(data)
                except BadRequest as exc:
                    self._error = exc
                    raise
                continue
            if self._eof:
                if self._current is None and not self._head and not self._in_message:
                    return Signal.CLOSED
                if self._current is None:
                    raise BadRequest("the client closed in the middle of a request head")
                raise BadRequest("request body ended early")
            return Signal.NEED_DATA

    def take_body(self) -> bytes:
        """Read the current Content-Length body outside llhttp; returns the part already
        received.

        Big uploads then cost no copies through the parser: the caller reads the
        remaining ``content_length - len(returned)`` bytes from the socket itself and
        must consume all of them before :meth:`start_next_cycle`. Bytes that arrived
        after the body (a pipelined request) are kept for the next cycle.
        """
        head = self._current
        if head is None or not head.content_length or self._bypassed or self._their_done:
            raise RuntimeError("take_body() needs a fresh Content-Length request")
        length = head.content_length
        events = self._events
        pieces: list[bytes] = []
        while events and type(events[0]) is bytes:
            pieces.append(events.popleft())  # type: ignore[arg-type]
        if events and events[0] is Signal.END_OF_BODY:
            # llhttp ran into this body behind a chunked one and has all of it
            events.popleft()
            self._their_done = True
            self._bypassed = True
            return b"".join(pieces)
        have = sum(map(len, pieces))
        rest = self._rest
        pieces.append(rest[: length - have])
        self._rest = rest[length - have :]
        self._bypassed = True
        self._reset = True  # llhttp never sees this body
        return b"".join(pieces) if len(pieces) > 1 else pieces[0]

    def empty_body_done(self) -> bool:
        """For a request whose body is empty and already complete (a GET), pull its
        END_OF_BODY now and return True; else change nothing and return False."""
        events = self._events
        if events and events[0] is Signal.END_OF_BODY and self._current is not None:
            events.popleft()
            self._their_done = True
            return True
        return False

    @property
    def head_started(self) -> bool:
        """Some bytes of the next request head have arrived (it is not complete yet)."""
        return bool(self._head) or (self._in_message and not self._headers_done)

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and waits before sending its body."""
        return self._waiting_100

    def continue_100(self) -> bytes:
        """Bytes of a ``100 Continue`` answer."""
        self._waiting_100 = False
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    # -- bytes out -----------------------------------------------------------------------

    def response(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """Bytes of a response head (``headers`` must carry the framing).

        Raises ValueError for a response HTTP cannot carry (bad header name or value).
        """
        length: int | None = None
        close = False
        for name, value in headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid response: header name {name!r}")
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.lower() == b"close"
        lines = b"".join([b"%s: %s\r\n" % pair for pair in headers])
        return self.response_head(status, lines, len(headers), length, close)

    def response_head(
        self,
        status: int,
        lines: bytes,
        count: int,
        length: int | None,
        close: bool,
        *,
        checked: bool = False,
    ) -> bytes:
        """Bytes of a response head from header lines already serialised (``count``
        CRLF-ended lines, ``length`` the Content-Length among them, ``close`` whether
        one says ``connection: close``); raises ValueError for a broken line (unless
        ``checked``: the caller has checked every line itself)."""
        if not checked:
            check_head_lines(lines, count)
        if self._response_started:
            raise ValueError("invalid response: a response was already started")
        self._response_started = True
        self._waiting_100 = False
        head = self._current
        self._no_body = (
            (head is not None and head.method == "HEAD") or status in _BODILESS or status < 200
        )
        self._to_send = 0 if self._no_body else length
        self._sent = 0
        self._we_close = close
        if not close and not self._client_keep_alive:
            # an HTTP/1.0 client or "Connection: close": say that we close too
            self._we_close = True
            lines += b"connection: close\r\n"
        return status_line(status) + lines + b"\r\n"

    def body(self, data: bytes) -> bytes:
        """Bytes of a piece of response body (checked against Content-Length)."""
        if not self._response_started or self._response_done:
            raise ValueError("invalid response: body outside a response")
        to_send = self._to_send
        if to_send is not None:
            self._sent += len(data)
            if self._sent > to_send:
                raise ValueError("invalid response: more body than its Content-Length")
        return data

    def end(self) -> bytes:
        """Bytes that finish the response (nothing for Content-Length framing)."""
        if not self._response_started:
            raise ValueError("invalid response: end without a response")
        if self._to_send is not None and self._sent < self._to_send:
            raise ValueError("invalid response: less body than its Content-Length")
        self._response_done = True
        return b""

    @property
    def keep_alive(self) -> bool:
        """Both sides finished the exchange and the connection may serve another request.

        After :meth:`take_body`, llhttp never saw the body: the caller vouches for it.
        """
        if not self._response_done or self._we_close or not self._client_keep_alive:
            return False
        return self._bypassed or self._their_done

    @property
    def response_started(self) -> bool:
        """A response head has been serialised for the current request."""
        return self._response_started

    def start_next_cycle(self) -> None:
        """Reset for the next request on a keep-alive connection."""
        if not self.keep_alive:
            raise RuntimeError("start_next_cycle() before the exchange finished")
        self._current = None
        self._their_done = False
        self._bypassed = False
        self._response_started = False
        self._response_done = False
        self._waiting_100 = False
        self._to_send = None
        if self._reset:
            # llhttp missed a body: start over with what followed it
            self._reset = False
            self._llhttp = httptools.HttpRequestParser(self)
            self._start_message()
            self._events.clear()
            carry, self._rest = self._rest, b""
            self._phase = _Phase.SCAN
            if carry:
                self.receive_data(carry)
            return
        if self._events or self._in_message:
            return  # llhttp is already inside the next request: it goes on in DIRECT
        self._phase = _Phase.SCAN
        carry, self._rest = self._rest, b""
        if carry:
            self.receive_data(carry)


_date_cache: list[object] = [0, b""]


def http_date() -> bytes:
    """The ``Date`` header value, recomputed at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    value = _date_cache[1]
    assert isinstance(value, bytes)
    return value


def raw_response(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None = b"",
    *,
    close: bool = True,
) -> bytes:
    """A response serialised outside the parser's exchange.

    Used for parse errors, refused connections and close-delimited streams. With
    ``body=None`` no Content-Length is sent and the body ends when the connection does.
    """
    lines = [status_line(status)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    lines.append(b"date: %s\r\nserver: messenger\r\n" % http_date())
    if body is not None:
        lines.append(b"content-length: %d\r\n" % len(body))
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


def error_body(exc: ApiError) -> bytes:
    """The typed JSON body of an error."""
    return encode(exc.body())


def error_headers(exc: ApiError) -> list[tuple[bytes, bytes]]:
    """Headers that go with an error: the JSON type and ``Retry-After`` when known."""
    headers = [(b"content-type", b"application/json")]
    if exc.allow:
        headers.append((b"allow", ", ".join(exc.allow).encode("ascii")))
    if exc.retry_after is not None:
        headers.append((b"retry-after", b"%d" % max(0, math.ceil(exc.retry_after))))
    return headers

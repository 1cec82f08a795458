"""Sans-I/O HTTP/1.1 for the server side: h11 driven by bytes in, bytes out.

:class:`ServerParser` owns one h11 connection. It adds what h11 leaves to us:
an exact request-head limit, accepted HTTP versions, origin-form targets, and
turning every parse failure into our own :class:`BadRequest` (a typed
:class:`~messenger_protocol.ProtocolViolation`). Any byte sequence fed to it is
either parsed or rejected with :class:`BadRequest`; the fuzz tests hold it to that.
"""

from __future__ import annotations

import enum
import http
import math
import re
import time
from dataclasses import dataclass
from email.utils import formatdate

import h11

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


_ACCEPTED_VERSIONS = frozenset({b"1.0", b"1.1"})
_ABSOLUTE_FORM = re.compile(rb"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
_QUOTED = re.compile(r"""[:\s]*(?:b?['"]|bytearray\(|\{).*""", re.DOTALL)
_SECRET_PARAM = re.compile(r"(?i)((?:^|[?&;])[^=&;]*(?:token|password|secret)[^=&;]*=)[^&;#]*")


def _reason(exc: h11.ProtocolError) -> str:
    """h11's complaint without the bytes it quotes (a header line may hold a bearer token)."""
    text = _QUOTED.sub("", str(exc)).strip(" :")
    return text or "malformed request"


def redacted_target(target: bytes | str, limit: int = 200) -> str:
    """A request target fit for a log line: ``access_token`` and other secrets blanked."""
    text = target.decode("latin-1") if isinstance(target, bytes) else target
    if "?" in text:
        path, _, query = text.partition("?")
        text = path + "?" + _SECRET_PARAM.sub(r"\1REDACTED", query)
    return text[:limit]


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in http.HTTPStatus}


class ServerParser:
    """One server-side HTTP/1.1 connection, without I/O.

    Feed received bytes with :meth:`receive_data` (``b""`` at EOF) and pull
    events with :meth:`next_event`; serialise the answer with :meth:`response`,
    :meth:`body` and :meth:`end`; call :meth:`start_next_cycle` before the next
    request of a keep-alive connection.
    """

    __slots__ = ("_body_length", "_bypassed", "_carry", "_fed", "_h11", "_max_head")

    def __init__(self, max_head: int = limits.MAX_REQUEST_HEAD) -> None:
        self._max_head = max_head
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        # bytes fed that belong to the current request's head (and what follows it)
        self._fed = 0
        self._body_length: int | None = 0
        self._bypassed = False
        self._carry = b""

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer closed its side."""
        self._fed += len(data)
        try:
            self._h11.receive_data(data)
        except h11.RemoteProtocolError as exc:  # data after EOF
            raise BadRequest(_reason(exc)) from None

    def next_event(self) -> RequestHead | bytes | Signal:
        """The next thing the peer sent: a head, body bytes or a :class:`Signal`."""
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:
                raise BadRequest(
                    f"request head exceeds {self._max_head} bytes",
                    status=431,
                    code=ErrorCode.TOO_LARGE,
                ) from None
            raise BadRequest(f"malformed request: {_reason(exc)}") from None
        kind = type(event)
        if kind is h11.Data:
            return bytes(event.data)  # type: ignore[union-attr]
        if kind is h11.Request:
            return self._head(event)  # type: ignore[arg-type]
        if kind is h11.EndOfMessage:
            return Signal.END_OF_BODY
        if event is h11.NEED_DATA:
            return Signal.NEED_DATA
        if event is h11.PAUSED:
            return Signal.PAUSED
        if kind is h11.ConnectionClosed:
            return Signal.CLOSED
        raise BadRequest(f"unexpected HTTP event {kind.__name__}")  # pragma: no cover

    def _head(self, event: h11.Request) -> RequestHead:
        leftover = len(self._h11.trailing_data[0])
        head_size = self._fed - leftover
        self._fed = leftover
        if head_size > self._max_head:
            raise BadRequest(
                f"request head exceeds {self._max_head} bytes",
                status=431,
                code=ErrorCode.TOO_LARGE,
            )
        if event.http_version not in _ACCEPTED_VERSIONS:
            raise BadRequest(f"unsupported HTTP version {event.http_version.decode()!r}")
        target = bytes(event.target)
        if not target.startswith(b"/"):
            # absolute-form (RFC 9112 §3.2.2: a server MUST accept it): keep path and query
            scheme_host = _ABSOLUTE_FORM.match(target)
            if scheme_host is None:
                raise BadRequest("request target must be a path or an absolute URL")
            target = target[scheme_host.end() :]
            if not target.startswith(b"/"):
                target = b"/" + target
        try:
            method = event.method.decode("ascii")
        except UnicodeDecodeError:  # pragma: no cover - h11 only accepts token chars
            raise BadRequest("malformed method") from None
        headers = list(event.headers)
        content_length: int | None = 0
        chunked = False
        expect_continue = False
        for name, value in headers:
            if name == b"content-length":
                content_length = int(value)  # h11 has validated it
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
        if chunked:
            if content_length:
                # two framings: the classic request-smuggling shape (RFC 9112 §6.1)
                raise BadRequest("both Content-Length and Transfer-Encoding given")
            content_length = None
        self._body_length = content_length
        return RequestHead(
            method=method,  # case-sensitive (RFC 9110 §9.1): the router refuses "get"
            target=target,
            headers=headers,
            http_version=bytes(event.http_version),
            content_length=content_length,
            expect_continue=expect_continue,
            head_size=head_size,
        )

    def take_body(self) -> bytes:
        """Read the current Content-Length body outside h11; returns the part already received.

        Big uploads then cost no copies through h11's buffer: the caller reads the
        remaining ``content_length - len(returned)`` bytes from the socket itself and
        must consume all of them before :meth:`start_next_cycle`. Bytes that arrived
        after the body (a pipelined request) are kept for the next cycle.
        """
        length = self._body_length
        if length is None or self._bypassed:
            raise RuntimeError("take_body() needs a fresh Content-Length request")
        data = self._h11.trailing_data[0]
        self._bypassed = True
        self._carry = data[length:]
        return data[:length]

    @property
    def head_started(self) -> bool:
        """Some bytes of the next request head have arrived (it is not complete yet)."""
        return self._fed > 0

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and waits before sending its body."""
        return self._h11.they_are_waiting_for_100_continue

    def continue_100(self) -> bytes:
        """Bytes of a ``100 Continue`` answer."""
        return self._send(h11.InformationalResponse(status_code=100, headers=[]))

    def response(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """Bytes of a response head (``headers`` must carry the framing).

        Raises ValueError for a response HTTP cannot carry (bad header name or value).
        """
        try:
            event = h11.Response(
                status_code=status, headers=headers, reason=_REASONS.get(status, b"")
            )
        except h11.LocalProtocolError as exc:  # h11 validates names and values here
            raise ValueError(f"invalid response: {exc}") from None
        return self._send(event)

    def body(self, data: bytes) -> bytes:
        """Bytes of a piece of response body (checked against Content-Length)."""
        return self._send(h11.Data(data=data))

    def end(self) -> bytes:
        """Bytes that finish the response (nothing for Content-Length framing)."""
        return self._send(h11.EndOfMessage())

    def _send(self, event: h11.Event) -> bytes:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:  # e.g. a CR/LF in a header value
            raise ValueError(f"invalid response: {exc}") from None
        assert data is not None  # only ConnectionClosed gives None
        return data

    @property
    def keep_alive(self) -> bool:
        """Both sides finished the exchange and the connection may serve another request.

        After :meth:`take_body`, h11 never saw the body: the caller vouches for it.
        """
        if self._h11.our_state is not h11.DONE:
            return False
        return self._bypassed or self._h11.their_state is h11.DONE

    @property
    def response_started(self) -> bool:
        """A response head has been serialised for the current request."""
        return self._h11.our_state is not h11.SEND_RESPONSE and self._h11.our_state is not h11.IDLE

    def start_next_cycle(self) -> None:
        """Reset for the next request on a keep-alive connection."""
        if self._bypassed:
            # h11 still waits for the body it never saw: start over with what followed it
            carry, self._carry, self._bypassed = self._carry, b"", False
            self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head)
            self._fed = 0
            if carry:
                self.receive_data(carry)
            return
        self._h11.start_next_cycle()
        self._fed = len(self._h11.trailing_data[0])


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
    """A response serialised without h11, for answers outside its state machine.

    Used for parse errors, refused connections and close-delimited streams. With
    ``body=None`` no Content-Length is sent and the body ends when the connection does.
    """
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
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

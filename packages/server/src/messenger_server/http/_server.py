"""HTTP/1.1 server on an asyncio protocol: one coroutine per connection, llhttp for the bytes.

Each connection runs one loop: read a head (under the idle timeout), call the
handler, write the answer, make sure the request body is consumed, repeat while
keep-alive allows. Streams (Server-Sent Events) keep the connection: their
producer runs in the connection's task; one that hands its stream over
(:meth:`ResponseStream.keep_open`) lets the task end, and the stream's protocol
ends the connection when the peer leaves. One ``try/finally`` closes every
other connection, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl

from messenger_protocol import ApiError, ErrorCode, ProtocolViolation, limits

from ..loglimit import LogLimiter
from ..states import CONNECTION, require
from ._messages import Body, Handler, Headers, Request, Response, ResponseStream, StreamResponse
from ._proxy import ProxyHeaderError, TrustedProxies, parse_proxy_v2, proxy_v2_length
from ._wire import (
    BadRequest,
    RequestHead,
    ServerParser,
    Signal,
    check_head_lines,
    error_body,
    error_headers,
    http_date,
    raw_response,
    redacted_target,
)

__all__ = ["HttpLimits", "HttpServer", "LogLimiter", "PeerGone"]

log = logging.getLogger(__name__)


def _abandon(result: StreamResponse) -> None:
    """Its producer will not run: tell the app (it may hold something for the stream)."""
    if result.abandoned is not None:
        result.abandoned()


class PeerGone(ConnectionResetError):
    """The client went away in the middle of a request: not an error, nothing to answer."""


_log_limit = LogLimiter(logger=log)

_AT_CAPACITY = ApiError(
    ErrorCode.UNAVAILABLE, "the server is at its connection limit; try again soon", retry_after=5
)

_SERVER = b"messenger"
_WRITE_HIGH_WATER = 256 * 1024
_MAX_QUERY_FIELDS = 64
_BODILESS = frozenset({204, 304})
_JOIN_MAX = 16 * 1024
"""A response body up to this size is joined to its head: one buffer, one send."""
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_GOOD_NAMES: set[str] = set()
"""Response header names the app used and that were found to be HTTP tokens."""
_CONTENT_TYPES: dict[str, bytes] = {}
"""``content-type: …\\r\\n`` lines by media type, built once each."""


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid response: header name {name!r}")
    if len(_GOOD_NAMES) < 256:
        _GOOD_NAMES.add(name)


def _content_type_line(content_type: str) -> bytes:
    line = b"content-type: %s\r\n" % content_type.encode("latin-1")
    check_head_lines(line, 1)
    if len(_CONTENT_TYPES) < 256:
        _CONTENT_TYPES[content_type] = line
    return line


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Transport limits; defaults from :mod:`messenger_protocol.limits`."""

    max_request_head: int = limits.MAX_REQUEST_HEAD
    """Largest request line + headers (431 beyond)."""
    idle_unauthenticated: float = limits.IDLE_UNAUTHENTICATED_SECONDS
    """A connection that never authenticated is closed after this long without a request."""
    keepalive_idle: float = limits.KEEPALIVE_IDLE_SECONDS
    """An authenticated keep-alive connection is closed after this long without a request."""
    max_connections_per_ip: int = limits.MAX_CONNECTIONS_PER_IP
    """Simultaneous connections from one address (429 and close beyond)."""
    max_connections: int = limits.MAX_CONNECTIONS
    """Simultaneous connections in all (503 and close beyond)."""
    reserved_connections: int = limits.RESERVED_CONNECTIONS
    """The last of ``max_connections``: a connection that gets one may only ask for a
    ``reserved_paths`` or send a bearer token, and is closed after an answer that did not
    authenticate it (503 for anything else). A flood of anonymous connections fills the
    rest, never these."""
    reserved_paths: tuple[str, ...] = ("/healthz",)
    """Paths served on a reserved connection without a token."""
    body_timeout: float = limits.BODY_TIMEOUT_SECONDS
    """Total time any request body gets, on top of its size at ``body_min_rate``."""
    body_min_rate: float = limits.BODY_MIN_RATE
    """Slowest average upload (bytes/s) the body deadline allows for."""
    body_read_timeout: float = 30.0
    """Longest wait for the next piece of a request body."""
    write_timeout: float = 30.0
    """Longest wait for the peer to take our bytes when the buffer is full."""
    drain_max: int = 256 * 1024
    """Unread request body up to this size is read and discarded to keep the connection
    (a refused JSON body just over its limit costs no reconnect)."""
    linger_seconds: float = 2.0
    """After refusing a body, keep reading (and discarding) it this long so the peer sees
    our answer instead of a reset."""
    read_size: int = 64 * 1024
    """Bytes asked of the socket per read."""
    body_read_size: int = 1024 * 1024
    """Most bytes one read of a body with a Content-Length takes: all that came in at
    once, usually, handed on as the one ``bytes`` it arrived in (no splitting copies)."""
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    """Peers whose PROXY header and ``X-Forwarded-For`` name the client's address; they
    are not held to ``max_connections_per_ip`` unless that address is known (PROXY)."""
    proxy_protocol: bool = False
    """Connections from ``trusted_proxies`` start with a PROXY protocol v2 header."""


_SPENT_PARSER = ServerParser()
"""Stands in for the parser of a connection that became a stream (never used again)."""


class HttpServer:
    """Serves ``handler`` over HTTP/1.1 (keep-alive, pipelining, chunked bodies, streams)."""

    def __init__(self, handler: Handler, limits: HttpLimits | None = None) -> None:
        self.handler = handler
        self.limits = limits or HttpLimits()
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._closing = False
        self._port = 0
        self._trusted = self.limits.trusted_proxies or None
        """The trusted proxies, None without any (asked at every request)."""

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        read_size = self.limits.read_size
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Link(self, read_size), host, port, backlog=2048
        )
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        return self._port

    @property
    def connections(self) -> int:
        """Live connections."""
        return len(self._conns)

    def live(self) -> Iterator[str]:
        """``ip:port`` of every live connection."""
        return (conn.peer for conn in list(self._conns))

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused (a balancer sends them
        to another node); the open ones get ``Connection: close`` on their next answer."""
        self._closing = True
        if self._server is not None:
            self._server.close()

    async def close(self, grace: float) -> None:
        """Stop accepting, let running requests finish for up to ``grace`` s, then drop all.

        Idle connections close at once, except one whose next request head has begun to
        arrive: that request is running already and is answered.
        """
        self.stop_accepting()
        for conn in list(self._conns):
            conn.shutdown()
        tasks: list[asyncio.Future[Any]] = [
            conn.task for conn in self._conns if conn.task is not None
        ]
        # kept event streams have no task: wait for their connections to end
        tasks += [
            asyncio.ensure_future(conn.stream_protocol.wait_lost())
            for conn in self._conns
            if conn.task is None and conn.stream_protocol is not None
        ]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for conn in list(self._conns):
                if conn.task is None:
                    conn.transport.abort()  # a kept stream still sending after the grace
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    def _accept(self, link: _Link) -> Coroutine[Any, Any, None]:
        # a plain function returning the coroutine the link runs as the connection's
        # task: one frame less per connection than an ``async def`` that awaits it
        reader = writer = link
        peer_addr = link.transport.get_extra_info("peername")
        ip, port = (str(peer_addr[0]), peer_addr[1]) if peer_addr else ("?", 0)
        peer = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        if self._closing:
            # accepted just before the listener closed: reset, as the kernel resets those
            # still in the backlog (a client retries that on another node; a 503 it would not)
            writer.transport.abort()
            return _nothing()
        trusted = self.limits.trusted_proxies
        if trusted and ip in trusted:
            if self.limits.proxy_protocol:
                return self._proxied(reader, writer, ip, peer)
            return self._admit(reader, writer, ip, peer, per_ip=False)
        return self._admit(reader, writer, ip, peer)

    async def _proxied(self, reader: _Link, writer: _Link, ip: str, peer: str) -> None:
        """A trusted proxy's connection: its PROXY v2 header names the client, whose
        address then counts for the per-address limit, ``/status`` and the logs."""
        try:
            async with asyncio.timeout(self.limits.idle_unauthenticated):
                head = await reader.readexactly(16)
                body = await reader.readexactly(proxy_v2_length(head))
            source = parse_proxy_v2(head, body)
        except ProxyHeaderError as exc:
            if _log_limit.allow("bad request"):
                log.warning("%s: bad PROXY protocol header: %s", peer, exc)
            await self._refuse(
                reader, writer, ip, ApiError(ErrorCode.INVALID, f"bad PROXY header: {exc}")
            )
            return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.transport.abort()
            return
        if source is not None:
            ip = source.ip
            peer = f"[{ip}]:{source.port}" if ":" in ip else f"{ip}:{source.port}"
        if self._closing:
            writer.transport.abort()
            return
        await self._admit(reader, writer, ip, peer)

    def _admit(
        self,
        reader: _Link,
        writer: _Link,
        ip: str,
        peer: str,
        *,
        per_ip: bool = True,
    ) -> Coroutine[Any, Any, None]:
        count = self._per_ip.get(ip, 0)
        live = len(self._conns)
        if (per_ip and count >= self.limits.max_connections_per_ip) or (
            live >= self.limits.max_connections
        ):
            return self._refuse(reader, writer, ip)
        self._per_ip[ip] = count + 1
        conn = _Connection(self, reader, writer, peer, ip)
        conn.reserved = live >= self.limits.max_connections - self.limits.reserved_connections
        self._conns.add(conn)
        return conn.run()

    def _forget(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        left = self._per_ip[conn.ip] - 1
        if left:
            self._per_ip[conn.ip] = left
        else:
            del self._per_ip[conn.ip]

    async def _refuse(
        self,
        reader: _Link,
        writer: _Link,
        ip: str,
        why: ApiError | None = None,
    ) -> None:
        if why is not None:
            exc = why
        elif len(self._conns) >= self.limits.max_connections:
            if _log_limit.allow("refused connection"):
                log.warning("refusing connection from %s: %d open in all", ip, len(self._conns))
            exc = _AT_CAPACITY
        else:
            if _log_limit.allow("refused connection"):
                log.warning(
                    "refusing connection from %s: %d already open", ip, self._per_ip.get(ip, 0)
                )
            exc = ApiError(ErrorCode.RATE_LIMITED, "too many connections from your address")
        try:
            writer.write(raw_response(exc.status, error_headers(exc), error_body(exc)))
            # Closing with the client's request unread would send a reset that can
            # overtake our answer: half-close, then swallow a little of what it sends.
            if writer.can_write_eof():
                writer.write_eof()
            budget = self.limits.drain_max
            async with asyncio.timeout(min(1.0, self.limits.linger_seconds)):
                while budget > 0 and (data := await reader.read(self.limits.read_size)):
                    budget -= len(data)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            await _close_writer(writer)


class _Link(asyncio.Protocol):
    """The connection's protocol: buffers received bytes for its task and does flow
    control both ways (what ``StreamReader``/``StreamWriter`` did, without their layers).

    ``read`` hands out the received ``bytes`` themselves when they fit (no copy); reading
    pauses while more than twice ``limit`` bytes wait unread. An exception set with
    :meth:`set_exception` (a timer's, or the lost connection's) is raised by every
    later read and drain.
    """

    __slots__ = ("_buf", "_closed", "_drain_waiter", "_eof", "_exception", "_limit", "_loop",
                 "_lost", "_paused_reading", "_paused_writing", "_server", "_task",
                 "_waiter", "transport")  # fmt: skip

    def __init__(self, server: HttpServer, limit: int) -> None:
        self._server = server
        self._limit = limit
        self._buf: bytes | bytearray = b""
        self._eof = False
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._paused_writing = False
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)

    # -- protocol callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # asked once per connection: on Python 3.11 each ask costs a getpid() system call,
        # and a read that waits needs the loop for its future
        loop = self._loop = asyncio.get_running_loop()
        task = loop.create_task(self._server._accept(self))
        self._task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf:
            self._buf = buf = data
        elif type(buf) is bytes:
            self._buf = buf = bytearray(buf)
            buf += data
        else:
            buf += data
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(buf) > 2 * self._limit and not self._paused_reading:
            try:
                self.transport.pause_reading()
            except NotImplementedError:  # pragma: no cover - TCP transports can pause
                return
            self._paused_reading = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake(None)
        return True  # keep our side open: the answer may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
            self._wake(None)
        else:
            self.set_exception(exc)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("Connection lost"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reader's side ---------------------------------------------------------------

    def _wake(self, exc: BaseException | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def set_exception(self, exc: BaseException) -> None:
        """Every later read (and drain) raises ``exc``; a waiting read raises it now."""
        self._exception = exc
        self._wake(exc)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` received bytes; ``b""`` at EOF."""
        if self._exception is not None:
            raise self._exception
        if not self._buf and not self._eof:
            if self._paused_reading:  # pragma: no cover - paused only with a full buffer
                self._paused_reading = False
                self.transport.resume_reading()
            loop = self._loop or asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
            if self._exception is not None:
                raise self._exception
        buf = self._buf
        if len(buf) <= n:
            self._buf = b""
            data = buf if type(buf) is bytes else bytes(buf)
        else:
            data = bytes(buf[:n])
            if isinstance(buf, bytearray):
                del buf[:n]
            else:
                self._buf = buf[n:]
        if self._paused_reading and len(self._buf) <= self._limit:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; IncompleteReadError if EOF comes first."""
        pieces: list[bytes] = []
        got = 0
        while got < n:
            data = await self.read(n - got)
            if not data:
                raise asyncio.IncompleteReadError(b"".join(pieces), n)
            pieces.append(data)
            got += len(data)
        return b"".join(pieces)

    # -- the writer's side ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        if self._exception is not None:
            raise self._exception
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._paused_writing:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    def close(self) -> None:
        self.transport.close()

    async def wait_closed(self) -> None:
        """Return once the connection is gone."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await self._closed


async def _nothing() -> None:
    pass


async def _close_writer(writer: _Link) -> None:
    """Close gracefully if the peer lets us within a second, else abort."""
    try:
        writer.close()
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (Exception, asyncio.CancelledError):
        pass
    finally:
        writer.transport.abort()


class _Connection:
    """One client connection and its request loop."""

    __slots__ = (
        "_body_broken",
        "_body_deadline",
        "_body_done",
        "_body_expected",
        "_body_lead",
        "_body_reads",
        "_body_received",
        "_body_remaining",
        "_body_seen",
        "_body_waiting",
        "_body_watch",
        "_head_since",
        "_head_waiting",
        "_head_watch",
        "_loop",
        "_parser",
        "_reader",
        "_server",
        "_writer",
        "authenticated",
        "ip",
        "peer",
        "request_peer",
        "reserved",
        "state",
        "stream_protocol",
        "task",
        "transport",
    )

    def __init__(
        self,
        server: HttpServer,
        reader: _Link,
        writer: _Link,
        peer: str,
        ip: str,
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self.transport = writer.transport
        self.peer = peer
        self.ip = ip
        self.request_peer = peer
        """The client of the current request (``X-Forwarded-For`` from a trusted proxy)."""
        self._parser = ServerParser(server.limits.max_request_head)
        self.authenticated = False
        self.state = "idle"
        """Where the connection is in :data:`~messenger_server.states.CONNECTION`."""
        self.task: asyncio.Task[Any] | None = None  # set when run() starts
        self.stream_protocol: _StreamProtocol | None = None
        self._body_done = True
        self._body_broken = False
        # a Content-Length body is read straight from the socket (see ServerParser.take_body)
        self._body_lead = b""
        self._body_remaining: int | None = None
        self._body_deadline = 0.0  # loop time the body's total deadline started
        self._body_received = 0
        self._body_expected = 0  # its Content-Length (0 for a chunked body)
        # the body's one timer (see _body_read): reads done, reads seen at its last firing
        self._body_watch: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()  # asked once: each ask costs a getpid()
        # the connection's idle timer (see _read_head)
        self._head_watch: asyncio.TimerHandle | None = None
        self._head_since = 0.0
        self._head_waiting = False
        self._body_reads = 0
        self._body_seen = 0
        self._body_waiting = False
        self.reserved = False
        """Got one of the reserved connections: only /healthz or a token is served."""

    def shutdown(self) -> None:
        """Server closing: idle connections go now, event streams end, busy ones finish
        (a connection reading a request head is busy: its request has begun)."""
        if self.task is None:
            if self.stream_protocol is not None:
                self.stream_protocol.close()  # a kept event stream: after its queued bytes
            return
        if self.state == "streaming" or (self.state == "idle" and not self._parser.head_started):
            self.task.cancel()

    def _move(self, to: str) -> None:
        """Change state as :data:`~messenger_server.states.CONNECTION` allows (else raise)."""
        if to in CONNECTION[self.state]:
            self.state = to  # the table's own check, without a call per request
        else:
            self.state = require(CONNECTION, self.state, to)

    def _authenticated(self) -> None:
        self.authenticated = True

    async def run(self) -> None:
        """Serve requests until the peer leaves, a timeout hits or keep-alive ends."""
        self.task = asyncio.current_task()
        try:
            while not self._server._closing:
                try:
                    head = await self._read_head()
                except BadRequest as exc:
                    self._write_error_and_close(exc)
                    await self._linger(force=True)
                    return
                except TimeoutError:
                    if self._parser.head_started:
                        # part of a head came, too slowly: say so (408), then close
                        self._write_error_and_close(
                            ApiError(ErrorCode.TIMEOUT, "request head arrived too slowly")
                        )
                    else:
                        log.debug("%s idle, closing", self.peer)
                    return
                if head is None:
                    return
                self._move("handling")
                if not await self._exchange(head):
                    return
                self._move("idle")
                self._parser.start_next_cycle()
        except (ConnectionError, BadRequest, TimeoutError) as exc:
            log.debug("%s dropped: %r", self.peer, exc)
        except asyncio.CancelledError:
            pass  # server shutdown or loop teardown: nobody awaits this task
        except Exception:
            if _log_limit.allow("connection failure"):
                log.exception("connection %s failed", self.peer)
        finally:
            self._stop_body_watch()
            self._stop_head_watch()
            if not self._hand_over():
                self._move("closing")
                try:
                    await self._close()
                finally:
                    self._server._forget(self)

    def _hand_over(self) -> bool:
        """If the stream was kept open (and the peer is still there), let its protocol own
        the connection from now on and drop what only this task needed; True if so."""
        protocol = self.stream_protocol
        if protocol is None or protocol.stream is None or not protocol.stream.kept:
            return False
        if protocol.peer_gone:
            return False  # it is ending: close as any connection
        self.task = None
        # the HTTP link goes with the (finished) task: an idle stream keeps only its
        # transport, its protocol and the stream
        del self._reader, self._writer
        protocol.on_lost = self._kept_stream_lost
        return True

    def _kept_stream_lost(self) -> None:
        self._move("closing")
        self._server._forget(self)

    async def _close(self) -> None:
        """Close gracefully if the peer lets us within a second, else abort."""
        protocol = self.stream_protocol
        if protocol is None:
            await _close_writer(self._writer)
            return
        try:
            self.transport.close()
            async with asyncio.timeout(1.0):
                await protocol.wait_lost()
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            self.transport.abort()

    def _body_left(self) -> float:
        """Seconds left of the body's total deadline (``body_timeout`` + its size at
        ``body_min_rate``)."""
        limits = self._server.limits
        expected = self._body_expected
        budget = limits.body_timeout + max(expected, self._body_received) / limits.body_min_rate
        return self._body_deadline + budget - self._loop.time()

    async def _body_read(self, size: int) -> bytes:
        """The next bytes of the body from the socket, under the body's deadlines.

        One timer per body, not one per read: it fires every ``body_read_timeout`` (or at
        the total deadline, if sooner) and breaks the read that is waiting then, if that
        read got nothing since the last firing or the total deadline has passed.
        """
        if self._body_left() <= 0:
            self._body_broken = True
            raise ApiError(ErrorCode.TIMEOUT, "request body arrived too slowly")
        if self._body_watch is None:
            self._watch_body()
        self._body_waiting = True
        try:
            return await self._reader.read(size)
        except TimeoutError:  # set by _body_watch_fired
            self._body_broken = True
            raise ApiError(ErrorCode.TIMEOUT, "request body arrived too slowly") from None
        except ConnectionError:
            self._body_broken = True
            raise PeerGone("the client went away during the request body") from None
        finally:
            self._body_waiting = False
            self._body_reads += 1

    def _watch_body(self) -> None:
        delay = min(self._server.limits.body_read_timeout, max(0.0, self._body_left()))
        self._body_seen = self._body_reads
        self._body_watch = self._loop.call_later(delay, self._body_watch_fired)

    def _body_watch_fired(self) -> None:
        self._body_watch = None
        if self._body_done or self._body_broken:
            return
        stalled = self._body_waiting and self._body_reads == self._body_seen
        if stalled or self._body_left() <= 0:
            if self._body_waiting:
                self._body_broken = True
                self._reader.set_exception(TimeoutError("request body arrived too slowly"))
            return  # not reading now: the next read checks the total deadline itself
        self._watch_body()

    def _stop_body_watch(self) -> None:
        watch, self._body_watch = self._body_watch, None
        if watch is not None:
            watch.cancel()

    async def _receive(self) -> None:
        data = await self._body_read(self._server.limits.read_size)
        self._body_received += len(data)
        self._parser.receive_data(data)

    async def _read_head(self) -> RequestHead | None:
        """The next request head; TimeoutError if it does not arrive whole within the idle
        time (a slow sender gains nothing). One timer per connection watches that, not an
        ``asyncio.timeout`` per request (see :meth:`_head_watch_fired`)."""
        read_size = self._server.limits.read_size
        self._head_since = self._loop.time()
        while True:
            event = self._parser.next_event()
            if type(event) is RequestHead:
                return event
            if event is Signal.NEED_DATA:
                if self._head_watch is None:
                    self._watch_head(0.0)
                self._head_waiting = True
                try:
                    data = await self._reader.read(read_size)
                finally:
                    self._head_waiting = False
                self._parser.receive_data(data)
            elif event is Signal.CLOSED:
                return None
            else:  # pragma: no cover - nothing else comes between requests
                raise BadRequest(f"unexpected {event!r} before a request")

    def _head_idle(self) -> float:
        limits = self._server.limits
        return limits.keepalive_idle if self.authenticated else limits.idle_unauthenticated

    def _watch_head(self, at_least: float) -> None:
        delay = max(at_least, self._head_since + self._head_idle() - self._loop.time())
        self._head_watch = self._loop.call_later(delay, self._head_watch_fired)

    def _head_watch_fired(self) -> None:
        """The connection's idle timer: breaks a head read that has waited the idle time
        (_Link.set_exception -> TimeoutError in :meth:`_read_head`), else looks
        again when the head being read, or the next one, could be late."""
        self._head_watch = None
        if self.stream_protocol is not None:
            return  # an event stream now: no more heads
        if not self._head_waiting:
            # a request is being answered: the next head's wait starts later than now
            self._watch_head(self._head_idle())
        elif self._loop.time() >= self._head_since + self._head_idle():
            self._reader.set_exception(TimeoutError("request head arrived too slowly"))
        else:
            self._watch_head(0.0)

    def _stop_head_watch(self) -> None:
        watch, self._head_watch = self._head_watch, None
        if watch is not None:
            watch.cancel()

    async def next_body_chunk(self) -> bytes | None:
        """The next piece of the request body, or None at its end (used by :class:`Body`)."""
        if self._body_done:
            return None
        parser = self._parser
        if parser.they_are_waiting_for_100_continue:
            self.transport.write(parser.continue_100())
        remaining = self._body_remaining
        if remaining is not None:
            return await self._next_direct_chunk(remaining)
        while True:
            event = parser.next_event()
            if type(event) is bytes:
                if event:
                    return event
            elif event is Signal.NEED_DATA:
                await self._receive()
            elif event is Signal.END_OF_BODY:
                self._body_done = True
                self._stop_body_watch()
                return None
            else:
                raise BadRequest("request body ended early")

    async def _next_direct_chunk(self, remaining: int) -> bytes | None:
        lead = self._body_lead
        if lead:
            self._body_lead = b""
            self._body_received += len(lead)
            self._body_remaining = remaining - len(lead)
            return lead
        if remaining <= 0:
            self._body_done = True
            self._stop_body_watch()
            return None
        # never more than the body: what follows belongs to the next request
        data = await self._body_read(min(remaining, self._server.limits.body_read_size))
        if not data:
            self._body_broken = True
            raise BadRequest("request body ended early")
        self._body_received += len(data)
        self._body_remaining = remaining - len(data)
        return data

    def _request(self, head: RequestHead, whole: bytes | None = None) -> Request:
        try:
            target = head.target.decode("ascii")
        except UnicodeDecodeError:
            raise ApiError(ErrorCode.INVALID, "request target must be ASCII") from None
        path, sep, query_string = target.partition("?")
        query: dict[str, str] = {}
        if sep and query_string:
            try:
                query = dict(
                    parse_qsl(
                        query_string,
                        keep_blank_values=True,
                        errors="strict",
                        max_num_fields=_MAX_QUERY_FIELDS,
                    )
                )
            except UnicodeDecodeError as exc:
                raise ApiError(
                    ErrorCode.INVALID, f"query string is not UTF-8 (at byte {exc.start})"
                ) from None
            except ValueError:  # the query is never echoed: it may hold a token
                raise ApiError(ErrorCode.INVALID, "malformed query string") from None
        headers = Headers(head.headers)
        peer = self.peer
        trusted = self._server._trusted
        if trusted is not None:
            chain = headers.get_all("x-forwarded-for")
            forwarded = trusted.client_ip(self.ip, ", ".join(chain) if chain else None)
            if forwarded is not None:
                peer = f"[{forwarded}]:0" if ":" in forwarded else f"{forwarded}:0"
        self.request_peer = peer
        return Request(
            method=head.method,
            path=path,
            query=query,
            headers=headers,
            peer=peer,
            body=Body(self, head.content_length, whole=whole),
            on_authenticated=self._authenticated,
        )

    async def _exchange(self, head: RequestHead) -> bool:
        """Answer one request; True if the connection may serve another."""
        self._body_done = False
        self._body_remaining = None
        self._body_received = 0
        self._body_expected = head.content_length or 0
        self._body_deadline = self._loop.time()
        if self._body_watch is not None:
            self._stop_body_watch()
        whole: bytes | None = None
        if head.content_length:
            self._body_lead = self._parser.take_body()
            self._body_remaining = head.content_length
            if len(self._body_lead) == head.content_length:
                # all of it came with the head (a JSON call, usually): the handler gets
                # it whole, with no reads (left unread, it is drained as any other)
                whole = self._body_lead
        elif head.content_length == 0 and self._parser.empty_body_done():
            self._body_done = True  # a GET: nothing to read or drain after the answer
        result: Response | StreamResponse
        request: Request | None = None
        try:
            request = self._request(head, whole)
            if self.reserved and not self.authenticated:
                self._check_reserved(request)
            result = await self._server.handler(request)
        except ApiError as exc:
            if isinstance(exc, ProtocolViolation):
                self._write_error_and_close(exc)
                await self._linger(force=True)
                return False
            result = _error_response(exc)
        except PeerGone:
            self._peer_left(head)
            return False
        except Exception:
            if self.transport.is_closing():
                self._peer_left(head)  # whatever broke, nobody is left to answer
                return False
            if _log_limit.allow("request failure"):
                log.exception("%s %s failed", head.method, redacted_target(head.target))
            result = _error_response(ApiError(ErrorCode.INTERNAL, "internal server error"))
        if whole is not None and request is not None and request.body.taken:
            self._body_lead = b""
            self._body_remaining = 0
            self._body_received = len(whole)
            self._body_done = True
        if self.transport.is_closing():
            # the client left while we worked: nobody reads an answer now
            self._peer_left(head)
            if isinstance(result, StreamResponse):
                _abandon(result)
            return False
        head_only = head.method == "HEAD"
        close = self._server._closing or (
            not self._body_done
            and self._must_close_after(head, request.body if request is not None else None)
        )
        if self.reserved and not self.authenticated:
            close = True  # a reserved slot is not kept for anyone without a token
        if type(result) is Response:
            try:
                self._send_response(result, head_only, close)
            except (ValueError, UnicodeEncodeError):
                log.exception("%s %s: unsendable response", head.method, request and request.path)
                # nothing was written: the head failed to build
                internal = ApiError(ErrorCode.INTERNAL, "internal server error")
                self.transport.write(
                    raw_response(500, error_headers(internal), error_body(internal))
                )
                return False
        else:
            assert isinstance(result, StreamResponse)
            if result.content_length is None:
                # an event stream may live for hours: keep nothing of its request alive
                del request, head
                await self._stream_until_closed(result, head_only)
                return False
            if not await self._stream_with_length(result, head_only, close):
                return False
        if self.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            await self._drain()
        if close:
            await self._linger()
            return False
        if not self._body_done:
            self._move("draining")
            if not await self._discard_body():
                await self._linger()
                return False
        return self._parser.keep_alive and not self._server._closing

    def _check_reserved(self, request: Request) -> None:
        """On a reserved connection only the reserved paths and token bearers get in."""
        limits = self._server.limits
        if request.path in limits.reserved_paths or "authorization" in request.headers:
            return
        if _log_limit.allow("refused connection"):
            log.warning("%s: at the connection limit, refused %s", self.peer, request.path)
        raise _AT_CAPACITY

    def _peer_left(self, head: RequestHead) -> None:
        if _log_limit.allow("client gone"):
            log.info(
                "%s went away during %s %s", self.peer, head.method, redacted_target(head.target)
            )

    def _must_close_after(self, head: RequestHead, body: Body | None) -> bool:
        if self._server._closing:
            return True
        if self._body_done:
            return False
        if self._body_broken:
            return True
        if head.expect_continue and self._parser.they_are_waiting_for_100_continue:
            # we answered without asking for the body: the client may never send it
            return True
        if head.content_length is not None:
            # whatever was not read yet is still on its way
            received = body.received if body is not None else 0
            return head.content_length - received > self._server.limits.drain_max
        return False

    def _headers(
        self, status_headers: list[tuple[str, str]], content_type: str, close: bool
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"date", http_date()),
            (b"server", _SERVER),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in status_headers]
        if close:
            headers.append((b"connection", b"close"))
        return headers

    def _send_response(self, response: Response, head_only: bool, close: bool) -> None:
        # the head is built as bytes from pre-built pieces: no header objects per request
        body = response.body
        status = response.status
        content_type = _CONTENT_TYPES.get(response.content_type)
        if content_type is None:
            content_type = _content_type_line(response.content_type)
        lines = [content_type, b"date: ", http_date(), b"\r\nserver: messenger\r\n"]
        if response.headers:
            extra = b"".join(
                [f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers]
            )
            for name, _ in response.headers:
                if name not in _GOOD_NAMES:
                    _check_name(name)
            check_head_lines(extra, len(response.headers))
            lines.append(extra)
        if close:
            lines.append(b"connection: close\r\n")
        length: int | None = None
        if status not in _BODILESS:
            length = len(body)
            lines.append(b"content-length: %d\r\n" % length)
        parser = self._parser
        # every line is checked: the content type when built, the app's headers above
        data = parser.response_head(status, b"".join(lines), 0, length, close, checked=True)
        if head_only or length is None or not body:
            parser.end()
            self.transport.write(data)
        else:
            parser.body(body)
            parser.end()
            if len(body) <= _JOIN_MAX:
                self.transport.write(data + body)
            else:
                self.transport.writelines([data, body])

    async def _stream_with_length(
        self, result: StreamResponse, head_only: bool, close: bool
    ) -> bool:
        assert result.content_length is not None
        headers = self._headers(result.headers, result.content_type, close)
        headers.append((b"content-length", b"%d" % result.content_length))
        parser = self._parser
        self.transport.write(parser.response(result.status, headers))
        if head_only:
            _abandon(result)
        else:
            stream = ResponseStream(self.transport, self.peer, self._drain, parser.body)
            try:
                await result.producer(stream)
            finally:
                stream.mark_closed()
        try:
            self.transport.write(parser.end())
        except Exception:
            log.warning("%s: stream producer wrote less than its Content-Length", self.peer)
            return False
        return True

    async def _stream_until_closed(self, result: StreamResponse, head_only: bool) -> None:
        # built in a helper: locals of this frame live as long as the stream does
        try:
            self.transport.write(_stream_head(result))
            if head_only:
                _abandon(result)
                return
            # The body ends with the connection, so the HTTP reader is done with it. A
            # small protocol takes the transport over: it notices the peer leaving without
            # a reader task per stream (10,000 idle streams must stay cheap) and does flow
            # control.
            task = asyncio.current_task()
            assert task is not None
            protocol = _StreamProtocol(self.transport, task, self._server.limits.drain_max)
            stream = ResponseStream(
                self.transport, self.request_peer, self._drain_stream, closer=protocol.close
            )
            protocol.stream = stream
            self.stream_protocol = protocol
            self._parser = _SPENT_PARSER  # parser state an idle stream does not need
            self.transport.set_protocol(protocol)
            if not self.transport.is_reading():
                self.transport.resume_reading()
            self._move("streaming")
        except BaseException:
            _abandon(result)
            raise
        try:
            await result.producer(stream)
            if protocol.peer_gone and task.cancelling():
                task.uncancel()  # the producer swallowed our cancellation: clear it
        except asyncio.CancelledError:
            if not protocol.peer_gone:
                raise
            task.uncancel()  # our own cancellation: the peer left, finish normally
        except ConnectionError:
            pass
        except Exception:
            log.exception("event stream producer for %s failed", self.peer)
        finally:
            protocol.producer_done()
            if not stream.kept:
                stream.mark_closed()

    async def _drain_stream(self) -> None:
        protocol = self.stream_protocol
        assert protocol is not None
        try:
            async with asyncio.timeout(self._server.limits.write_timeout):
                await protocol.drain()
        except TimeoutError:
            self.transport.abort()
            raise ConnectionResetError("peer stopped reading") from None

    async def _drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        try:
            async with asyncio.timeout(self._server.limits.write_timeout):
                await self._writer.drain()
        except TimeoutError:
            self.transport.abort()
            raise ConnectionResetError("peer stopped reading") from None

    async def _discard_body(self) -> bool:
        """Read and drop what is left of the request body, within ``drain_max`` bytes."""
        budget = self._server.limits.drain_max
        try:
            while (chunk := await self.next_body_chunk()) is not None:
                budget -= len(chunk)
                if budget < 0:
                    return False
        except (ApiError, TimeoutError):
            return False
        return True

    async def _linger(self, *, force: bool = False) -> None:
        """Half-close and swallow what the peer still sends, so it reads our answer, not RST.

        Without ``force`` only when part of the request body is still unread.
        """
        if (self._body_done and not force) or self.transport.is_closing():
            return
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
            async with asyncio.timeout(self._server.limits.linger_seconds):
                while await self._reader.read(self._server.limits.read_size):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass

    def _write_error_and_close(self, exc: ApiError) -> None:
        if self._parser.response_started or self.transport.is_closing():
            return
        if _log_limit.allow("bad request"):
            log.info("%s: %s", self.peer, exc.message)
        self.transport.write(raw_response(exc.status, error_headers(exc), error_body(exc)))


def _stream_head(result: StreamResponse) -> bytes:
    headers = [
        (b"content-type", result.content_type.encode("latin-1")),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in result.headers),
    ]
    return raw_response(result.status, headers, None)


def _error_response(exc: ApiError) -> Response:
    extra = [(k.decode(), v.decode()) for k, v in error_headers(exc) if k != b"content-type"]
    return Response(status=exc.status, body=error_body(exc), headers=extra)


_CLOSE_WAIT = 1.0
"""Seconds a closed event stream gets to send its queued bytes before it is aborted."""


class _StreamProtocol(asyncio.Protocol):
    """Owns the transport of a close-delimited stream once its head is sent.

    Bytes the peer sends are dropped (up to a budget, then the connection is cut);
    EOF or a lost connection marks the stream closed and cancels its producer. A
    kept stream (:meth:`ResponseStream.keep_open`) has no task left: the lost
    connection calls ``on_lost`` instead, which ends it in the server.
    """

    __slots__ = ("_budget", "_drain_waiter", "_is_lost", "_lost", "_paused", "_task",
                 "_transport", "on_lost", "peer_gone", "stream")  # fmt: skip

    def __init__(self, transport: asyncio.Transport, task: asyncio.Task[Any], budget: int) -> None:
        self._transport = transport
        self._task: asyncio.Task[Any] | None = task
        self._budget = budget
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._is_lost = False
        self.peer_gone = False
        self.stream: ResponseStream | None = None
        self.on_lost: Callable[[], None] | None = None

    def data_received(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget < 0:
            self._transport.abort()

    def eof_received(self) -> bool:
        self._gone()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._is_lost = True
        self._paused = False
        self._wake(exc or ConnectionResetError("connection lost"))
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._gone()
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake(None)

    def _wake(self, exc: Exception | None) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _gone(self) -> None:
        if self.peer_gone:
            return
        self.peer_gone = True
        if self.stream is not None:
            self.stream.mark_closed()
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """Close after the queued bytes are sent; abort if that takes over a second (a
        peer that stopped reading does not hold the connection)."""
        if self._is_lost:
            return
        self._transport.close()
        asyncio.get_running_loop().call_later(_CLOSE_WAIT, self._transport.abort)

    def producer_done(self) -> None:
        """The producer returned: the peer leaving no longer cancels anything."""
        self._task = None

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        if self._is_lost:
            raise ConnectionResetError("connection lost")
        if not self._paused:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    async def wait_lost(self) -> None:
        """Return once the connection is gone."""
        if self._is_lost:
            return
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await self._lost

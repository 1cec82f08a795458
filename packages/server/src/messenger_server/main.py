"""The serve loop: build the app, listen, run until SIGINT/SIGTERM, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol

from messenger_protocol import limits

from .clock import Clock, SystemClock
from .config import Settings
from .http import HttpLimits, HttpServer, Request, Response, StreamResponse, TrustedProxies
from .hub import BUSY_FLUSH_INTERVAL, Hub, LocalHub

__all__ = ["CLOSE_TIMEOUT", "GIL_SWITCH_INTERVAL", "AppLike", "http_limits", "run", "serve"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0
"""Seconds the services get to stop after the last request (store commit and close)."""
GIL_SWITCH_INTERVAL = 0.0005
"""Longest the event loop waits for the interpreter lock while a worker thread runs
Python (an upload's type sniffing, milliseconds of it): Python's default of 5 ms let one
such thread hold every request and event delivery that long (issue 11)."""


class AppLike(Protocol):
    """What the serve loop needs of ``messenger_server.app.App``."""

    http_server: HttpServer | None

    async def handle(self, request: Request) -> Response | StreamResponse: ...
    async def start(self) -> None: ...
    def drain(self) -> None: ...
    async def close(self) -> None: ...


AppFactory = Callable[[Settings, Clock, Hub], AppLike]


def _default_app(settings: Settings, clock: Clock, hub: Hub) -> AppLike:
    from .app import App  # the services load with the app, not with the serve loop

    return App(settings, clock, hub)


FD_HEADROOM = 128
"""Open files kept free of connections: database, WAL, logs, files being up/downloaded."""


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to fit the open-file limit (raised to its hard limit first).

    Past the limit ``accept()`` fails and new clients are reset with no answer; under it
    they get a 503 and the reserved connections stay usable.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    cap = max(2, soft - FD_HEADROOM)
    log.warning("open-file limit is %d: at most %d connections (not %d)", soft, cap, wanted)
    return cap


def http_limits(settings: Settings) -> HttpLimits:
    """Transport limits from the settings."""
    cap = connection_cap(settings.max_connections)
    return HttpLimits(
        max_request_head=settings.max_request_head,
        idle_unauthenticated=settings.idle_unauthenticated,
        keepalive_idle=settings.keepalive_idle,
        max_connections_per_ip=settings.max_connections_per_ip,
        max_connections=cap,
        reserved_connections=min(settings.reserved_connections, cap - 1),
        body_timeout=settings.body_timeout,
        body_min_rate=settings.body_min_rate,
        trusted_proxies=TrustedProxies(settings.trusted_proxies),
        proxy_protocol=settings.proxy_protocol,
    )


async def serve(
    settings: Settings,
    clock: Clock | None = None,
    *,
    app_factory: AppFactory | None = None,
    stop: asyncio.Event | None = None,
    started: Callable[[HttpServer], Awaitable[None] | None] | None = None,
) -> None:
    """Run the server until ``stop`` is set or SIGINT/SIGTERM arrives."""
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    hub = LocalHub(settings.event_queue_max_bytes, flush_interval=BUSY_FLUSH_INTERVAL)
    app = (app_factory or _default_app)(settings, clock, hub)
    server = HttpServer(app.handle, http_limits(settings))
    app.http_server = server
    await app.start()
    try:
        await server.start(settings.host, settings.port)
        hub.start_heartbeats(limits.SSE_HEARTBEAT_SECONDS)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        log.info("listening on http://%s:%d", host, server.port)
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            # not available off the main thread or on Windows: then only `stop` ends us
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, _on_signal, sig, stop)
                handled.append(sig)
        try:
            if started is not None:
                result = started(server)
                if result is not None:
                    await result
            await stop.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            log.info("shutting down")
            # in this order: not ready and no longer accepting at once, event streams
            # closed after their queued frames, running requests finished (within the grace)
            hub.stop_heartbeats()
            server.stop_accepting()
            app.drain()
            await server.close(settings.shutdown_grace)
    finally:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await app.close()
        except TimeoutError:
            log.error("services did not stop within %.0f s; exiting anyway", CLOSE_TIMEOUT)
        log.info("stopped")


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()


def run(settings: Settings, clock: Clock | None = None) -> None:
    """Run :func:`serve` on uvloop when it is installed, else the default loop."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        log.debug("uvloop not installed; using the default event loop")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(settings, clock))

"""Helpers shared by the benchmarks: a server process, raw HTTP, result files."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import url_with
from tests.support.server import ServerProcess, free_port

__all__ = [
    "ServerProcess",
    "SseCounter",
    "bench_store",
    "compare",
    "free_port",
    "http_request",
    "percentile",
    "read_response",
    "register",
    "report",
    "save",
    "token_of_fresh_server",
]


class SseCounter(asyncio.Protocol):
    """One raw event stream: writes its request, counts SSE frames (``id:`` lines).

    ``ready`` resolves when the response head has arrived. A ``sample`` stream hands
    every chunk, with its arrival time (CLOCK_MONOTONIC ns, shared by processes on one
    machine), to :meth:`record`, where a benchmark reads the send stamps it planted.
    """

    def __init__(self, request: bytes, sample: bool) -> None:
        self.request = request
        self.sample = sample
        self.frames = 0
        self.tail = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.ready.done() and b"\r\n\r\n" in data:
            self.ready.set_result(None)
        chunk = self.tail + data
        self.frames += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
        self.tail = chunk[-8:]
        if self.sample:
            self.record(data, time.monotonic_ns())

    def record(self, data: bytes, now_ns: int) -> None:
        """Read latency stamps out of a sampled chunk (the benchmark says how)."""


@contextlib.contextmanager
def bench_store(url: str) -> Iterator[str]:
    """A fresh schema ``bench_<uuid>`` in the PostgreSQL database ``url`` names (dropped after).

    With ``url`` empty (SQLite) this gives "" and does nothing.
    """
    if not url:
        yield ""
        return
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:12]
    dbname = urlsplit(url).path.lstrip("/") or "postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield url_with(url, dbname, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


async def http_request(
    host: str, port: int, method: str, path: str, body: bytes = b"", token: str = ""
) -> tuple[int, bytes]:
    """One request on a fresh connection; returns (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


async def register(host: str, port: int, login: str, password: str = "benchmark") -> str:
    """Register ``login`` on the server at ``host:port``; its bearer token."""
    body = json.dumps({"login": login, "password": password}).encode()
    status, data = await http_request(host, port, "POST", "/api/v1/auth/register", body)
    if status != 200:
        raise RuntimeError(f"register {login}: {status} {data[:200]!r}")
    token: str = json.loads(data)["token"]
    return token


async def token_of_fresh_server(srv: ServerProcess, login: str) -> str:
    """Start ``srv``, register ``login``, stop it again (its data dir is then filled
    straight in the database); the token stays valid for the next start."""
    srv.start()
    try:
        return await register("127.0.0.1", srv.port, login)
    finally:
        srv.stop()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One ``Content-Length`` response of a keep-alive connection: (head, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


def report(results: dict[str, Any], args: argparse.Namespace, width: int = 24) -> None:
    """Print ``results`` one per line; ``--save`` and ``--baseline`` as the options ask."""
    for key, value in results.items():
        if isinstance(value, float):
            print(f"  {key:{width}} {value:12.3f}")
        else:
            print(f"  {key:{width}} {value}")
    if args.save:
        save(args.save, results)
    if args.baseline:
        print("against baseline:")
        compare(results, args.baseline)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, 0 when empty."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]


def save(path: Path, results: dict[str, Any]) -> None:
    """Write results as JSON."""
    path.write_text(json.dumps(results, indent=2, sort_keys=True))


def compare(results: dict[str, Any], baseline_path: Path) -> None:
    """Print each number next to the baseline's and their ratio."""
    base = json.loads(baseline_path.read_text())
    for key, value in sorted(results.items()):
        if isinstance(value, int | float) and isinstance(base.get(key), int | float) and base[key]:
            print(f"  {key:32} {value:14.3f}  baseline {base[key]:14.3f}  x{value / base[key]:.2f}")

"""Helpers shared by the benchmarks: a server process, raw HTTP, result files."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.postgres import url_with
from tests.support.server import ServerProcess, free_port

__all__ = [
    "CONTENT_LENGTH",
    "Profile",
    "ServerProcess",
    "SseCounter",
    "answer_of",
    "bench_store",
    "compare",
    "cpu_seconds",
    "free_port",
    "http_request",
    "percentile",
    "print_profile",
    "profile",
    "read_profile",
    "read_response",
    "register",
    "report",
    "save",
    "serve_reference",
    "start_reference",
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


def profile(pid: int, out: Path, seconds: float | None) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (native frames too) into a collapsed-stack file.

    With ``seconds`` None it samples until sent SIGINT (then writes the file)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    duration = [] if seconds is None else ["-d", str(int(seconds))]
    cmd = [exe, "record", "--native", *duration, "-p", str(pid),
           "-o", str(out), "--format", "raw"]  # fmt: skip
    with out.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=log)


WAITING = re.compile(
    r"^(PyThread_acquire_lock_timed|pthread_cond_(timed)?wait|epoll_p?wait|sem_(timed)?wait) "
)
"""Frames near the leaf of a thread that waits (py-spy --native counts them as samples)."""
PY_FRAME = re.compile(r"^(.*) \((?:.*/)?([^/]+\.py):\d+\)$")


@dataclass
class Profile:
    """Shares of samples (0-1) from one py-spy raw file, busiest first."""

    samples: int
    idle: int
    own: list[tuple[str, float]]
    python: list[tuple[str, float]]
    files: list[tuple[str, float]]


def read_profile(raw: Path, n: int = 12) -> Profile:
    """Own frames; Python functions inclusive, without each thread's skeleton (the frames
    in 95% of the samples of stacks with the same root: the loop, the thread's bootstrap);
    own samples by innermost Python file (so C time in sqlite3 or writev counts for the
    Python code that called it)."""
    stacks: list[tuple[list[str], int]] = []
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, text = line.rpartition(" ")
        if stack and text.isdigit():
            if any(WAITING.match(f) for f in stack.split(";")[-3:]):
                idle += int(text)
                continue
            frames = [re.sub(r" \((?:[^()]*/)?([^/()]+)\)$", r" (\1)", f) for f in stack.split(";")]
            stacks.append((frames, int(text)))
    samples = sum(count for _, count in stacks)
    per_root: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    root_samples: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        root_samples[frames[0]] += count
        per_root[frames[0]].update(dict.fromkeys(set(frames), count))
    skeleton = {
        (root, frame)
        for root, counts in per_root.items()
        for frame, k in counts.items()
        if k >= 0.95 * root_samples[root]
    }
    own: collections.Counter[str] = collections.Counter()
    python: collections.Counter[str] = collections.Counter()
    files: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        seen: set[str] = set()
        innermost = "(native only)"
        for frame in frames:
            match = PY_FRAME.match(frame)
            if match is None:
                continue
            innermost = match.group(2)
            name = f"{match.group(1)} ({match.group(2)})"
            if name not in seen and (frames[0], frame) not in skeleton:
                seen.add(name)
                python[name] += count
        files[innermost] += count

    def share(counts: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, k / max(1, samples)) for frame, k in counts.most_common(n)]

    return Profile(samples, idle, share(own), share(python), share(files))


def print_profile(workload: str, out: Path) -> None:
    """Print the top frames of the py-spy raw file ``out`` (see :func:`read_profile`)."""
    if not out.exists():
        print(f"profile {workload}: py-spy wrote nothing: {out.with_suffix('.log')}")
        return
    prof = read_profile(out)
    print(f"profile {workload} ({out}): {prof.samples} samples, {prof.idle} waiting left out")
    for title, rows in (
        ("own samples by frame", prof.own),
        (
            "Python functions, inclusive (without the loop and thread skeletons)",
            prof.python,
        ),
        ("own samples by innermost Python file", prof.files),
    ):
        print(f"  {title}:")
        for frame, part in rows:
            print(f"    {part * 100:5.1f}%  {frame}")


def cpu_seconds(proc: psutil.Process) -> float:
    """A process's CPU time so far, user + system, all threads (from the OS)."""
    times = proc.cpu_times()
    return float(times.user + times.system)


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


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


async def answer_of(port: int, request: bytes) -> bytes:
    """The whole response (head and body) the server gives to one request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = CONTENT_LENGTH.search(head)
    if not head.startswith(b"HTTP/1.1 200") or match is None:
        raise RuntimeError(f"unexpected answer: {head[:300]!r}")
    body = await reader.readexactly(int(match.group(1)))
    writer.close()
    return head + body


def start_reference(
    answers: dict[str, bytes], directory: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """The bare server as its own process, answering each path with the recorded bytes
    (a path it was not given gets the first answer): the reference a benchmark reads its
    figures against, run in the same window."""
    spec = directory / "reference.json"
    spec.write_text(json.dumps({path: a.decode("latin-1") for path, a in answers.items()}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-reference", str(port), str(spec)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("reference server did not start")


def serve_reference(port: int, spec: Path) -> None:
    """A bare HTTP/1.1 server: httptools parses, pre-built bytes answer (uvloop if present)."""
    import httptools

    answers = {p.encode(): a.encode("latin-1") for p, a in json.loads(spec.read_text()).items()}
    first = next(iter(answers.values()))

    class Reference(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_message_complete(self) -> None:
            assert self.transport is not None
            self.transport.write(answers.get(self.url, first))

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Reference, "127.0.0.1", port)
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--serve-reference":
    serve_reference(int(sys.argv[2]), Path(sys.argv[3]))

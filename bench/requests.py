"""Per-request benchmark: server CPU-µs per request, beside a bare asyncio HTTP server.

    uv run python bench/requests.py                      # ~20 s, one run of each workload
    uv run python bench/requests.py --runs 3             # median and spread of 3 runs
    uv run python bench/requests.py --save bench/results/requests.local.json
    uv run python bench/requests.py --baseline bench/results/requests.local.json
    uv run python bench/requests.py --profile prof/      # then py-spy under each workload
    uv run python bench/requests.py --show-profile prof/ # print those profiles again
    uv run python bench/requests.py --server-args "--message-ttl 0"

Workloads (issue 11's per-request table), each on 8 keep-alive connections, closed loop:

- ``healthz``: ``GET /healthz``;
- ``chats``: authenticated ``GET /api/v1/chats`` (8 users, one per connection);
- ``send``: a general-chat ``POST /api/v1/chats/1/messages`` with no event stream open,
  default durability and ``message_ttl`` (the rate limit is lifted);
- ``unread``: ``GET /api/v1/chats`` again after ``send``, so each user has the messages
  the others sent unread (thousands: the unread counts look at up to 10,000 per chat).

``--store postgresql://…`` runs the server on PostgreSQL (a throwaway schema per run) and
adds the CPU of the PostgreSQL backends serving the server's connections per request.

The figure is the server's own CPU time (user + system of its process, all threads, from
the OS) divided by the requests answered in the window, so it does not depend on how fast
the load generator is. The load generator is this process (raw asyncio protocols, no HTTP
client library); the server and the reference each run as their own process. The
reference is a bare asyncio server with the C parser httptools that answers every request
with the bytes the messenger server answered it with, so each figure is also a ratio.

``--profile DIR`` runs each messenger workload again under ``py-spy record --native
--format raw`` (the sampling costs the server CPU, so those runs are not measured) and
prints the top frames by own and by total samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import psutil
from _common import (
    CONTENT_LENGTH,
    ServerProcess,
    answer_of,
    bench_store,
    compare,
    cpu_seconds,
    http_request,
    print_profile,
    profile,
    save,
    start_reference,
)

CONNECTIONS = 8
WORKLOADS = ("healthz", "chats", "send", "unread")
SEND_BODY = json.dumps({"text": "bench message " + "x" * 86}).encode()


@dataclass
class Counter:
    """Responses seen by all connections of one workload; errors stop the run."""

    done: int = 0
    errors: list[bytes] = field(default_factory=list)
    running: bool = True


class Conn(asyncio.Protocol):
    """One keep-alive connection: a request, wait for its whole response, the next one."""

    def __init__(self, request: bytes, counter: Counter) -> None:
        self.request = request
        self.counter = counter
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            match = CONTENT_LENGTH.search(buf, 0, end + 2)
            length = int(match.group(1)) if match else 0
            if len(buf) < end + 4 + length:
                break
            if not buf.startswith(b"HTTP/1.1 200"):
                self.counter.errors.append(buf[: end + 4 + length][:300])
                self.counter.running = False
            buf = buf[end + 4 + length :]
            self.counter.done += 1
            if self.counter.running and self.transport is not None:
                self.transport.write(self.request)
        self.buffer = buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def request_bytes(workload: str, token: str) -> bytes:
    """The request one connection of ``workload`` repeats."""
    auth = f"Authorization: Bearer {token}\r\n"
    if workload == "healthz":
        return b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
    if workload in ("chats", "unread"):
        return f"GET /api/v1/chats HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode()
    return (
        f"POST /api/v1/chats/1/messages HTTP/1.1\r\nHost: bench\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(SEND_BODY)}\r\n\r\n"
    ).encode() + SEND_BODY


async def drive(
    port: int,
    requests: list[bytes],
    pid: int,
    warmup: float,
    seconds: float,
    db_pids: Callable[[], list[int]] | None = None,
) -> dict[str, float]:
    """Run the closed loop, measure ``seconds`` after ``warmup``: CPU-µs/request, requests/s
    (and the CPU of the database backends serving the server, when ``db_pids`` finds them)."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    conns: list[Conn] = []
    for request in requests:
        conn = Conn(request, counter)
        await loop.create_connection(lambda conn=conn: conn, "127.0.0.1", port)  # type: ignore[misc]
        conns.append(conn)
    proc = psutil.Process(pid)
    me = psutil.Process()
    await asyncio.sleep(warmup)
    backends = [psutil.Process(p) for p in (db_pids() if db_pids else [])]
    db0 = sum(cpu_seconds(b) for b in backends)
    done0, cpu0, own0, t0 = counter.done, cpu_seconds(proc), cpu_seconds(me), time.perf_counter()
    await asyncio.sleep(seconds)
    done1, cpu1, own1, t1 = counter.done, cpu_seconds(proc), cpu_seconds(me), time.perf_counter()
    db1 = sum(cpu_seconds(b) for b in backends)
    counter.running = False
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    await asyncio.gather(*(c.closed for c in conns))
    if counter.errors:
        raise RuntimeError(f"{len(counter.errors)} failed requests, first: {counter.errors[0]!r}")
    answered = max(1, done1 - done0)
    return {
        "cpu_us": (cpu1 - cpu0) / answered * 1e6,
        "per_s": answered / (t1 - t0),
        "generator_cpu_us": (own1 - own0) / answered * 1e6,
        "db_cpu_us": (db1 - db0) / answered * 1e6,
    }


def postgres_backends(server_pid: int, url: str) -> Callable[[], list[int]]:
    """Finds the PostgreSQL backend processes of the server's own connections."""
    import psycopg

    pg_port = urlsplit(url).port or 5432

    def find() -> list[int]:
        ports = [
            c.laddr.port
            for c in psutil.Process(server_pid).net_connections(kind="tcp")
            if c.raddr and c.raddr.port == pg_port
        ]
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [ports]
            ).fetchall()
        return [int(r[0]) for r in rows]

    return find


async def register(port: int, login: str) -> str:
    body = json.dumps({"login": login, "password": "benchmark"}).encode()
    status, data = await http_request("127.0.0.1", port, "POST", "/api/v1/auth/register", body)
    if status != 200:
        raise RuntimeError(f"register {login}: {status} {data[:200]!r}")
    token: str = json.loads(data)["token"]
    return token


async def run_once(args: argparse.Namespace, tmp: Path, run: int) -> dict[str, float]:
    with bench_store(args.store) as store_url:
        return await _run_once(args, tmp, run, store_url)


async def _run_once(
    args: argparse.Namespace, tmp: Path, run: int, store_url: str
) -> dict[str, float]:
    store = ["--store", store_url] if store_url else []
    srv = ServerProcess(
        tmp / f"data{run}",
        args=["--rate-limit-messages", "1000000000", "--log-level", args.log_level,
              "--max-connections-per-ip", "1000", *store, *shlex.split(args.server_args)],
    )  # fmt: skip
    srv.start()
    ref: subprocess.Popen[bytes] | None = None
    try:
        assert srv.proc is not None
        tokens = [await register(srv.port, f"bench{i}") for i in range(CONNECTIONS)]
        per_workload = {w: [request_bytes(w, t) for t in tokens] for w in WORKLOADS}
        paths = {
            "healthz": "/healthz",
            "chats": "/api/v1/chats",
            "send": "/api/v1/chats/1/messages",
            "unread": "/api/v1/chats",
        }
        answers = {paths[w]: await answer_of(srv.port, per_workload[w][0]) for w in WORKLOADS}
        ref, ref_port = start_reference(answers, tmp)
        results: dict[str, float] = {}
        for workload in args.workloads:
            requests = per_workload[workload]
            db = postgres_backends(srv.proc.pid, store_url) if store_url else None
            ours = await drive(srv.port, requests, srv.proc.pid, args.warmup, args.seconds, db)
            bare = await drive(ref_port, requests, ref.pid, args.warmup, args.seconds)
            results[f"{workload}.cpu_us"] = ours["cpu_us"]
            results[f"{workload}.per_s"] = ours["per_s"]
            results[f"{workload}.generator_cpu_us"] = ours["generator_cpu_us"]
            results[f"{workload}.reference_cpu_us"] = bare["cpu_us"]
            results[f"{workload}.reference_per_s"] = bare["per_s"]
            results[f"{workload}.ratio"] = ours["cpu_us"] / max(1e-9, bare["cpu_us"])
            if store_url:
                results[f"{workload}.db_cpu_us"] = ours["db_cpu_us"]
        if args.profile is not None and run == 0:
            args.profile.mkdir(parents=True, exist_ok=True)
            for workload in args.workloads:
                out = args.profile / f"{workload}.txt"
                spy = profile(srv.proc.pid, out, args.profile_seconds)
                await drive(
                    srv.port, per_workload[workload], srv.proc.pid, 0.0, args.profile_seconds + 1
                )
                await asyncio.to_thread(spy.wait)
                print_profile(workload, out)
        return results
    finally:
        if ref is not None:
            ref.terminate()
            ref.wait()
        srv.stop()


def report(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Median of each figure over the runs; prints the table with spread."""
    results: dict[str, Any] = {}
    keys = runs[0].keys()
    for key in keys:
        values = [r[key] for r in runs]
        results[key] = statistics.median(values)
        if len(runs) > 1:
            results[f"{key}.min"], results[f"{key}.max"] = min(values), max(values)
    workloads = sorted({k.split(".")[0] for k in keys}, key=WORKLOADS.index)
    header = f"{'workload':10} {'CPU-µs/req':>11} {'req/s':>8} {'bare µs':>8} {'bare req/s':>10}"
    header += f" {'ratio':>6} {'gen µs':>7}"
    with_db = any(k.endswith(".db_cpu_us") for k in keys)
    header += f" {'db µs':>7}" if with_db else ""
    print(header + ("   spread (CPU-µs min-max)" if len(runs) > 1 else ""))
    for w in workloads:
        spread = ""
        if len(runs) > 1:
            spread = f"   {results[f'{w}.cpu_us.min']:.0f}-{results[f'{w}.cpu_us.max']:.0f}"
        db = f" {results[f'{w}.db_cpu_us']:7.1f}" if with_db else ""
        print(
            f"{w:10} {results[f'{w}.cpu_us']:11.1f} {results[f'{w}.per_s']:8.0f} "
            f"{results[f'{w}.reference_cpu_us']:8.1f} {results[f'{w}.reference_per_s']:10.0f} "
            f"{results[f'{w}.ratio']:6.1f} {results[f'{w}.generator_cpu_us']:7.1f}{db}{spread}"
        )
    if with_db:
        print(
            "db µs: CPU of the PostgreSQL backends serving the server, per request (not in ratio)"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--seconds", type=float, default=2.5, help="measured window per target")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=1, help="fresh server each run; medians")
    parser.add_argument("--log-level", default="INFO", help="the server's (default: its default)")
    parser.add_argument(
        "--store", default="", help="postgresql://… to run on PostgreSQL (a throwaway schema)"
    )
    parser.add_argument(
        "--server-args", default="", help='more server flags, e.g. "--store postgresql://…"'
    )
    parser.add_argument("--profile", type=Path, help="directory for py-spy raw profiles")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--show-profile", type=Path, help="print the profiles in DIR, run nothing")
    args = parser.parse_args()
    if args.show_profile is not None:
        for workload in args.workloads:
            print_profile(workload, args.show_profile / f"{workload}.txt")
        return
    load0 = os.getloadavg()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            runs.append(run_with_loop(run_once(args, Path(tmp), run)))
    load1 = os.getloadavg()
    print(
        f"load average (1 min) {load0[0]:.2f} before, {load1[0]:.2f} after; {os.cpu_count()}"
        " CPUs; CPU-µs = the server process's user+system time per request answered"
    )
    results = report(runs)
    results["load_avg_1m"] = max(load0[0], load1[0])
    if args.save:
        save(args.save, results)
    if args.baseline:
        print("against baseline:")
        compare(results, args.baseline)


def run_with_loop(coro: Any) -> dict[str, float]:
    """The generator on uvloop when installed (as the server): it must keep up."""
    try:
        import uvloop
    except ImportError:
        result: dict[str, float] = asyncio.run(coro)
        return result
    result = uvloop.run(coro)
    return result


if __name__ == "__main__":
    main()

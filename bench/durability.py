"""Durability benchmark: sends/s and send latency with SQLite ``synchronous`` NORMAL vs FULL.

    uv run python bench/durability.py                      # 16 senders, 5 s per mode
    uv run python bench/durability.py --senders 16 --seconds 5 --save bench/results/durability.json

For each mode a fresh server process runs with ``--sqlite-synchronous MODE``; each
sender posts to the general chat in a loop on its own keep-alive connection (one
request in flight per sender, as a client waits for its answer) for ``--seconds``.
Reported per mode: sends/s, p50/p99/max latency (ms) of a send, from writing the
request to reading its answer.

What the modes guarantee (WAL journal, one commit per event-loop turn for all sends
in it): with FULL the WAL is fsynced at every commit, so an answered send survives
power loss and an OS crash; with NORMAL it survives the server process being killed
(kill -9) but the last commits before a power loss or OS crash may be lost, since the
WAL is fsynced only at checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import ServerProcess, http_request, percentile, save


async def _sender(port: int, token: str, until: float, lags: list[float], n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        i = 0
        while time.perf_counter() < until:
            body = json.dumps({"text": f"durable {n}-{i}", "client_id": f"{n}-{i}"}).encode()
            start = time.perf_counter()
            writer.write(
                b"POST /api/v1/chats/1/messages HTTP/1.1\r\nHost: b\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"send failed: {head[:40]!r}")
            lags.append((time.perf_counter() - start) * 1000)
            i += 1
    finally:
        writer.close()


async def measure(mode: str, senders: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--sqlite-synchronous", mode, "--rate-limit-messages", "100000000"],
        )
        srv.start()
        try:
            tokens = []
            for n in range(senders):
                body = json.dumps({"login": f"u{n}", "password": "password1"}).encode()
                status, raw = await http_request(
                    "127.0.0.1", srv.port, "POST", "/api/v1/auth/register", body
                )
                assert status == 200, raw
                tokens.append(json.loads(raw)["token"])
            lags: list[float] = []
            start = time.perf_counter()
            until = start + seconds
            await asyncio.gather(
                *(_sender(srv.port, t, until, lags, n) for n, t in enumerate(tokens))
            )
            elapsed = time.perf_counter() - start
        finally:
            srv.stop()
    return {
        "sends_per_s": len(lags) / elapsed,
        "p50_ms": percentile(lags, 50),
        "p99_ms": percentile(lags, 99),
        "max_ms": max(lags, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs per mode, alternating (a loaded machine drifts)"
    )
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"NORMAL": [], "FULL": []}
    print(f"{'mode':8} {'sends/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for _ in range(args.rounds):
        for mode, done in runs.items():
            got = asyncio.run(measure(mode, args.senders, args.seconds))
            done.append(got)
            print(
                f"{mode:8} {got['sends_per_s']:9.0f} {got['p50_ms']:8.2f} "
                f"{got['p99_ms']:8.2f} {got['max_ms']:8.2f}"
            )
    results: dict[str, float] = {}
    for mode, done in runs.items():
        for key in done[0]:
            results[f"{mode.lower()}_{key}"] = statistics.median(r[key] for r in done)
    print("median: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(results.items())))
    if args.save:
        save(args.save, results)


if __name__ == "__main__":
    main()

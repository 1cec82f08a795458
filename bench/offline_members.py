"""Send cost against offline membership: a general-chat send with 0, 1,000 and 10,000
members who have no live event stream, with the default ``message_ttl`` and with 0.

    uv run python bench/offline_members.py                        # SQLite and PostgreSQL
    uv run python bench/offline_members.py --stores sqlite --members 0,1000
    uv run python bench/offline_members.py --save bench/results/offline_members.local.json
    uv run python bench/offline_members.py --baseline bench/results/offline_members.local.json

Issue 11's target: a send's cost does not grow with the members who are offline (10,000
vs 0 within 1.2x), so a team of 10,000 can post as fast as a team of ten. For each store
the benchmark starts a real server, registers the sender, then adds the offline members
straight into the database (users and general-chat memberships, fast: no password
hashing) between server runs. At each size it measures sequential sends on one
keep-alive connection, once with ``--message-ttl 3600`` and once with ``--message-ttl 0``
(no bookkeeping: the reference of the same run), and prints the p50/p99 latency, the
server's own CPU per send (from the OS) and the ratios: to ttl 0 at the same size, and
to the same ttl with no offline members. ``--store`` names the PostgreSQL server (a
throwaway schema per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import (
    ServerProcess,
    bench_store,
    compare,
    percentile,
    read_response,
    save,
    token_of_fresh_server,
)

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TTLS = (3600, 0)


_RECOUNT = (
    "UPDATE chats SET member_count = (SELECT count(*) FROM members WHERE chat_id = 1) WHERE id = 1"
)
"""The stored member count of the general chat after rows were added behind the store's back."""


def add_members_sqlite(db: Path, start: int, stop: int) -> None:
    """Users ``offline<start>`` … ``offline<stop - 1>``, members of the general chat."""
    conn = sqlite3.connect(db)
    now = time.time()
    with conn:
        for i in range(start, stop):
            cur = conn.execute(
                "INSERT INTO users (login, password_hash, created_at) VALUES (?, 'x', ?)",
                (f"offline{i}", now),
            )
            conn.execute(
                "INSERT INTO members (chat_id, user_id, joined_at) VALUES (1, ?, ?)",
                (cur.lastrowid, now),
            )
        conn.execute(_RECOUNT)
    conn.close()


def add_members_postgres(url: str, start: int, stop: int) -> None:
    """The same rows on PostgreSQL."""
    import psycopg

    now = time.time()
    with psycopg.connect(url) as conn:
        for i in range(start, stop):
            row = conn.execute(
                b"INSERT INTO users (login, password_hash, created_at) VALUES (%s, 'x', %s)"
                b" RETURNING id",
                (f"offline{i}", now),
            ).fetchone()
            assert row is not None
            conn.execute(
                b"INSERT INTO members (chat_id, user_id, joined_at) VALUES (1, %s, %s)",
                (row[0], now),
            )
        conn.execute(_RECOUNT.encode())
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"ANALYZE")


async def sends(srv: ServerProcess, token: str, warmup: int, count: int) -> dict[str, float]:
    """``count`` sends after ``warmup``, one after another on one keep-alive connection."""
    assert srv.proc is not None
    proc = psutil.Process(srv.proc.pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    times: list[float] = []
    cpu0 = 0.0
    for i in range(warmup + count):
        if i == warmup:
            t = proc.cpu_times()
            cpu0 = t.user + t.system
        body = json.dumps({"text": f"offline-members bench {i}"}).encode()
        writer.write(
            b"POST /api/v1/chats/1/messages HTTP/1.1\r\nHost: b\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        t0 = time.perf_counter()
        await writer.drain()
        head, answer = await read_response(reader)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
        assert head.startswith(b"HTTP/1.1 200"), head + answer
    t = proc.cpu_times()
    cpu = t.user + t.system - cpu0
    writer.close()
    return {
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "cpu_ms": cpu * 1000 / count,
    }


async def run_store(store: str, sizes: list[int], warmup: int, count: int) -> dict[str, float]:
    """Every size and ttl on one store ("" = SQLite)."""
    results: dict[str, float] = {}
    name = "postgresql" if store else "sqlite"
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        data = Path(tmp) / "data"
        env = {"MESSENGER_STORE": store_url} if store_url else None
        base = ["--log-level", "WARNING", "--rate-limit-messages", "1000000000"]
        srv = ServerProcess(data, args=base, env=env)
        token = await token_of_fresh_server(srv, "sender")
        have = 0
        for size in sorted(sizes):
            if size > have:
                if store_url:
                    add_members_postgres(store_url, have, size)
                else:
                    add_members_sqlite(data / "messenger.db", have, size)
                have = size
            for ttl in TTLS:
                srv.args = [*base, "--message-ttl", str(ttl)]
                srv.start()
                try:
                    got = await sends(srv, token, warmup, count)
                except AssertionError:
                    print(srv.log_path.read_text()[-3000:])
                    raise
                finally:
                    srv.stop()
                for key, value in got.items():
                    results[f"{name}.ttl{ttl}.n{size}.{key}"] = value
                print(
                    f"  {name:10} ttl {ttl:5} offline {size:6}:"
                    f" p50 {got['p50_ms']:7.2f} ms  p99 {got['p99_ms']:7.2f} ms"
                    f"  cpu {got['cpu_ms']:7.2f} ms/send",
                    flush=True,
                )
    smallest = min(sizes)
    for size in sizes:
        for key in ("p50_ms", "cpu_ms"):
            ours = results[f"{name}.ttl{TTLS[0]}.n{size}.{key}"]
            ref = results[f"{name}.ttl0.n{size}.{key}"]
            small = results[f"{name}.ttl{TTLS[0]}.n{smallest}.{key}"]
            results[f"{name}.n{size}.{key}.vs_ttl0"] = ours / max(1e-9, ref)
            results[f"{name}.n{size}.{key}.vs_n{smallest}"] = ours / max(1e-9, small)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="0,1000,10000", help="offline member counts")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--store", default=DEFAULT_PG, help="the PostgreSQL server to use")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    sizes = [int(s) for s in args.members.split(",")]
    results: dict[str, Any] = {}
    for store in args.stores.split(","):
        url = "" if store == "sqlite" else args.store
        results |= asyncio.run(run_store(url, sizes, args.warmup, args.sends))
    print("ratios (default ttl vs ttl 0 at the same size; vs the smallest size):")
    for key, value in sorted(results.items()):
        if ".vs_" in key:
            print(f"  {key:40} x{value:.2f}")
    if args.save:
        save(args.save, results)
    if args.baseline:
        compare(results, args.baseline)


if __name__ == "__main__":
    main()

"""Search benchmark (issue 12): a query over 1,000,000 messages answers in <= 50 ms p99
server-side; the search index lowers send throughput by at most 10 %.

    uv run python bench/search.py [--messages 1000000] [--repeats 200] [--save FILE]
    uv run python bench/search.py --store postgresql://postgres@127.0.0.1:5432/postgres

SQLite by default; with ``--store`` PostgreSQL (a throwaway schema, filled by COPY with
the GIN index built afterwards; query latency only, no send runs). A real server
registers two users and makes 20 group chats (the reader is in 10 of them, so half of
what the index holds is not theirs to find), then the data dir is filled with N messages
straight into the database, spread over the general chat and the groups, each 4 to 16
words drawn from a Zipf-like vocabulary of 20,000 words, indexed on SQLite by one
statement at the end, as the server does at each group commit (``fill_s``). Then:

* the storage query in-process (``search_queries(tx).search``), per kind of query: a
  common, a middling and a rare word, two words, a phrase, a word in one chat, a word
  from one author, operators alone (a query's last word is a prefix, so each of these
  ending in a word is a prefix query); the common word quoted (whole word only), the
  first two and three letters of it (a word half typed) and those three after a word;
* the whole request (``GET /api/v1/search``) over a keep-alive connection to the server;
* send throughput (SQLite): 8 senders posting to group chats through the server in three
  set-ups: ``none`` (nothing indexed), ``row`` (the FTS5 trigger per inserted row that
  the server had before, with FTS5's default ``automerge`` 4: it runs inside each unit's
  SAVEPOINT, so FTS5 writes a segment per message) and ``group`` (what the server does
  now: the new messages of each group commit indexed in one statement before its COMMIT,
  ``automerge`` 16); after one warm-up run, four runs of each in an order where every
  set-up has the same mean position, so a trend in the machine's load hits all alike.
  Medians of the four: sends/s (``send_cost_of_index_pct`` is ``group`` against
  ``none``, ``send_cost_of_row_trigger_pct`` ``row`` against ``none``) and the server's
  CPU time per send (``send_cpu_cost_…``), which a loaded machine scatters far less than
  the wall-clock rate.

Messages do not disappear here (``--message-ttl 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
from _common import ServerProcess, bench_store, http_request, percentile, save

from messenger_protocol import parse_search
from messenger_server.storage import SqliteStore, Store, Tx
from messenger_server.storage.postgres import PostgresStore
from messenger_server.storage.search import SearchFilter, index_new_messages, search_queries

VOCABULARY = 20_000
GROUPS = 20
SENDERS = 8
SENDS_PER_SENDER = 150
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def _vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: rng.random())


def _weights() -> list[float]:
    return [1.0 / (rank + 1) for rank in range(VOCABULARY)]


def fill(db: Path, count: int, chats: list[int], authors: list[int], words: list[str]) -> None:
    """Insert ``count`` messages (4-16 Zipf words each) round the chats; triggers index them."""
    rng = random.Random(7)
    conn = sqlite3.connect(db)
    weights = _weights()
    now = time.time() - count * 0.001
    batch = 20_000
    for start in range(0, count, batch):
        n = min(count, start + batch) - start
        drawn = rng.choices(words, weights, k=n * 10)
        rows = []
        for i in range(n):
            length = rng.randint(4, 16)
            text = " ".join(drawn[i * 10 : i * 10 + length])
            chat = chats[(start + i) % len(chats)]
            rows.append(
                (chat, authors[(start + i) % len(authors)], text, now + (start + i) * 0.001)
            )
        conn.executemany(
            "INSERT INTO messages (chat_id, author_id, text, created_at) VALUES (?, ?, ?, ?)", rows
        )
        conn.commit()
    conn.execute(
        "UPDATE chats SET last_message_id = (SELECT max(id) FROM messages m"
        " WHERE m.chat_id = chats.id), last_message_at = ?",
        (time.time(),),
    )
    index_new_messages(conn)
    conn.commit()
    conn.close()


def fill_postgres(
    url: str, count: int, chats: list[int], authors: list[int], words: list[str]
) -> None:
    """The same rows through COPY, the GIN index dropped meanwhile and built after."""
    import psycopg

    rng = random.Random(7)
    weights = _weights()
    now = time.time() - count * 0.001
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            cur.execute(b"DROP INDEX messages_tsv")
            copy_sql = b"COPY messages (chat_id, author_id, text, created_at) FROM STDIN"
            with cur.copy(copy_sql) as copy:
                for start in range(0, count, 20_000):
                    n = min(count, start + 20_000) - start
                    drawn = rng.choices(words, weights, k=n * 10)
                    for i in range(n):
                        text = " ".join(drawn[i * 10 : i * 10 + rng.randint(4, 16)])
                        k = start + i
                        copy.write_row(
                            (chats[k % len(chats)], authors[k % len(authors)], text,
                             now + k * 0.001)
                        )  # fmt: skip
            cur.execute(b"CREATE INDEX messages_tsv ON messages USING GIN (tsv)")
            cur.execute(
                b"UPDATE chats SET last_message_id = (SELECT max(id) FROM messages m"
                b" WHERE m.chat_id = chats.id)"
            )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE messages")


def queries(words: list[str]) -> dict[str, str]:
    """One query of each kind (the words by rank: 0 is the most common)."""
    return {
        "common_word": words[3],
        "rare_word": words[15_000],
        "mid_word": words[400],
        "two_words": f"{words[5]} {words[60]}",
        "phrase": f'"{words[0]} {words[1]}"',
        "word_in_chat": f"{words[50]} in:g2",
        "word_from_author": f"{words[50]} from:writer",
        "operator_only": "from:writer in:g4",
        "whole_common_word": f'"{words[3]}"',
        "prefix_2": words[3][:2],
        "prefix_3": words[3][:3],
        "prefix_after_word": f"{words[50]} {words[3][:3]}",
    }


async def store_query(
    store: Store, user_id: int, qs: dict[str, str], repeats: int
) -> dict[str, float]:
    """The storage search in-process, per query kind: p50 and p99 in ms."""
    await store.open()
    results: dict[str, float] = {}
    every: list[float] = []
    try:
        names = await store.read(
            lambda tx: {tx.chat(c).name: c for c in tx.chat_ids_of(user_id) if tx.chat(c)}  # type: ignore[union-attr]
        )
        writer = await store.read(lambda tx: tx.user_by_login("writer"))
        assert writer is not None
        for kind, text in qs.items():
            parsed = parse_search(text)
            found = SearchFilter(
                parsed,
                chat_id=names.get(parsed.in_chat or ""),
                author_id=writer.id if parsed.from_login else None,
            )
            times: list[float] = []
            hits = 0
            for _ in range(repeats):

                def unit(tx: Tx, f: SearchFilter = found) -> int:
                    return len(search_queries(tx).search(user_id, f, None, 21))

                t0 = time.perf_counter()
                hits = await store.read(unit)
                times.append((time.perf_counter() - t0) * 1000)
            every += times
            results[f"store_{kind}_p50_ms"] = percentile(times, 50)
            results[f"store_{kind}_p99_ms"] = percentile(times, 99)
            results[f"store_{kind}_hits"] = hits
    finally:
        await store.close()
    results["store_all_p99_ms"] = percentile(every, 99)
    return results


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes = b""
) -> tuple[int, bytes]:
    writer.write(head + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    length = int(raw.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(raw.split(b" ", 2)[1]), await reader.readexactly(length)


async def http_query(
    srv: ServerProcess, token: str, qs: dict[str, str], repeats: int
) -> dict[str, float]:
    """``GET /api/v1/search`` round trips over one keep-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    times: list[float] = []
    try:
        for _ in range(repeats):
            for text in qs.values():
                head = (
                    f"GET /api/v1/search?q={quote(text)} HTTP/1.1\r\nHost: b\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                status, body = await _request(reader, writer, head)
                times.append((time.perf_counter() - t0) * 1000)
                assert status == 200, body
    finally:
        writer.close()
    return {"http_p50_ms": percentile(times, 50), "http_p99_ms": percentile(times, 99)}


async def sends_per_second(srv: ServerProcess, token: str, chats: list[int]) -> tuple[float, float]:
    """Sends/s of SENDERS keep-alive senders, SENDS_PER_SENDER each, to group chats, and
    the server's CPU time per send in µs (what a loaded machine changes far less)."""

    async def sender(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        try:
            for i in range(SENDS_PER_SENDER):
                chat = chats[(n + i) % len(chats)]
                body = json.dumps({"text": f"bench send {n} {i} quick brown fox"}).encode()
                head = (
                    f"POST /api/v1/chats/{chat}/messages HTTP/1.1\r\nHost: b\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                status, answer = await _request(reader, writer, head, body)
                assert status == 200, answer
        finally:
            writer.close()

    assert srv.proc is not None
    proc = psutil.Process(srv.proc.pid)
    cpu0 = proc.cpu_times()
    t0 = time.perf_counter()
    await asyncio.gather(*(sender(n) for n in range(SENDERS)))
    elapsed = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    sends = SENDERS * SENDS_PER_SENDER
    return sends / elapsed, cpu / sends * 1e6


_ROW_TRIGGER = (
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
    " INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END"
)
_OFF = 1 << 62
"""``search_indexed.upto`` that keeps the server's group commit from indexing anything."""


def set_index(db: Path, mode: str) -> None:
    """Index new messages by ``mode`` (``none``, ``row``, ``group``) while the server is
    stopped; every message sent meanwhile ends up in the index once whatever the mode was
    (the bench's own table ``bench_index`` remembers the mode and the mark it left)."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_index (mode TEXT NOT NULL, upto INTEGER)")
    # back to "group" with everything indexed
    row = conn.execute("SELECT mode, upto FROM bench_index").fetchone()
    if row is not None and row[0] == "none":
        conn.execute("UPDATE search_indexed SET upto = ?", (row[1],))
        index_new_messages(conn)
    elif row is not None and row[0] == "row":
        conn.execute("DROP TRIGGER IF EXISTS messages_fts_insert")
        conn.execute("UPDATE search_indexed SET upto = (SELECT max(id) FROM messages)")
    conn.execute("DELETE FROM bench_index")
    # the server's FTS5 merge setting, or (row) FTS5's default that the server had before
    merge = 4 if mode == "row" else 16
    conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', ?)", (merge,))
    if mode != "group":
        upto = conn.execute("SELECT upto FROM search_indexed").fetchone()[0]
        conn.execute("INSERT INTO bench_index (mode, upto) VALUES (?, ?)", (mode, upto))
        conn.execute("UPDATE search_indexed SET upto = ?", (_OFF,))
        if mode == "row":
            conn.execute(_ROW_TRIGGER)
    conn.commit()
    conn.close()


async def _post(srv: ServerProcess, path: str, token: str, body: dict[str, Any]) -> Any:
    status, raw = await http_request(
        "127.0.0.1", srv.port, "POST", path, json.dumps(body).encode(), token
    )
    assert status == 200, raw
    return json.loads(raw)


async def run(count: int, repeats: int, store: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        data = Path(tmp) / "data"
        env = {"MESSENGER_STORE": store_url} if store_url else None
        srv = ServerProcess(data, args=["--log-level", "WARNING", "--message-ttl", "0"], env=env)
        srv.start()
        account = {"password": "benchmark"}
        reader = await _post(srv, "/api/v1/auth/register", "", {"login": "reader", **account})
        writer = await _post(srv, "/api/v1/auth/register", "", {"login": "writer", **account})
        groups: list[int] = []
        for n in range(GROUPS):
            owner = reader if n % 2 == 0 else writer
            chat = await _post(srv, "/api/v1/chats", owner["token"], {"name": f"g{n}"})
            if owner is reader:
                path = f"/api/v1/chats/{chat['id']}/members"
                await _post(srv, path, reader["token"], {"login": "writer"})
            groups.append(chat["id"])
        srv.stop()
        words = _vocabulary(random.Random(1))
        t0 = time.perf_counter()
        if store_url:
            fill_postgres(store_url, count, [1, *groups], [1, 2], words)
        else:
            fill(data / "messenger.db", count, [1, *groups], [1, 2], words)
        results: dict[str, Any] = {
            "store": "postgresql" if store_url else "sqlite",
            "messages": count,
            "fill_s": time.perf_counter() - t0,
            "load_before": os.getloadavg()[0],
        }
        qs = queries(words)
        opened: Store = PostgresStore(store_url) if store_url else SqliteStore.in_dir(data)
        results |= await store_query(opened, 1, qs, repeats)
        srv.start()
        try:
            results |= await http_query(srv, reader["token"], qs, max(1, repeats // 4))
        finally:
            srv.stop()
        if not store_url:
            results |= await _send_runs(srv, data, reader["token"], groups[0::2])
        results["load_after"] = os.getloadavg()[0]
        return results


_MODES = ("none", "row", "group")
_ORDER = "group  none row group  group row none  none group row  row group none"
"""A warm-up run (not counted), then four runs of each set-up, all at mean position 6.5."""


async def _send_runs(srv: ServerProcess, data: Path, token: str, own: list[int]) -> dict[str, Any]:
    """Send throughput by way of indexing (SQLite), in the order of ``_ORDER``."""
    rates: dict[str, list[float]] = {mode: [] for mode in _MODES}
    cpus: dict[str, list[float]] = {mode: [] for mode in _MODES}
    for n, mode in enumerate(_ORDER.split()):
        set_index(data / "messenger.db", mode)
        srv.start()
        try:
            sends_rate, cpu_per_send = await sends_per_second(srv, token, own)
            if n > 0:
                rates[mode].append(sends_rate)
                cpus[mode].append(cpu_per_send)
        finally:
            srv.stop()
    set_index(data / "messenger.db", "group")
    rate = {mode: statistics.median(r) for mode, r in rates.items()}
    cpu = {mode: statistics.median(c) for mode, c in cpus.items()}
    return {
        "sends_per_s_with_index": rate["group"],
        "sends_per_s_with_row_trigger": rate["row"],
        "sends_per_s_without_index": rate["none"],
        "send_cost_of_index_pct": 100.0 * (1 - rate["group"] / rate["none"]),
        "send_cost_of_row_trigger_pct": 100.0 * (1 - rate["row"] / rate["none"]),
        "server_cpu_us_per_send_with_index": cpu["group"],
        "server_cpu_us_per_send_with_row_trigger": cpu["row"],
        "server_cpu_us_per_send_without_index": cpu["none"],
        "send_cpu_cost_of_index_pct": 100.0 * (cpu["group"] / cpu["none"] - 1),
        "send_cpu_cost_of_row_trigger_pct": 100.0 * (cpu["row"] / cpu["none"] - 1),
        "sends_per_s_runs": rates,
        "server_cpu_us_per_send_runs": cpus,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument(
        "--store", default="", help="postgresql://… to run on PostgreSQL (a throwaway schema)"
    )
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args.messages, args.repeats, args.store))
    for key, value in results.items():
        print(f"  {key:36} {value:10.3f}" if isinstance(value, float) else f"  {key:36} {value}")
    if args.save:
        save(args.save, results)


if __name__ == "__main__":
    main()

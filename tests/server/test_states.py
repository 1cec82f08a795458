"""The transition tables, and the storage guard that keeps every path to them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from messenger_protocol import limits
from messenger_server.http import HttpServer, Request, Response, ResponseStream, StreamResponse
from messenger_server.http._server import _Connection
from messenger_server.states import (
    COMPLAINT,
    CONNECTION,
    JOIN_REQUEST,
    SCHEDULED,
    IllegalTransition,
    Transitions,
    allowed,
    require,
    sources,
)
from messenger_server.storage import SqliteStore, Tx
from messenger_server.storage.moderation import moderation_queries
from messenger_server.storage.scheduler import scheduled_queries

TABLES = [SCHEDULED, COMPLAINT, JOIN_REQUEST, CONNECTION]


@pytest.mark.parametrize("table", TABLES, ids=["scheduled", "complaint", "join", "connection"])
def test_every_target_is_a_state_and_final_states_stay(table: Transitions) -> None:
    for targets in table.values():
        assert targets <= table.keys()
    finals = [s for s, targets in table.items() if not targets]
    assert finals and all(not allowed(table, f, t) for f in finals for t in table)
    for final in finals:
        with pytest.raises(IllegalTransition):
            require(table, final, next(iter(table)))


def test_require_refuses_a_move_the_table_lacks() -> None:
    """Issue 10 item 4: a move outside the table is refused, a move inside it is made."""
    assert require(JOIN_REQUEST, "pending", "approved") == "approved"
    with pytest.raises(IllegalTransition, match="'rejected' cannot become 'approved'"):
        require(JOIN_REQUEST, "rejected", "approved")
    with pytest.raises(IllegalTransition):
        require(CONNECTION, "streaming", "idle")  # a stream never serves another request
    with pytest.raises(IllegalTransition):
        require(CONNECTION, "idle", "streaming")  # only a handled request starts a stream
    with pytest.raises(IllegalTransition):
        require(SCHEDULED, "pending", "nonsense")


def test_a_scheduled_message_leaves_pending_once() -> None:
    assert sources(SCHEDULED, "sent") == ("pending",)
    assert allowed(SCHEDULED, "pending", "cancelled")
    assert not allowed(SCHEDULED, "sent", "cancelled")
    assert sources(SCHEDULED, "pending") == ()


async def test_storage_moves_a_row_only_as_the_table_allows(tmp_path: Path) -> None:
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:

        def setup(tx: Tx) -> tuple[int, int]:
            author = tx.insert_user("alice", "x", 0.0, False)
            target = tx.insert_user("bob", "x", 0.0, False)
            assert author is not None and target is not None
            scheduled_id = scheduled_queries(tx).insert(author, 1, "hi", 10.0, 0.0)
            complaint_id = moderation_queries(tx).insert_complaint(
                author, target, "spam", None, 0.0, counted=True
            )
            return scheduled_id, complaint_id

        scheduled_id, complaint_id = await store.write(setup)

        def race(tx: Tx) -> list[bool]:
            queries = scheduled_queries(tx)
            # the scheduler sends it, then its author's cancel arrives: refused
            return [queries.move(scheduled_id, "sent"), queries.move(scheduled_id, "cancelled")]

        assert await store.write(race) == [True, False]
        item = await store.read(lambda tx: scheduled_queries(tx).get(scheduled_id))
        assert item is not None and item.state == "sent"
        with pytest.raises(ValueError, match="pending"):
            await store.write(lambda tx: scheduled_queries(tx).move(scheduled_id, "pending"))

        def dismiss_twice(tx: Tx) -> list[bool]:
            queries = moderation_queries(tx)
            return [queries.dismiss_complaint(complaint_id, "root", 1.0) for _ in range(2)]

        assert await store.write(dismiss_twice) == [True, False]
    finally:
        await store.close()


async def test_storage_settles_a_join_request_only_as_the_table_allows(tmp_path: Path) -> None:
    """Issue 10 item 4: a join request is approved, rejected or settled by an invite, once."""
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:

        def setup(tx: Tx) -> tuple[int, int]:
            owner = tx.insert_user("alice", "x", 0.0, False)
            asker = tx.insert_user("bob", "x", 0.0, False)
            assert owner is not None and asker is not None
            chat_id = tx.insert_chat("group", "club", owner, None, 0.0)
            assert chat_id is not None
            tx.upsert_join_request(chat_id, asker, 1.0, False)
            return chat_id, asker

        chat_id, asker = await store.write(setup)
        with pytest.raises(IllegalTransition):
            await store.write(lambda tx: tx.decide_join_request(chat_id, asker, "pending"))
        assert await store.read(lambda tx: tx.join_request(chat_id, asker)) == (1.0, False)

        def decide_twice(tx: Tx) -> list[bool]:
            return [tx.decide_join_request(chat_id, asker, to) for to in ("approved", "rejected")]

        assert await store.write(decide_twice) == [True, False]
        assert await store.read(lambda tx: tx.join_request(chat_id, asker)) is None
    finally:
        await store.close()


def test_a_connection_refuses_a_move_outside_its_table() -> None:
    """Issue 10 item 4: the connection loop changes state only through the table."""
    conn = object.__new__(_Connection)
    conn.state = "streaming"
    with pytest.raises(IllegalTransition):
        conn._move("idle")
    assert conn.state == "streaming"
    conn._move("closing")
    assert conn.state == "closing"


async def test_a_connection_goes_through_the_states_of_its_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10 item 4: answered, drained, answered again, then a stream to the end."""
    moves: list[tuple[str, str]] = []
    closed = asyncio.Event()
    answered = asyncio.Event()
    move = _Connection._move

    def recording(self: _Connection, to: str) -> None:
        moves.append((self.state, to))
        move(self, to)
        if to == "draining":
            answered.set()
        if to == "closing":
            closed.set()

    monkeypatch.setattr(_Connection, "_move", recording)

    async def handler(request: Request) -> Response | StreamResponse:
        if request.path == "/stream":

            async def produce(stream: ResponseStream) -> None:
                stream.write(b"bye")

            return StreamResponse(produce)
        if request.path == "/read":
            await request.body.read(limits.MAX_JSON_BODY)
        return Response(body=b"{}")

    server = HttpServer(handler)
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = b'{"x": 1}'
        # /skip leaves its body unread: it is drained. It comes after the answer (a body
        # that came whole with its head is handed over whole: there is nothing to drain).
        writer.write(
            f"POST /skip HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            await answered.wait()
        writer.write(body)
        writer.write(
            f"POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            received = await reader.read()  # to EOF: the stream ends the connection
            await closed.wait()
        assert received.endswith(b"bye")
        writer.close()
    finally:
        await server.close(grace=1.0)
    assert moves == [
        ("idle", "handling"), ("handling", "draining"), ("draining", "idle"),
        ("idle", "handling"), ("handling", "idle"),
        ("idle", "handling"), ("handling", "streaming"), ("streaming", "closing"),
    ]  # fmt: skip

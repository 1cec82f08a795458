"""Edits and deletions in one commit with other writes for the same message: what the event
log keeps is what a resume replays, so it must hold nothing the message no longer says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from messenger_protocol import GENERAL_CHAT_ID, EditMessage, SendMessage
from messenger_server.app import App
from tests.support.postgres import PgDatabase

from .conftest import Harness, ManualClock, make_app

T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgres"])
def app_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """The app's settings for each store."""
    if request.param == "sqlite":
        yield {}
    else:
        database: PgDatabase = request.getfixturevalue("pg_database")
        yield {"store": database.new_store()}


async def in_one_commit(app: App, *calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run service calls whose writes commit, in this order, as the units of one group on
    PostgreSQL: its writer thread is held until every call has asked to write, so they
    queue up and join its next group. (SQLite writes each unit's rows at once, so its
    log holds what this asks of PostgreSQL's whether or not they share a commit.)"""
    store = app.store
    write = store.write
    asked = asyncio.Queue[None]()

    async def counted(unit: Callable[[Any], T]) -> T:
        asked.put_nowait(None)
        return await write(unit)

    gate = threading.Event()
    held = None
    if app.settings.store.startswith("postgresql"):
        held = asyncio.ensure_future(write(lambda tx: gate.wait(30)))
    store.write = counted  # type: ignore[method-assign]
    running = []
    try:
        for call in calls:  # each starts once the one before asked: the units keep the order
            running.append(asyncio.ensure_future(call()))
            getter = asyncio.ensure_future(asked.get())
            await asyncio.wait([running[-1], getter], return_when=asyncio.FIRST_COMPLETED)
            getter.cancel()
        await asyncio.sleep(0)  # the last write's dispatch to the writer thread runs first
        gate.set()
        return list(await asyncio.gather(*running))
    finally:
        gate.set()
        store.write = write  # type: ignore[method-assign]
        if held is not None:
            await held


async def logged_payloads(app: App) -> list[bytes]:
    rows = await app.store.read(lambda tx: tx.events_range(0, tx.event_max(), 1000))
    return [row.payload for row in rows]


@pytest.fixture
async def harness(tmp_path: Path, app_settings: dict[str, object]) -> Any:
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, **app_settings)
    await app.start()
    try:
        yield Harness(app, clock, hub)
    finally:
        await app.close()


async def test_a_delete_in_the_commit_of_an_edit_leaves_the_edited_text_out_of_the_log(
    harness: Harness,
) -> None:
    """The edit's event came before the delete in the same commit: on PostgreSQL it was
    not a row yet when the delete removed the message's logged events, so it stayed in
    the log, and a resume replayed the text of a deleted message."""
    app = harness.app
    alice = await harness.user("alice")
    message = await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="first draft"))
    edited, deleted = await in_one_commit(
        app,
        lambda: app.services.annotations.edit(
            alice, message.id, EditMessage(text="second thoughts")
        ),
        lambda: app.services.annotations.delete(alice, message.id),
    )
    assert edited.text == "second thoughts" and deleted.deleted_at is not None
    payloads = await logged_payloads(app)
    assert any(b'"message_deleted"' in p for p in payloads)
    assert not [p for p in payloads if b"second thoughts" in p or b"first draft" in p]


async def test_a_mention_edited_away_in_the_same_commit_leaves_the_log(harness: Harness) -> None:
    """Two edits in one commit: the first mentions bob, the second no longer does. Bob's
    ``mention`` event of the first stays out of the log (on PostgreSQL it stayed, with
    the second text), as a mention logged before the edit leaves it."""
    app = harness.app
    alice = await harness.user("alice")
    await harness.user("bob")
    message = await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="hello"))
    annotations = app.services.annotations
    await in_one_commit(
        app,
        lambda: annotations.edit(alice, message.id, EditMessage(text="hello @bob")),
        lambda: annotations.edit(alice, message.id, EditMessage(text="hello all")),
    )
    payloads = await logged_payloads(app)
    assert any(b"hello all" in p for p in payloads)
    assert not [p for p in payloads if b'"mention"' in p]
    assert not [p for p in payloads if b"hello @bob" in p]

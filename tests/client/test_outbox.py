"""The outbox (issue 12, "the TUI's shape first"): Textual-free, against the real server.
Sends go out in order; while the server is away they wait and are retried with the same
client_id (so nothing is posted twice); a refusal ends that send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from messenger_client import ApiError, Client
from messenger_client.cache import PendingAct, PendingSend
from messenger_client.outbox import Outbox
from messenger_protocol import GENERAL_CHAT_ID, ErrorCode, Message, ReactionList
from tests.support import postgres
from tests.support.faultproxy import FaultProxy
from tests.support.server import ServerProcess

WAIT = 30.0


class Recorder:
    """An :class:`~messenger_client.outbox.OutboxSink` that keeps what it hears."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.delivered: dict[str, Message] = {}
        self.answers: dict[str, Message | ReactionList] = {}
        self.refused: list[tuple[str, ApiError]] = []
        self.changed = asyncio.Event()

    def send_failed(self, pending: PendingSend, retrying: bool) -> None:
        self.log.append(("retrying" if retrying else "dropped", pending.client_id))
        self.changed.set()

    def retrying(self, pending: PendingSend) -> None:
        self.log.append(("again", pending.client_id))

    def sent(self, pending: PendingSend, message: Message) -> None:
        self.log.append(("sent", pending.client_id))
        self.delivered[pending.client_id] = message
        self.changed.set()

    def annotated(self, pending: PendingSend, result: Message | ReactionList) -> None:
        self.log.append(("annotated", pending.client_id))
        self.answers[pending.client_id] = result
        self.changed.set()

    def on_refused(self, pending: PendingSend, exc: ApiError) -> None:
        self.refused.append((pending.client_id, exc))
        self.changed.set()

    async def until(self, condition: Callable[[], object]) -> None:
        """Wait (for events, with a deadline) until ``condition()`` holds."""
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(outbox: Outbox) -> AsyncIterator[Outbox]:
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pending(n: int, text: str, chat_id: int = GENERAL_CHAT_ID) -> PendingSend:
    return PendingSend(f"outbox-test-{n}", chat_id, text, 0.0)


def expired(exc: ApiError) -> None:
    raise AssertionError(f"the session did not expire: {exc}")


async def test_sends_in_order_and_a_refusal_ends_only_that_send(server: ServerProcess) -> None:
    client = Client(server.url)
    await client.register("alice", "secret12")
    sink = Recorder()
    outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)
    outbox.online.set()
    try:
        async with running(outbox):
            outbox.put_all([pending(1, "first"), pending(2, "x" * 100_000), pending(3, "third")])
            await sink.until(lambda: len(sink.delivered) == 2 and sink.refused)
        assert [kind for kind, _ in sink.log] == ["sent", "dropped", "sent"]
        assert [cid for cid, _ in sink.refused] == ["outbox-test-2"]
        assert sink.refused[0][1].code == ErrorCode.TOO_LARGE
        page = await client.history(GENERAL_CHAT_ID)
        assert [m.text for m in page.messages] == ["first", "third"]
    finally:
        await client.close()


async def test_offline_sends_wait_and_go_once_when_the_server_is_back(
    server: ServerProcess,
) -> None:
    """The queue survives the server going away: each send is retried with its own
    client_id and arrives exactly once, in order, after the server is back."""
    client = Client(server.url)
    await client.register("alice", "secret12")
    sink = Recorder()
    outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)
    try:
        async with running(outbox):
            server.stop()
            outbox.put_all([pending(1, "while away 1"), pending(2, "while away 2")])
            await sink.until(lambda: ("retrying", "outbox-test-1") in sink.log)
            assert not sink.delivered, "nothing goes while the server is away"
            server.start()
            outbox.online.set()  # the event stream would say so
            await sink.until(lambda: len(sink.delivered) == 2)
        assert [k for k, c in sink.log if k == "sent"] == ["sent", "sent"]
        page = await client.history(GENERAL_CHAT_ID)
        assert [m.text for m in page.messages] == ["while away 1", "while away 2"]
        assert [m.client_id for m in page.messages] == ["outbox-test-1", "outbox-test-2"]
    finally:
        await client.close()


async def test_a_closed_outbox_sends_nothing_more(server: ServerProcess) -> None:
    """After the session is over the outbox stops; what was queued is the sink's."""
    client = Client(server.url)
    await client.register("alice", "secret12")
    sink = Recorder()
    outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)
    outbox.close()
    outbox.put(pending(1, "never"))
    await asyncio.wait_for(outbox.run(), WAIT)  # returns at once: closed
    assert sink.log == []
    await client.close()


async def test_a_file_message_waits_offline_and_goes_once_with_its_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    """File messages take the same path as text (they went straight to ``client.send``
    with no pending state or retry): uploaded, then queued, kept while the server is
    away, and posted once with the file when it is back."""
    client = Client(server.url)
    await client.register("alice", "secret12")
    path = tmp_path / "notes.txt"
    path.write_text("the minutes\n")
    attachment = await client.upload(path)
    sink = Recorder()
    outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)
    try:
        async with running(outbox):
            server.stop()
            outbox.put(PendingSend("file-1", GENERAL_CHAT_ID, "", 0.0, None, (attachment,)))
            await sink.until(lambda: ("retrying", "file-1") in sink.log)
            server.start()
            outbox.online.set()
            await sink.until(lambda: "file-1" in sink.delivered)
        page = await client.history(GENERAL_CHAT_ID)
        assert [(m.client_id, [a.name for a in m.attachments]) for m in page.messages] == [
            ("file-1", ["notes.txt"])
        ]
    finally:
        await client.close()


async def test_edits_and_reactions_wait_offline_and_go_in_order(server: ServerProcess) -> None:
    """Issue 12: an edit and reaction changes take the outbox's path: kept while the
    server is away (no refusal), retried, applied once each and in order -- a reaction
    added then taken back offline is gone, another stays."""
    client = Client(server.url)
    await client.register("alice", "secret12")
    message = await client.send(GENERAL_CHAT_ID, "teh plan")
    sink = Recorder()
    outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)

    def act(n: int, act: PendingAct, text: str) -> PendingSend:
        return PendingSend(f"act-{n}", GENERAL_CHAT_ID, text, 0.0, act=act, target=message.id)

    try:
        async with running(outbox):
            server.stop()
            outbox.put(act(1, "edit", "the plan"))
            await sink.until(lambda: ("retrying", "act-1") in sink.log)
            outbox.put(act(2, "react", "👍"))
            outbox.put(act(3, "react", "🎉"))
            outbox.put(act(4, "unreact", "👍"))
            server.start()
            outbox.online.set()
            await sink.until(lambda: "act-4" in sink.answers)
        assert not sink.refused
        edited = sink.answers["act-1"]
        assert isinstance(edited, Message) and edited.edited_at is not None
        reactions = sink.answers["act-4"]
        assert isinstance(reactions, ReactionList)
        assert [(r.emoji, r.users) for r in reactions.reactions] == [("🎉", ["alice"])]
        now = await client.message(message.id)
        assert now.text == "the plan" and [r.emoji for r in now.reactions] == ["🎉"]
        assert [entry for entry in sink.log if entry[0] == "annotated"] == [
            ("annotated", f"act-{n}") for n in range(1, 5)
        ]
    finally:
        await client.close()


@pytest.mark.parametrize("store_kind", ["postgres"])
async def test_a_send_answered_503_waits_and_goes_once_when_the_store_is_back(
    server_factory: Callable[..., ServerProcess], pg_database: postgres.PgDatabase
) -> None:
    """A server cut off from its database answers a send 503 ``unavailable`` (it was
    never stored): the outbox keeps it and retries it with the same client_id, so it is
    stored exactly once when the database is back (it was dropped for good before)."""
    base = urlsplit(pg_database.new_store())
    proxy = FaultProxy("postgresql", base.hostname or "127.0.0.1", base.port or 5432)
    await proxy.start()
    store = urlunsplit(base._replace(netloc=f"{base.username}@127.0.0.1:{proxy.port}"))
    # started off the loop: the proxy on this loop must forward while the server starts
    server = await asyncio.to_thread(server_factory, env={"MESSENGER_STORE": store})
    client = Client(server.url)
    try:
        await client.register("alice", "secret12")
        sink = Recorder()
        outbox = Outbox(client, sink, on_refused=sink.on_refused, on_session_expired=expired)
        outbox.online.set()
        async with running(outbox):
            proxy.cut()
            with pytest.raises(ApiError) as refused:
                await client.send(GENERAL_CHAT_ID, "straight through while it is away")
            assert refused.value.code == ErrorCode.UNAVAILABLE, "503, not a 500"
            outbox.put(pending(1, "while the database is away"))
            await sink.until(lambda: ("retrying", "outbox-test-1") in sink.log)
            assert not sink.refused and not sink.delivered
            proxy.heal()
            await sink.until(lambda: len(sink.delivered) == 1)
        assert not sink.refused
        page = await client.history(GENERAL_CHAT_ID)
        assert [m.client_id for m in page.messages] == ["outbox-test-1"]
        # the failed commits said so in rate-limited lines, not a traceback each
        assert "did not answer" in server.log()
        assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        await client.close()
        await proxy.close()

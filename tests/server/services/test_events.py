"""The event log: replay after N is exactly what was missed and visible; reset; retention."""

from __future__ import annotations

from messenger_protocol import (
    GENERAL_CHAT_ID,
    BaseEvent,
    CreateChat,
    Credentials,
    HistoryQuery,
    MessageCreated,
    OpenDirect,
    Presence,
    Reset,
    SendMessage,
    SseParser,
    decode_event,
)
from messenger_server.services import Actor

from .conftest import Harness, make_app, next_turn


async def replay(harness: Harness, actor: Actor, after: int) -> list[tuple[int | None, BaseEvent]]:
    """What a stream resuming after ``after`` gets from the log."""
    frames: list[bytes] = []

    async def send(batch: list[bytes]) -> None:
        frames.extend(batch)

    await harness.app.events.catch_up(actor.user_id, after, send)
    parsed = SseParser().feed(b"".join(frames))
    return [(None if e.id is None else int(e.id), decode_event(e.data)) for e in parsed]


async def test_replay_is_exactly_the_missed_visible_events(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    eve = await harness.user("eve")
    m = harness.app.messages
    await m.post(alice, GENERAL_CHAT_ID, SendMessage(text="seen"))
    mark = harness.app.events.published_seq
    dm = await harness.app.chats.open_direct(alice, OpenDirect(login="bob"))
    missed = [await m.post(alice, GENERAL_CHAT_ID, SendMessage(text="g"))]
    missed.append(await m.post(alice, dm.id, SendMessage(text="private")))
    group = await harness.app.chats.create(eve, CreateChat(name="evesonly"))
    await m.post(eve, group.id, SendMessage(text="not for bob"))
    missed.append(await m.post(bob, GENERAL_CHAT_ID, SendMessage(text="own")))
    events = await replay(harness, bob, mark)
    created = [e.message.id for _, e in events if isinstance(e, MessageCreated)]
    assert created == [x.id for x in missed]
    ids = [seq for seq, _ in events if seq is not None]
    assert len(ids) == len(events) and all(seq > mark for seq in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # eve sees her group, not the private conversation
    eve_texts = [
        e.message.text for _, e in await replay(harness, eve, mark) if isinstance(e, MessageCreated)
    ]
    assert eve_texts == ["g", "not for bob", "own"]
    assert await replay(harness, bob, harness.app.events.published_seq) == []


async def test_live_ids_match_the_log_and_presence_is_ephemeral(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    watcher = harness.stream(bob)
    mark = harness.app.events.published_seq
    harness.stream(alice, "127.0.0.1:40002")  # alice comes online
    await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="hi"))
    await next_turn()
    live = watcher.take()
    presence = [(seq, e) for seq, e in live if isinstance(e, Presence) and e.login == "alice"]
    assert [(seq, e.online) for seq, e in presence] == [(None, True)]
    logged = [(seq, e) for seq, e in live if seq is not None]
    assert logged == await replay(harness, bob, mark)


async def test_too_old_or_unknown_cursor_gets_reset(harness: Harness) -> None:
    harness.app.events.retention = 5
    alice = await harness.user("alice")
    for i in range(1100):  # pruning runs every thousand events
        await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text=f"{i}"))
    newest = harness.app.events.published_seq
    for after in (0, newest + 10):
        events = await replay(harness, alice, after)
        assert len(events) == 1
        seq, event = events[0]
        assert seq is None and isinstance(event, Reset) and event.last_event_id == newest
    recent = await replay(harness, alice, newest - 3)
    assert [seq for seq, _ in recent] == [newest - 2, newest - 1, newest]


async def test_state_and_event_ids_survive_a_restart(harness: Harness) -> None:
    alice = await harness.user("alice")
    msg = await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="kept"))
    seq = harness.app.events.published_seq
    await harness.app.close()
    app, _ = make_app(harness.app.settings.data_dir, harness.clock)
    await app.start()
    try:
        assert app.events.published_seq == seq
        session = await app.accounts.login(Credentials(login="alice", password="password1"), "ip")
        assert session.last_event_id == seq
        again = await app.accounts.authenticate(session.token, "ip:1")
        page = await app.messages.history(again, GENERAL_CHAT_ID, HistoryQuery())
        assert [m.id for m in page.messages] == [msg.id]
        later = await app.messages.post(again, GENERAL_CHAT_ID, SendMessage(text="next"))
        assert later.id > msg.id and app.events.published_seq > seq
    finally:
        await app.close()
        await harness.app.start()  # the fixture closes it again

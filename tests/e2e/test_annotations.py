"""Everyday messaging (issue 12): edit, delete, reply, reactions and pins, through the
client library against the real server, with two devices of one user, a second user who
was offline, and an outsider who must see none of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from messenger_client.api import Client
from messenger_protocol import (
    ApiError,
    ErrorCode,
    Event,
    Mentioned,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    MessageUpdated,
    PinChanged,
    ReactionChanged,
    ThreadActivity,
    encode_event,
    limits,
)
from tests.client.test_integration import PASSWORD
from tests.support.plain import StartPlain
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, message_event

ANNOTATIONS = (MessageEdited, MessageDeleted, ReactionChanged, PinChanged)
T0 = 1_700_000_000.0


@asynccontextmanager
async def _client(srv: ServerProcess, login: str, *, new: bool = True) -> AsyncIterator[Client]:
    async with Client(srv.url) as client:
        if new:
            await client.register(login, "password1")
        else:
            await client.login(login, "password1")
        yield client


def _token(client: Client) -> str:
    assert client.token is not None
    return client.token


async def _refused(call: object) -> ApiError:
    """The typed error a call raised."""
    try:
        await call  # type: ignore[misc]
    except ApiError as exc:
        return exc
    raise AssertionError("the call was not refused")


def _kinds(events: list[tuple[int | None, Event]], *kinds: type) -> list[Event]:
    return [e for _, e in events if isinstance(e, kinds)]


async def test_an_edit_and_a_delete_reach_both_devices_and_a_resumed_client_not_an_outsider(
    server: ServerProcess,
) -> None:
    """Issue 12 items 1, 2 and 7: the edited text and the tombstone reach both devices of
    the author and, exactly once, a member whose client was offline and resumes by
    Last-Event-ID; the outsider's stream carries none of it."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "alice", new=False) as laptop,
        _client(server, "bob") as bob,
        _client(server, "carol") as carol,
    ):
        group = await alice.create_chat("team")
        await alice.invite(group.id, "bob")
        assert bob.session is not None
        bob_offline_at = bob.session.last_event_id
        async with (
            SseReader(server.url, _token(alice)) as phone_events,
            SseReader(server.url, _token(laptop)) as laptop_events,
            SseReader(server.url, _token(carol)) as outsider,
        ):
            first = await alice.send(group.id, "a stray j")
            second = await alice.send(group.id, "something to take back")
            edited = await alice.edit(first.id, "a stray fix")
            assert edited.text == "a stray fix" and edited.edited_at is not None
            tombstone = await alice.delete_message(second.id)
            assert tombstone.deleted_at is not None and tombstone.text == ""
            for device in (phone_events, laptop_events):
                got = await device.until(lambda e: isinstance(e, MessageDeleted))
                [edit_event] = _kinds(got, MessageEdited)
                assert isinstance(edit_event, MessageEdited)
                assert edit_event.message.text == "a stray fix"
                [gone] = _kinds(got, MessageDeleted)
                assert isinstance(gone, MessageDeleted) and gone.tombstone is not None
                assert (gone.message_id, gone.tombstone.deleted_at) == (
                    second.id,
                    tombstone.deleted_at,
                )
            marker = await alice.send(1, "everything before this has arrived")
            seen = await outsider.until(message_event(marker.id))
            assert _kinds(seen, *ANNOTATIONS) == []
        # bob's client was offline through all of it: the resume brings each change once
        async with SseReader(server.url, _token(bob), last_event_id=bob_offline_at) as resumed:
            got = await resumed.until(lambda e: isinstance(e, MessageDeleted))
            end = await alice.send(group.id, "after the resume")
            got += await resumed.until(message_event(end.id))
        edits = _kinds(got, MessageEdited)
        assert [e.message.text for e in edits if isinstance(e, MessageEdited)] == ["a stray fix"]
        deletions = _kinds(got, MessageDeleted)
        assert [e.message_id for e in deletions if isinstance(e, MessageDeleted)] == [second.id]
        # the deleted text is not replayed: its "message" event left the log with it
        texts = [
            e.message.text for e in _kinds(got, MessageCreated) if isinstance(e, MessageCreated)
        ]
        assert "something to take back" not in texts
        page = await bob.history(group.id)
        by_id = {m.id: m for m in page.messages}
        assert by_id[first.id].text == "a stray fix" and by_id[first.id].edited_at is not None
        assert by_id[second.id].deleted_at is not None and by_id[second.id].text == ""
        # others' messages: 403 typed errors; an outsider gets the answer of an unknown id
        not_mine = await _refused(bob.edit(first.id, "bob was here"))
        assert not_mine.code == ErrorCode.FORBIDDEN and "your own" in not_mine.message
        assert (await _refused(bob.delete_message(first.id))).code == ErrorCode.FORBIDDEN
        unknown = await _refused(carol.edit(10**12, "x"))
        for attempt in (
            carol.edit(first.id, "x"),
            carol.delete_message(first.id),
            carol.edits(first.id),
            carol.react(first.id, "👍"),
            carol.pin(first.id),
        ):
            refused = await _refused(attempt)
            assert (refused.code, refused.message) == (unknown.code, unknown.message)


async def test_earlier_texts_are_kept_for_the_author_and_admins_only(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Issue 12 item 1: the history endpoint lists every text, oldest first, for the
    author and an admin; another member gets 403."""
    srv = server_factory(args=["--admins", "root"])
    async with (
        _client(srv, "alice") as alice,
        _client(srv, "bob") as bob,
        _client(srv, "root") as root,
    ):
        message = await alice.send(1, "one")
        await alice.edit(message.id, "two")
        await alice.edit(message.id, "two")  # the same text: no new version
        await alice.edit(message.id, "three")
        for reader in (alice, root):
            history = await reader.edits(message.id)
            assert [v.text for v in history.versions] == ["one", "two", "three"]
            assert history.versions[0].at == message.created_at
        refused = await _refused(bob.edits(message.id))
        assert refused.code == ErrorCode.FORBIDDEN
        # an admin deletes anyone's message; the earlier texts go with it
        await root.delete_message(message.id)
        assert [v.text for v in (await alice.edits(message.id)).versions] == [""]


async def test_edit_window_is_crossed_by_one_second_and_zero_turns_editing_off(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Issue 12 item 1: with ``--edit-window 60`` a message can be edited 60 s after it was
    sent, not 61 s; with 0 never."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock, args=["--edit-window", "60"])
    async with _client(srv, "alice") as alice:
        message = await alice.send(1, "typo")
        srv.set_time(T0 + 60)
        assert (await alice.edit(message.id, "fixed")).text == "fixed"
        srv.set_time(T0 + 61)
        late = await _refused(alice.edit(message.id, "too late"))
        assert late.code == ErrorCode.FORBIDDEN and late.limit == 60
        assert "1 min" in late.message
    off = server_factory(args=["--edit-window", "0"])
    async with _client(off, "alice") as alice:
        message = await alice.send(1, "typo")
        refused = await _refused(alice.edit(message.id, "fixed"))
        assert refused.code == ErrorCode.FORBIDDEN and "turned off" in refused.message


async def test_a_deleted_messages_file_is_collected_when_nothing_else_links_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 12 items 2 and 7: deleting a message takes its files; an upload no other
    message carries is gone (download refused, bytes removed), one that another message
    still carries stays. A deleted thread root keeps its comments reachable."""
    lone = tmp_path / "lone.txt"
    lone.write_bytes(b"only on the deleted message\n")
    shared = tmp_path / "shared.txt"
    shared.write_bytes(b"on two messages\n")
    async with _client(server, "alice") as alice, _client(server, "bob") as bob:
        a = await alice.upload(lone)
        b = await alice.upload(shared)
        with_lone = await alice.send(1, "a file", attachments=[a.id])
        first_shared = await alice.send(1, "shared once", attachments=[b.id])
        await alice.send(1, "shared twice", attachments=[b.id])
        comment = await bob.comment(with_lone.id, "nice file")
        blob = server.data_dir / "files" / a.sha256[:2] / a.sha256[2:4] / a.sha256
        assert blob.exists()
        tombstone = await alice.delete_message(with_lone.id)
        assert tombstone.attachments == [] and tombstone.comment_count == 1
        assert not blob.exists()
        for reader in (alice, bob):
            refused = await _refused(reader.download(a.id, tmp_path / "again.txt"))
            assert refused.code == ErrorCode.FORBIDDEN
        await alice.delete_message(first_shared.id)
        saved = await bob.download(b.id, tmp_path / "copy.txt")
        assert saved.read_bytes() == shared.read_bytes()
        files = await bob.chat_files(1)
        assert [f.id for f in files.files] == [b.id]
        thread = await bob.thread(with_lone.id)
        assert thread.root.deleted_at is not None and thread.root.text == ""
        assert [c.id for c in thread.comments] == [comment.id]
        # deleting twice answers the tombstone again
        again = await alice.delete_message(with_lone.id)
        assert again.deleted_at == tombstone.deleted_at


async def test_a_reply_carries_a_quote_and_a_hidden_message_is_refused_like_an_unknown(
    server: ServerProcess,
) -> None:
    """Issue 12 item 3: history and the live event carry the excerpt (author, first line,
    id); a message the sender cannot see is refused with the answer of an unknown id."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "carol") as carol,
    ):
        long_line = "x" * (limits.QUOTE_MAX + 20)
        original = await alice.send(1, f"{long_line}\nsecond line")
        short = await alice.send(1, "  lunch at noon?  \nwho comes")
        async with SseReader(server.url, _token(alice)) as events:
            reply = await bob.send(1, "me!", reply_to=short.id)
            _, event = (await events.until(message_event(reply.id)))[-1]
        assert isinstance(event, MessageCreated) and event.message.reply_to is not None
        quote = event.message.reply_to
        assert (quote.id, quote.author, quote.text) == (short.id, "alice", "lunch at noon?")
        long_reply = await bob.send(1, "indeed", reply_to=original.id)
        assert long_reply.reply_to is not None
        assert len(long_reply.reply_to.text) == limits.QUOTE_MAX
        assert long_reply.reply_to.text.endswith("…")
        page = await carol.history(1)
        quoted = {m.id: m.reply_to for m in page.messages}
        assert quoted[reply.id] == quote
        # a message in a chat bob is not in, in another chat of his, and an unknown one
        private = await alice.open_direct("carol")
        hidden = await alice.send(private.id, "between alice and carol")
        group = await bob.create_chat("bobs")
        unknown = await _refused(bob.send(1, "?", reply_to=10**12))
        assert unknown.code == ErrorCode.FORBIDDEN
        for target, chat_id in ((hidden.id, 1), (short.id, group.id)):
            refused = await _refused(bob.send(chat_id, "?", reply_to=target))
            assert (refused.code, refused.message) == (unknown.code, unknown.message)
        # the original deleted: the quote says so and keeps no text
        await alice.delete_message(short.id)
        after = await carol.message(reply.id)
        assert after.reply_to is not None
        assert (after.reply_to.deleted, after.reply_to.text) == (True, "")


async def test_reactions_limits_counts_and_a_toggle_twice_leaves_nothing(
    server: ServerProcess,
) -> None:
    """Issue 12 items 4 and 7: one of each kind per user, 20 kinds per message (the 21st
    refused), a reaction of 16 code points accepted and 17 refused, control characters
    and spaces refused; counts and who reacted in history; ``reaction`` events reach the
    members and not the outsider; toggled twice, a reaction is gone."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "carol") as carol,
    ):
        group = await alice.create_chat("team")
        await alice.invite(group.id, "bob")
        message = await alice.send(group.id, "vote")
        async with (
            SseReader(server.url, _token(alice)) as events,
            SseReader(server.url, _token(carol)) as outsider,
        ):
            await alice.react(message.id, "👍")
            await alice.react(message.id, "👍")  # once per user
            listed = await bob.react(message.id, "👍")
            assert [(r.emoji, r.count, r.users) for r in listed.reactions] == [
                ("👍", 2, ["alice", "bob"])
            ]
            got = await events.take(2, lambda e: isinstance(e, ReactionChanged))
            assert [(e.login, e.added) for e in got if isinstance(e, ReactionChanged)] == [
                ("alice", True),
                ("bob", True),
            ]
            marker = await alice.send(1, "marker")
            assert _kinds(await outsider.until(message_event(marker.id)), *ANNOTATIONS) == []
        page = await bob.history(group.id)
        assert page.messages[-1].reactions == listed.reactions
        # toggled twice: gone
        await bob.toggle_reaction(message.id, "🎉")
        assert any(r.emoji == "🎉" for r in (await bob.message(message.id)).reactions)
        await bob.toggle_reaction(message.id, "🎉")
        assert [r.emoji for r in (await bob.message(message.id)).reactions] == ["👍"]
        # 20 kinds, not 21
        for n in range(1, limits.MAX_REACTIONS_PER_MESSAGE):
            await alice.react(message.id, f"k{n}")
        assert len((await alice.message(message.id)).reactions) == 20
        over = await _refused(alice.react(message.id, f"k{limits.MAX_REACTIONS_PER_MESSAGE}"))
        assert over.code == ErrorCode.CONFLICT and over.limit == 20
        await bob.react(message.id, "k1")  # an existing kind is still fine
        # length and characters
        other = await alice.send(group.id, "lengths")
        longest = "👍" * limits.MAX_REACTION
        assert (await alice.react(other.id, longest)).reactions[0].emoji == longest
        too_long = await _refused(alice.react(other.id, longest + "👍"))
        assert too_long.code == ErrorCode.INVALID
        for bad in ("a b", "ok\x07", "\u200b"):
            assert (await _refused(alice.react(other.id, bad))).code == ErrorCode.INVALID
        assert (await alice.react(other.id, "👨\u200d👩\u200d👧")).reactions[-1].count == 1


async def test_pins_by_the_owner_listed_per_chat_with_events(server: ServerProcess) -> None:
    """Issue 12 item 5: the owner pins and unpins, a member may not, every member lists the
    pins, events reach the members and not the outsider."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "carol") as carol,
    ):
        group = await alice.create_chat("team")
        await alice.invite(group.id, "bob")
        first = await bob.send(group.id, "the plan")
        second = await alice.send(group.id, "the date")
        async with (
            SseReader(server.url, _token(bob)) as events,
            SseReader(server.url, _token(carol)) as outsider,
        ):
            pin = await alice.pin(first.id)
            assert (pin.message.id, pin.pinned_by) == (first.id, "alice")
            await alice.pin(second.id)
            refused = await _refused(bob.pin(first.id))
            assert refused.code == ErrorCode.FORBIDDEN and "owner" in refused.message
            assert [p.message.id for p in (await bob.pins(group.id)).pins] == [
                second.id,
                first.id,
            ]
            await alice.unpin(second.id)
            got = await events.take(3, lambda e: isinstance(e, PinChanged))
            assert [(e.message_id, e.pinned) for e in got if isinstance(e, PinChanged)] == [
                (first.id, True),
                (second.id, True),
                (second.id, False),
            ]
            marker = await alice.send(1, "marker")
            assert _kinds(await outsider.until(message_event(marker.id)), *ANNOTATIONS) == []
        assert [p.message.id for p in (await bob.pins(group.id)).pins] == [first.id]
        assert (await _refused(carol.pins(group.id))).code == ErrorCode.FORBIDDEN
        # a deleted message leaves the pins
        await bob.delete_message(first.id)
        assert (await alice.pins(group.id)).pins == []


async def test_a_disappeared_message_stays_disappeared(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Visibility: once a message disappeared for a reader, nothing about it reaches them
    again; a reader who still has it (offline when it was posted) may react, and only
    they hear of it."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock, args=["--message-ttl", "5"])
    async with (
        _client(srv, "alice") as alice,
        _client(srv, "bob") as bob,
        _client(srv, "carol") as carol,
    ):
        async with SseReader(srv.url, _token(bob)) as events:
            message = await alice.send(1, "soon gone")  # carol is offline: her copy waits
            await events.until(message_event(message.id))
            srv.set_time(T0 + 100)
            await events.until(lambda e: isinstance(e, MessageDeleted))
            unknown = await _refused(bob.react(10**12, "👍"))
            for attempt in (bob.react(message.id, "👍"), alice.edit(message.id, "back?")):
                refused = await _refused(attempt)
                assert (refused.code, refused.message) == (unknown.code, unknown.message)
            page = await carol.history(1)  # delivered to carol now: hers lives on
            assert message.id in [m.id for m in page.messages]
            await carol.react(message.id, "👀")
            marker = await bob.send(1, "marker")
            got = await events.until(message_event(marker.id))
        assert _kinds(got, MessageEdited, ReactionChanged) == []


async def test_the_plain_client_edits_deletes_replies_reacts_and_pins(
    plain: StartPlain, server: ServerProcess
) -> None:
    """Issue 12 items 6 and 7 through the plain client: "(edited)", the tombstone, the
    reply quote and reaction counts in its lines, each edit and deletion printed once, the
    pins of a chat; carol, who is not in the chat, prints none of it."""
    alice, carol = await plain(), await plain()
    alice.send(f"/auth alice {PASSWORD}")
    await alice.expect("logged in as alice")
    carol.send(f"/auth carol {PASSWORD}")
    await carol.expect("logged in as carol")
    async with _client(server, "bob") as bob:
        alice.send("/create team")
        await alice.expect("created team")
        alice.send("/invite bob team")
        await alice.expect("bob is now in team")
        alice.send("/send_chat team hello world")
        line = await alice.expect("hello world")
        first = int(line.split("#", 1)[1].split(" ", 1)[0])
        team = (await bob.message(first)).chat_id
        reply = await bob.send(team, "hi!", reply_to=first)
        quoted = await alice.expect(f"#{reply.id} ")
        assert f'bob: ↪ alice #{first}: "hello world" hi!' in quoted
        await bob.react(first, "👍")
        await alice.expect(f"bob reacted 👍 on #{first}: 👍 1")
        alice.send(f"/edit {first} hello there")
        edited = await alice.expect("hello there")
        assert edited.endswith("hello there (edited) [👍 1]"), edited
        alice.send(f"/react {first} 🎉")
        # the answer or alice's own event, whichever comes first, and only one of them
        await alice.expect(f"on #{first}: 👍 1 🎉 1")
        alice.send(f"/unreact {first} 🎉")
        taken = await alice.expect(f"#{first}: 👍 1")
        assert taken.endswith(f"on #{first}: 👍 1"), taken
        alice.send(f"/pin {reply.id}")
        await alice.expect(f"pinned #{reply.id} in team")
        alice.send("/pins team")
        await alice.expect("pinned in team: 1")
        pin_row = await alice.expect(f"#{reply.id}")
        assert "bob" in pin_row and "alice" in pin_row and "hi!" in pin_row
        alice.send(f"/delete {first}")
        await alice.expect(f"#{first} in team")  # the answer or the event, whichever is first
        alice.send("/history team 5")
        gone = await alice.expect(f"#{first} team")
        assert gone.endswith("alice: (message deleted)"), gone
        answer = await alice.expect(f"#{reply.id} team")
        assert f"↪ alice #{first}: (deleted) hi!" in answer
        alice.send("/send the end")
        await carol.expect("the end")
    assert await alice.finish() == 0
    assert await carol.finish() == 0
    # the deletion and each of alice's reactions were printed once (answer and event say
    # the same); bob's reaction once
    assert sum(f"message #{first} in team" in line for line in alice.lines) == 1
    assert sum(f"on #{first}: 👍 1 🎉 1" in line for line in alice.lines) == 1
    assert sum(line.endswith(f"on #{first}: 👍 1") for line in alice.lines) == 2
    for line in carol.lines:
        assert "team" not in line and "hello" not in line and "react" not in line, line


async def test_a_nul_character_is_refused_in_a_send_and_an_edit(server: ServerProcess) -> None:
    """Bad input: text holding NUL (U+0000), which PostgreSQL cannot store, is a typed
    400 on both stores (schemathesis found a 500 on the edit); the message is unchanged."""
    async with _client(server, "alice") as alice:
        message = await alice.send(1, "clean")
        for attempt in (alice.send(1, "a\x00b"), alice.edit(message.id, "a\x00b")):
            refused = await _refused(attempt)
            assert refused.code == ErrorCode.INVALID and "NUL" in refused.message
        assert (await alice.message(message.id)).text == "clean"


async def test_a_banned_user_may_not_edit_react_or_pin_but_may_delete(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Moderation holds on every path: a ban that stops sending stops edits, reactions
    and pins too (``403 banned`` with ``until``); deleting one's own message still works."""
    srv = server_factory(args=["--admins", "root"])
    async with _client(srv, "alice") as alice, _client(srv, "root") as root:
        message = await alice.send(1, "before the ban")
        await root.admin_ban("alice", 3600, "spam")
        for attempt in (
            alice.edit(message.id, "sneaky"),
            alice.react(message.id, "👍"),
            alice.pin(message.id),
        ):
            refused = await _refused(attempt)
            assert refused.code == ErrorCode.BANNED and refused.until is not None
        assert (await alice.delete_message(message.id)).deleted_at is not None


async def test_a_reply_shows_no_quote_of_an_original_that_disappeared_for_the_reader(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Visibility: the quote of a reply carries the original's first line only to readers
    who may still see the original; for the others it reads as gone (``deleted``)."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock, args=["--message-ttl", "5"])
    async with (
        _client(srv, "alice") as alice,
        _client(srv, "bob") as bob,
        _client(srv, "carol") as carol,
    ):
        async with SseReader(srv.url, _token(bob)) as events:
            original = await alice.send(1, "the plan")  # only bob is online
            srv.set_time(T0 + 4)
            reply = await bob.send(1, "agreed", reply_to=original.id)
            srv.set_time(T0 + 100)
            await events.take(2, lambda e: isinstance(e, MessageDeleted))
        # alice (its author) had the original until T0+5; the reply waited for her
        mine = {m.id: m for m in (await alice.history(1)).messages}
        assert original.id not in mine and reply.id in mine
        gone = mine[reply.id].reply_to
        assert gone is not None and (gone.id, gone.deleted, gone.text) == (original.id, True, "")
        # carol was offline for both: she still has the original, and its quote
        hers = {m.id: m for m in (await carol.history(1)).messages}
        assert original.id in hers
        quote = hers[reply.id].reply_to
        assert quote is not None and (quote.text, quote.deleted) == ("the plan", False)


async def test_the_library_stream_of_a_device_that_was_offline_brings_each_change_once(
    server: ServerProcess,
) -> None:
    """Issue 12 item 7 through the client library's own event stream: a second device
    of bob's, offline while alice edited, deleted, reacted and pinned, resumes from its
    last event id and gets each of those changes once, decoded as typed events."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "bob", new=False) as tablet,
    ):
        group = await alice.create_chat("team")
        await alice.invite(group.id, "bob")
        first = await bob.send(group.id, "one")
        second = await bob.send(group.id, "two")
        assert tablet.session is not None
        offline_at = tablet.session.last_event_id
        await bob.edit(first.id, "one, edited")
        await alice.react(first.id, "👍")
        await alice.pin(first.id)
        await bob.delete_message(second.id)
        end = await alice.send(group.id, "the end")
        seen: list[Event] = []
        stream = tablet.events(offline_at)
        try:
            async with asyncio.timeout(30):
                async for item in stream:
                    if isinstance(item, MessageCreated) and item.message.id == end.id:
                        break
                    if isinstance(item, ANNOTATIONS):
                        seen.append(item)
        finally:
            await stream.aclose()
    assert [type(e).__name__ for e in seen] == [
        "MessageEdited", "ReactionChanged", "PinChanged", "MessageDeleted",
    ]  # fmt: skip
    edit, reaction, pin, gone = seen
    assert isinstance(edit, MessageEdited) and edit.message.text == "one, edited"
    assert isinstance(reaction, ReactionChanged) and reaction.reactions[0].users == ["alice"]
    assert isinstance(pin, PinChanged) and pin.pinned and pin.by == "alice"
    assert isinstance(gone, MessageDeleted) and gone.tombstone is not None


async def test_search_finds_an_edit_by_its_new_words_and_a_deleted_message_not_at_all(
    server: ServerProcess,
) -> None:
    """Issue 12 ("what it must show"): a deleted message disappears from search, and an
    edited one is found by its new text only, on both stores."""
    async with _client(server, "alice") as alice, _client(server, "bob") as bob:
        kept = await alice.send(1, "zebrafish meeting at noon")
        edited = await alice.send(1, "platypus typo here")
        deleted = await alice.send(1, "zebrafish secret plans")
        assert {h.message.id for h in (await bob.search("zebrafish")).hits} == {
            kept.id,
            deleted.id,
        }
        await alice.edit(edited.id, "wombat fixed here")
        await alice.delete_message(deleted.id)
        assert [h.message.id for h in (await bob.search("zebrafish")).hits] == [kept.id]
        assert (await bob.search("secret")).hits == []
        assert (await bob.search("platypus")).hits == []
        assert [h.message.id for h in (await bob.search("wombat")).hits] == [edited.id]


async def test_a_replys_quote_follows_the_edit_and_the_deletion_of_its_original(
    server: ServerProcess,
) -> None:
    """Issue 12 item 3: when the original is edited (its first line) or deleted, each
    reply's quote follows in history, live (``message_updated`` of the reply, none for an
    edit below the first line) and in what a resume replays ("deleted" for a tombstone)."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "carol") as carol,
    ):
        assert carol.session is not None
        offline_at = carol.session.last_event_id
        edited = await alice.send(1, "lunch at noon?")
        deleted = await alice.send(1, "dinner at eight?")
        to_edited = await bob.send(1, "me!", reply_to=edited.id)
        to_deleted = await bob.send(1, "me too", reply_to=deleted.id)

        def updated(message_id: int) -> Callable[[Event], bool]:
            return lambda e: isinstance(e, MessageUpdated) and e.message.id == message_id

        async with SseReader(server.url, _token(bob)) as events:
            await alice.edit(edited.id, "lunch at one?\nsee you")
            got = await events.until(updated(to_edited.id))
            await alice.edit(edited.id, "lunch at one?\nsee you there")
            await alice.delete_message(deleted.id)
            got += await events.until(updated(to_deleted.id))
        updates = [e.message for e in _kinds(got, MessageUpdated) if isinstance(e, MessageUpdated)]
        assert [m.id for m in updates] == [to_edited.id, to_deleted.id]
        first, second = (m.reply_to for m in updates)
        assert first is not None and (first.text, first.deleted) == ("lunch at one?", False)
        assert second is not None and (second.text, second.deleted) == ("", True)
        page = {m.id: m.reply_to for m in (await carol.history(1)).messages}
        assert page[to_edited.id] == first and page[to_deleted.id] == second
        async with SseReader(server.url, _token(carol), last_event_id=offline_at) as resumed:
            replay = await resumed.until(updated(to_deleted.id))
        created = {
            e.message.id: e.message.reply_to
            for e in _kinds(replay, MessageCreated)
            if isinstance(e, MessageCreated)
        }
        assert created[to_edited.id] == first and created[to_deleted.id] == second
        assert b"lunch at noon" not in b"".join(encode_event(e) for _, e in replay)
        assert b"dinner" not in b"".join(encode_event(e) for _, e in replay)


async def test_a_resume_replays_the_current_text_of_an_edited_message(
    server: ServerProcess,
) -> None:
    """Issue 12 item 7: a device that was offline while a message was posted and edited
    gets, on resume, the message (and its mention, pin and thread notices) with the text
    it has now, then the edit; the text it had before is replayed nowhere."""
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "bob", new=False) as tablet,
    ):
        group = await alice.create_chat("team")
        await alice.invite(group.id, "bob")
        root = await bob.send(group.id, "a thread")
        assert tablet.session is not None
        offline_at = tablet.session.last_event_id
        message = await alice.send(group.id, "@bob the code is 4711")
        await alice.pin(message.id)
        comment = await alice.comment(root.id, "in the thread: 4711")
        await alice.edit(message.id, "@bob the code is on paper")
        await alice.edit(comment.id, "in the thread: on paper")
        async with SseReader(server.url, _token(tablet), last_event_id=offline_at) as resumed:
            got = await resumed.until(
                lambda e: isinstance(e, MessageEdited) and e.message.id == comment.id
            )
        assert b"4711" not in b"".join(encode_event(e) for _, e in got)
        [created] = [
            e for e in _kinds(got, MessageCreated)
            if isinstance(e, MessageCreated) and e.message.id == message.id
        ]  # fmt: skip
        assert isinstance(created, MessageCreated)
        assert created.message.text == "@bob the code is on paper"
        assert created.message.edited_at is not None
        [mention] = _kinds(got, Mentioned)
        assert isinstance(mention, Mentioned) and mention.message.text == created.message.text
        [pin] = _kinds(got, PinChanged)
        assert isinstance(pin, PinChanged) and pin.pin is not None
        assert pin.pin.message.text == created.message.text
        [thread] = _kinds(got, ThreadActivity)
        assert isinstance(thread, ThreadActivity)
        assert thread.comment.text == "in the thread: on paper"
        edits = [e.message.id for e in _kinds(got, MessageEdited) if isinstance(e, MessageEdited)]
        assert edits == [message.id, comment.id]

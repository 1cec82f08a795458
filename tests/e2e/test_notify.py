"""Mentions, mute, typing and read receipts against the real server on both stores
(issue 12 items 2 to 5), through the client library, with an outsider who sees none of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_client import Client
from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    ChatUpdated,
    ErrorCode,
    Event,
    Mentioned,
    MessageCreated,
    ReadReceipt,
    Typing,
    limits,
)
from tests.support.server import ServerProcess
from tests.support.wire import SseReader

PASSWORD = "password1"
T0 = 1_764_633_600.0


async def _users(clients: Callable[[], Client], *logins: str) -> list[Client]:
    users = []
    for login in logins:
        client = clients()
        await client.register(login, PASSWORD)
        users.append(client)
    return users


def _token(client: Client) -> str:
    assert client.token is not None
    return client.token


def _created(message_id: int) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, MessageCreated) and e.message.id == message_id


async def test_mentions_count_in_a_muted_chat_and_reach_only_the_mentioned(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """Issue 12 items 2 and 3: bob mutes the team on one device and the other hears of it;
    ``@bob`` still gives him a ``mention`` event and counts in /chats and /unread; carol,
    outside the team, gets nothing even when named."""
    alice, bob, carol = await _users(clients, "alice", "bob", "carol")
    bob_phone = clients()
    await bob_phone.login("bob", PASSWORD)
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    async with (
        SseReader(server.url, _token(bob_phone)) as phone,
        SseReader(server.url, _token(bob)) as bob_events,
        SseReader(server.url, _token(carol)) as carol_events,
    ):
        muted = await bob.mute(team.id, "all")
        assert muted.mute == "all"
        synced = await phone.take(1, lambda e: isinstance(e, ChatUpdated))
        assert synced == [ChatUpdated(chat=muted)]
        hey = await alice.send(team.id, "@bob look, @carol and @nobody too")
        [mention] = await bob_events.take(1, lambda e: isinstance(e, Mentioned))
        assert mention == Mentioned(chat_id=team.id, message=hey)
        end = await alice.send(GENERAL_CHAT_ID, "sentinel")
        seen = [e for _, e in await carol_events.until(_created(end.id))]
        assert not any(isinstance(e, Mentioned) for e in seen)
    chat = next(c for c in (await bob.chats()).chats if c.id == team.id)
    assert (chat.mute, chat.mentions, chat.unread) == ("all", 1, 1)
    unread = next(c for c in (await bob.unread()).chats if c.chat.id == team.id)
    assert unread.chat.mentions == 1
    [listed] = (await bob.mentions()).mentions
    assert (listed.message.id, listed.chat_name, listed.unread) == (hey.id, "team", True)
    assert (await carol.mentions()).mentions == []
    await bob.mark_read(team.id, hey.id)
    assert (await bob.chat(team.id)).mentions == 0
    [read] = (await bob.mentions()).mentions
    assert read.unread is False
    # mute is a setting of bob's alone; off again
    assert (await alice.chat(team.id)).mute == "off"
    assert (await bob_phone.mute(team.id, "off")).mute == "off"


async def test_at_all_is_the_owners_choice_and_only_in_groups(
    clients: Callable[[], Client],
) -> None:
    """Issue 12 item 2: ``@all`` mentions every member but the author in a group chat while
    its owner allows it; never in the general chat; nobody mentions themselves."""
    alice, bob, carol = await _users(clients, "alice", "bob", "carol")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    await alice.invite(team.id, "carol")
    first = await alice.send(team.id, "@all standup in 5, @alice included")
    for member in (bob, carol):
        assert [m.message.id for m in (await member.mentions()).mentions] == [first.id]
    assert (await alice.mentions()).mentions == []
    with pytest.raises(ApiError) as refused:
        await bob.chat_options(team.id, mention_all=False)
    assert refused.value.code == ErrorCode.FORBIDDEN
    assert (await alice.chat_options(team.id, mention_all=False)).mention_all is False
    await alice.send(team.id, "@all once more")
    await alice.send(GENERAL_CHAT_ID, "@all in general")
    assert [m.message.id for m in (await bob.mentions()).mentions] == [first.id]
    assert (await bob.chat(team.id)).mentions == 1


async def test_mentions_page_newest_first(clients: Callable[[], Client]) -> None:
    """Issue 12 item 2: ``/mentions`` pages newest first by ``next_before``."""
    alice, bob = await _users(clients, "alice", "bob")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    sent = [await alice.send(team.id, f"@bob ping {n}") for n in range(5)]
    got: list[int] = []
    before = None
    while True:
        page = await bob.mentions(before=before, limit=2)
        got += [m.message.id for m in page.mentions]
        if page.next_before is None:
            break
        before = page.next_before
    assert got == [m.id for m in reversed(sent)]


async def test_typing_is_ephemeral_rate_limited_and_for_members_only(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Issue 12 item 4: a typing notice reaches the other members with its expiry, is never
    replayed on resume, and one per 3 s goes out (the next within 3 s is dropped); an
    outsider can neither send nor see one."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock)
    async with Client(srv.url) as alice, Client(srv.url) as bob, Client(srv.url) as carol:
        for client, login in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await client.register(login, PASSWORD)
        team = await alice.create_chat("team")
        await alice.invite(team.id, "bob")
        before = (await alice.send(team.id, "before typing")).id
        async with (
            SseReader(srv.url, _token(alice)) as alice_events,
            SseReader(srv.url, _token(carol)) as carol_events,
        ):
            first = await bob.typing(team.id)
            assert (first.sent, first.expires_at) == (True, T0 + limits.TYPING_TTL_SECONDS)
            ident, event = await alice_events.next()
            assert ident is None  # no id: never replayed
            assert event == Typing(chat_id=team.id, login="bob", expires_at=first.expires_at)
            srv.set_time(T0 + limits.TYPING_INTERVAL_SECONDS - 0.5)
            dropped = await bob.typing(team.id)
            assert (dropped.sent, dropped.expires_at) == (False, first.expires_at)
            srv.set_time(T0 + limits.TYPING_INTERVAL_SECONDS)
            again = await bob.typing(team.id)
            assert again.sent is True
            mark = await bob.send(team.id, "after typing")
            events = [e for _, e in await alice_events.until(_created(mark.id))]
            typings = [e for e in events if isinstance(e, Typing)]
            assert typings == [
                Typing(
                    chat_id=team.id,
                    login="bob",
                    expires_at=T0 + limits.TYPING_INTERVAL_SECONDS + limits.TYPING_TTL_SECONDS,
                )
            ]
            with pytest.raises(ApiError) as refused:
                await carol.typing(team.id)
            assert refused.value.code == ErrorCode.FORBIDDEN
            end = await alice.send(GENERAL_CHAT_ID, "sentinel")
            seen = [e for _, e in await carol_events.until(_created(end.id))]
            assert not any(isinstance(e, Typing) for e in seen)
        # a resume from before the typing replays the messages and no typing at all
        async with SseReader(srv.url, _token(alice), last_event_id=0) as resumed:
            replay = [e for _, e in await resumed.until(_created(mark.id))]
        replayed = [e.message.id for e in replay if isinstance(e, MessageCreated)]
        assert before in replayed and replayed[-1] == mark.id
        assert not any(isinstance(e, Typing) for e in replay)


async def test_seen_by_follows_read_cursors_and_privacy(clients: Callable[[], Client]) -> None:
    """Issue 12 item 5: "seen by" lists the members whose read cursor passed the message,
    never the author, never one who hides their receipts; an outsider gets 403."""
    alice, bob, carol, dave = await _users(clients, "alice", "bob", "carol", "dave")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    await alice.invite(team.id, "carol")
    first = await alice.send(team.id, "did you read this?")
    second = await alice.send(team.id, "and this?")
    seen = await alice.seen_by(first.id)
    assert (seen.seen_by, seen.members, seen.chat_id) == ([], 3, team.id)
    await bob.mark_read(team.id, first.id)
    assert (await alice.seen_by(first.id)).seen_by == ["bob"]
    assert (await alice.seen_by(second.id)).seen_by == []
    assert (await carol.set_privacy(hide_read_receipts=True)).hide_read_receipts is True
    assert (await carol.privacy()).hide_read_receipts is True
    await carol.mark_read(team.id, second.id)
    assert (await bob.seen_by(first.id)).seen_by == ["bob"]  # carol hides hers
    await carol.set_privacy(hide_read_receipts=False)
    assert (await bob.seen_by(first.id)).seen_by == ["bob", "carol"]
    assert (await bob.seen_by(second.id)).seen_by == ["carol"]
    with pytest.raises(ApiError) as refused:
        await dave.seen_by(first.id)
    assert refused.value.code == ErrorCode.FORBIDDEN


async def test_an_edit_reads_mentions_again_and_tells_each_user_once(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """An edit that adds ``@bob`` mentions him: one ``mention`` event, the count in /chats
    and /unread, a row in /mentions; editing again with the same mention tells him nothing
    new; editing the mention away takes it out of the counts, the list and the log (his
    devices get the chat's counts), while carol, still named, keeps hers."""
    alice, bob, carol = await _users(clients, "alice", "bob", "carol")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    await alice.invite(team.id, "carol")
    assert bob.session is not None
    offline_at = bob.session.last_event_id
    async with SseReader(server.url, _token(bob)) as bob_events:
        message = await alice.send(team.id, "hello team")
        assert (await bob.chat(team.id)).mentions == 0
        await alice.edit(message.id, "hello @bob")
        [mention] = await bob_events.take(1, lambda e: isinstance(e, Mentioned))
        assert isinstance(mention, Mentioned)
        assert (mention.chat_id, mention.message.id) == (team.id, message.id)
        assert mention.message.text == "hello @bob"
        await alice.edit(message.id, "hello @bob, again")
        await alice.edit(message.id, "hello @bob and @carol")
        marker = await alice.send(team.id, "marker")
        seen = [e for _, e in await bob_events.until(_created(marker.id))]
        assert not any(isinstance(e, Mentioned) for e in seen)
    assert (await bob.chat(team.id)).mentions == 1
    unread = next(c for c in (await bob.unread()).chats if c.chat.id == team.id)
    assert unread.chat.mentions == 1
    assert [m.message.id for m in (await bob.mentions()).mentions] == [message.id]
    assert [m.message.id for m in (await carol.mentions()).mentions] == [message.id]
    async with SseReader(server.url, _token(bob)) as bob_events:
        await alice.edit(message.id, "hello @carol")
        [update] = await bob_events.take(
            1, lambda e: isinstance(e, ChatUpdated) and e.chat.id == team.id
        )
        assert isinstance(update, ChatUpdated) and update.chat.mentions == 0
    assert (await bob.chat(team.id)).mentions == 0
    unread = next(c for c in (await bob.unread()).chats if c.chat.id == team.id)
    assert unread.chat.mentions == 0
    assert (await bob.mentions()).mentions == []
    assert [m.message.id for m in (await carol.mentions()).mentions] == [message.id]
    assert (await carol.chat(team.id)).mentions == 1
    # a device of bob's that was offline all along hears of no mention at all
    async with SseReader(server.url, _token(bob), last_event_id=offline_at) as resumed:
        replay = [e for _, e in await resumed.until(_created(marker.id))]
    assert not any(isinstance(e, Mentioned) for e in replay)


async def test_a_mention_in_a_comment_counts_until_its_thread_is_read(
    clients: Callable[[], Client],
) -> None:
    """A comment that mentions bob counts in the chat's mention count (/chats, /unread) and
    is unread in /mentions until bob reads its thread; reading the chat does not read it."""
    alice, bob = await _users(clients, "alice", "bob")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    root = await bob.send(team.id, "the plan")
    comment = await alice.comment(root.id, "@bob one question")
    later = await alice.send(team.id, "a chat message after it")
    assert (await bob.chat(team.id)).mentions == 1
    unread = next(c for c in (await bob.unread()).chats if c.chat.id == team.id)
    assert unread.chat.mentions == 1
    [listed] = (await bob.mentions()).mentions
    assert (listed.message.id, listed.unread) == (comment.id, True)
    await bob.mark_read(team.id, later.id)  # past the comment's id: the chat, not the thread
    assert (await bob.chat(team.id)).mentions == 1
    await bob.mark_thread_read(root.id, comment.id)
    assert (await bob.chat(team.id)).mentions == 0
    [read] = (await bob.mentions()).mentions
    assert read.unread is False


async def test_seen_by_of_a_comment_follows_the_thread_read_cursors(
    clients: Callable[[], Client],
) -> None:
    """A comment's "seen by" lists the members whose read cursor of its thread passed it
    (the chat's cursor reads chat messages, not comments), never the author, never one who
    hides their receipts; an outsider gets 403."""
    alice, bob, carol, dave = await _users(clients, "alice", "bob", "carol", "dave")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    await alice.invite(team.id, "carol")
    root = await alice.send(team.id, "the plan")
    first = await alice.comment(root.id, "first comment")
    second = await alice.comment(root.id, "second comment")
    later = await alice.send(team.id, "a chat message after them")
    await bob.mark_read(team.id, later.id)
    assert (await alice.seen_by(first.id)).seen_by == []
    await bob.mark_thread_read(root.id, first.id)
    seen = await alice.seen_by(first.id)
    assert (seen.seen_by, seen.members, seen.chat_id) == (["bob"], 3, team.id)
    assert (await alice.seen_by(second.id)).seen_by == []
    await carol.set_privacy(hide_read_receipts=True)
    await carol.mark_thread_read(root.id, second.id)
    assert (await bob.seen_by(second.id)).seen_by == []
    await carol.set_privacy(hide_read_receipts=False)
    assert (await bob.seen_by(first.id)).seen_by == ["bob", "carol"]
    assert (await bob.seen_by(second.id)).seen_by == ["carol"]
    with pytest.raises(ApiError) as refused:
        await dave.seen_by(first.id)
    assert refused.value.code == ErrorCode.FORBIDDEN


async def test_a_read_tells_the_other_members_live_unless_receipts_are_hidden(
    server: ServerProcess,
) -> None:
    """Issue 12: a member's read cursor moving on sends the others a ``receipt`` event
    (ephemeral: no id, not replayed), so a "seen by" on screen follows; none for a user
    who hides their receipts, none to an outsider, none for a cursor that did not move."""
    async with (
        Client(server.url) as alice,
        Client(server.url) as bob,
        Client(server.url) as carol,
        Client(server.url) as dave,
    ):
        for client, login in ((alice, "alice"), (bob, "bob"), (carol, "carol"), (dave, "dave")):
            await client.register(login, PASSWORD)
        team = await alice.create_chat("team")
        await alice.invite(team.id, "bob")
        await alice.invite(team.id, "carol")
        first = await alice.send(team.id, "did you read this?")
        await carol.set_privacy(hide_read_receipts=True)
        async with (
            SseReader(server.url, _token(alice)) as alice_events,
            SseReader(server.url, _token(dave)) as dave_events,
        ):
            await bob.mark_read(team.id, first.id)
            ident, event = await alice_events.next()
            assert ident is None, "ephemeral"
            assert event == ReadReceipt(chat_id=team.id, login="bob", up_to=first.id)
            await bob.mark_read(team.id, first.id)  # not moved: nothing
            await carol.mark_read(team.id, first.id)  # hidden: nothing
            end = await bob.send(team.id, "sentinel")
            seen = [e for _, e in await alice_events.until(_created(end.id))]
            assert not any(isinstance(e, ReadReceipt) for e in seen), seen
            mark = await alice.send(GENERAL_CHAT_ID, "sentinel for dave")
            theirs = [e for _, e in await dave_events.until(_created(mark.id))]
            assert not any(isinstance(e, ReadReceipt) for e in theirs)
            # a thread's read cursor: its receipt names the thread (a comment's "seen by")
            root = await alice.send(team.id, "a thread")
            comment = await alice.comment(root.id, "a comment to read")
            await bob.mark_thread_read(root.id, comment.id)
            receipt = ReadReceipt(
                chat_id=team.id, login="bob", up_to=comment.id, thread_root=root.id
            )
            after = [e for _, e in await alice_events.until(lambda e: e == receipt)]
            assert not any(isinstance(e, ReadReceipt) and e != receipt for e in after), after
            await bob.mark_thread_read(root.id, comment.id)  # not moved: nothing
            await carol.mark_thread_read(root.id, comment.id)  # hidden: nothing
            end = await bob.send(team.id, "sentinel after the thread")
            seen = [e for _, e in await alice_events.until(_created(end.id))]
            assert not any(isinstance(e, ReadReceipt) for e in seen), seen
        async with SseReader(server.url, _token(alice), last_event_id=0) as resumed:
            replay = [e for _, e in await resumed.until(_created(end.id))]
        assert not any(isinstance(e, ReadReceipt) for e in replay)

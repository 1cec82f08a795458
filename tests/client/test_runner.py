"""CommandRunner: every command through the library, outputs a UI can render."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from messenger_client import Client
from messenger_client.commands import (
    CommandRunner,
    ErrorOut,
    ExitOut,
    InfoOut,
    MessageOut,
    Output,
    SessionOut,
    StatusOut,
    TableOut,
    UnreadOut,
)
from messenger_client.outputs import HelpOut
from messenger_protocol import ApiError, ErrorCode
from tests.support.server import ServerProcess

PASSWORD = "password1"


# --- without a server ------------------------------------------------------------


async def test_offline_commands_need_no_server(tmp_path: Path) -> None:
    async with Client("http://127.0.0.1:1") as client:
        runner = CommandRunner(client, downloads=tmp_path)
        assert await runner.run_line("/exit") == [ExitOut()]
        help_lines = await runner.run_line("/help")
        assert all(isinstance(o, InfoOut) for o in help_lines)
        assert any("/private <login> <text>" in o.text for o in help_lines)  # type: ignore[attr-defined]
        [private] = await runner.run_line("/help private")
        assert isinstance(private, HelpOut) and private.command == "private"
        assert private.text == "/private <login> <text> -- private message to a user"
        [usage] = await runner.run_line("/private")
        assert isinstance(usage, ErrorOut) and usage.code == "usage"
        [unauth] = await runner.run_line("hello")
        assert isinstance(unauth, ErrorOut) and unauth.code == "unauthorized"
        assert "/login" in unauth.text
        [down] = await runner.run_line("/login alice password1")
        assert isinstance(down, ErrorOut) and down.code == "offline"


# --- against the real server ---------------------------------------------------------

Runners = Callable[[str], Awaitable[CommandRunner]]


@pytest.fixture
async def runners(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Runners]:
    clients: list[Client] = []

    async def make(login: str) -> CommandRunner:
        client = Client(server.url)
        clients.append(client)
        runner = CommandRunner(client, downloads=tmp_path / f"downloads-{login}")
        [out] = await runner.run_line(f"/auth {login} {PASSWORD}")
        assert isinstance(out, SessionOut) and out.registered, out
        return runner

    yield make
    for client in clients:
        await client.close()


async def one(runner: CommandRunner, line: str) -> Output:
    outputs = await runner.run_line(line)
    assert len(outputs) == 1, outputs
    assert not isinstance(outputs[0], ErrorOut), outputs[0]
    return outputs[0]


def texts(outputs: list[Output]) -> list[str]:
    return [o.message.text for o in outputs if isinstance(o, MessageOut)]


async def test_messages_history_threads_and_unread(runners: Runners) -> None:
    alice, bob = await runners("alice"), await runners("bob")
    sent = await one(alice, "/send hello all")
    assert isinstance(sent, MessageOut) and sent.chat == "general"
    plain = await one(alice, "plain text goes to general")
    assert isinstance(plain, MessageOut) and plain.chat == "general"
    dm = await one(alice, "/private bob psst")
    assert isinstance(dm, MessageOut) and dm.chat == "@bob"
    comment = await one(bob, f"/comment #{sent.message.id} +1")
    assert isinstance(comment, MessageOut)
    assert comment.message.thread_root == sent.message.id
    thread = await bob.run_line(f"/thread {sent.message.id}")
    assert texts(thread) == ["hello all", "+1"]
    history = await bob.run_line("/history general 2")
    assert texts(history) == ["hello all", "plain text goes to general"]
    assert texts(await bob.run_line("/history @alice")) == ["psst"]
    unread = await bob.run_line("/unread")
    assert isinstance(unread[0], UnreadOut) and unread[0].total == 3
    assert [(c.chat, c.count) for c in unread[0].chats] == [("general", 2), ("@alice", 1)]
    assert "psst" in texts(unread)


async def test_group_chats_invites_links_and_requests(runners: Runners) -> None:
    alice, bob, carol = await runners("alice"), await runners("bob"), await runners("carol")
    assert "created team" in (await one(alice, "/create team")).text  # type: ignore[attr-defined]
    await one(alice, "/invite bob team")
    posted = await one(bob, "/send_chat team hi team")
    assert isinstance(posted, MessageOut) and posted.chat == "team"
    link = await one(alice, "/link team")
    assert isinstance(link, InfoOut) and "invite link for team" in link.text
    url = link.text.split(": ", 1)[1].split(" (key ")[0]
    joined = await one(carol, f"/join {url}")
    assert isinstance(joined, InfoOut) and "request" in joined.text
    approved = await one(alice, "/approve team carol")
    assert isinstance(approved, InfoOut) and "carol" in approved.text
    posted = await one(carol, "/send_chat team hello from carol")
    assert isinstance(posted, MessageOut)
    [error] = await carol.run_line("/approve team bob")
    assert isinstance(error, ErrorOut) and error.code in ("forbidden", "not_found")


async def test_join_with_the_chat_and_a_link_or_a_bare_key(runners: Runners) -> None:
    """Issue 9 item 3: /join <chat> <link> and /join <chat> <key> both file a request."""
    alice, bob, carol = await runners("alice"), await runners("bob"), await runners("carol")
    await one(alice, "/create team")
    first = await alice.client.create_link((await alice.resolve("team")).id)
    second = await alice.client.create_link(first.chat_id)
    by_link = await one(bob, f"/join team {first.link}")
    assert isinstance(by_link, InfoOut) and "join request sent" in by_link.text
    by_key = await one(carol, f"/join team {second.key}")
    assert isinstance(by_key, InfoOut) and "join request sent" in by_key.text
    pending = await alice.client.join_requests(first.chat_id)
    assert sorted(r.login for r in pending.requests) == ["bob", "carol"]


async def test_scheduled_messages(runners: Runners) -> None:
    alice = await runners("alice")
    scheduled = await one(alice, "/schedule +1h general later")
    assert isinstance(scheduled, InfoOut) and scheduled.text.startswith("scheduled #")
    scheduled_id = scheduled.text.split("#", 1)[1].split(" ", 1)[0]
    table = await one(alice, "/scheduled")
    assert isinstance(table, TableOut)
    assert [row[0] for row in table.rows] == [f"#{scheduled_id}"]
    cancelled = await one(alice, f"/cancel {scheduled_id}")
    assert isinstance(cancelled, InfoOut) and "cancelled" in cancelled.text


async def test_users_contacts_status_complaints(runners: Runners) -> None:
    alice, _bob = await runners("alice"), await runners("bob")
    users = await one(alice, "/users")
    assert isinstance(users, TableOut) and {"alice", "bob"} <= {r[0] for r in users.rows}
    await one(alice, "/add_contact bob")
    contacts = await one(alice, "/contacts")
    assert isinstance(contacts, TableOut) and [r[0] for r in contacts.rows] == ["bob"]
    await one(alice, "/del_contact bob")
    assert (await one(alice, "/contacts")).rows == ()  # type: ignore[attr-defined]
    status = await one(alice, "/status")
    assert isinstance(status, StatusOut) and status.status.user.login == "alice"


async def test_complaints(runners: Runners) -> None:
    alice, _bob = await runners("alice"), await runners("bob")
    complaint = await one(alice, "/complain bob rude")
    assert isinstance(complaint, InfoOut) and "complaint about bob" in complaint.text


async def test_files(runners: Runners, tmp_path: Path) -> None:
    alice, bob = await runners("alice"), await runners("bob")
    data = os.urandom(10_000)
    (tmp_path / "notes.bin").write_bytes(data)
    posted = await one(alice, f"/file {tmp_path / 'notes.bin'} @bob")
    assert isinstance(posted, MessageOut) and posted.chat == "@bob"
    [attachment] = posted.message.attachments
    files = await one(bob, "/files @alice")
    assert isinstance(files, TableOut) and files.rows[0][0] == attachment.id
    saved = await one(bob, f"/download {attachment.id} {tmp_path / 'got.bin'}")
    assert isinstance(saved, InfoOut)
    assert (tmp_path / "got.bin").read_bytes() == data
    [missing] = await alice.run_line(f"/file {tmp_path / 'nope.bin'}")
    assert isinstance(missing, ErrorOut) and missing.code == "local"


async def test_errors_come_back_as_outputs(runners: Runners) -> None:
    alice = await runners("alice")
    [error] = await alice.run_line("/send_chat nosuchchat hi")
    assert isinstance(error, ErrorOut) and error.code == "not_found"
    [error] = await alice.run_line("/thread 999999")
    # The server does not tell a missing message from one in a chat you are not in.
    assert isinstance(error, ErrorOut) and error.code in ("not_found", "forbidden")
    with pytest.raises(ApiError) as caught:  # the library itself raises
        await alice.client.thread(999999)
    assert caught.value.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN)

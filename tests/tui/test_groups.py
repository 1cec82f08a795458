"""Pilot tests of the group-chat dialogs and the join-request bar, against the real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from messenger_client import Client
from messenger_client.commands import parse_invite
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.groups import (
    JoinRequestBar,
    JoinRequestsScreen,
    JoinScreen,
    LinksScreen,
    MembersScreen,
    NewChatScreen,
    show_invite,
    show_links,
    show_requests,
)
from messenger_protocol import GENERAL_CHAT_ID, ApiError
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    click,
    other_user,
    screen_text,
    signed_in,
    until,
    until_true,
)


def notes(app: MessengerApp) -> str:
    """Every toast the app shows, as one text."""
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def chat_named(app: MessengerApp, name: str) -> int | None:
    """Id of the chat called ``name`` in the app's chat list, if it is there."""
    assert app.store is not None
    return next((c.id for c in app.store.chats.values() if c.name == name), None)


async def create_with_palette(pilot: Pilot[None], app: MessengerApp, name: str) -> int:
    """Ctrl+P, "New chat", type the name, click Create; returns the new chat's id."""
    await pilot.press("ctrl+p")
    await pilot.press(*"New chat")
    await until(pilot, lambda: "Create a private group chat" in screen_text(app), "the entry")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, NewChatScreen), "the dialog")
    await pilot.press(*name)
    await click(pilot, "#create")
    await until(pilot, lambda: chat_named(app, name) is not None, "the new chat")
    chat_id = chat_named(app, name)
    assert chat_id is not None
    await until(pilot, lambda: app.main is not None and app.main.current_chat == chat_id)
    return chat_id


async def test_owner_approves_a_link_join_request_with_one_click(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            chat_id = await create_with_palette(pilot, app, "team")
            assert app.screen is app.main and "≡ team" in screen_text(app)

            show_links(app)
            await until(pilot, lambda: isinstance(app.screen, LinksScreen), "the links dialog")
            links = app.screen
            assert isinstance(links, LinksScreen)
            await until(pilot, lambda: "No active links" in screen_text(app), "empty list")
            await click(pilot, "#new-link")
            await until(pilot, lambda: bool(links.links), "a new link")
            link = links.links[0].link
            await until(pilot, lambda: "Revoke" in screen_text(app), "the link row")
            await pilot.press("escape")

            name, key = parse_invite(link)
            assert (await bob.join(name, key)).state == "requested"
            await until(pilot, lambda: "bob asks to join team" in screen_text(app), "the bar")
            bar = app.main.query_one(JoinRequestBar) if app.main else None
            assert "Join request" in notes(app)
            await click(pilot, "#join-approve")
            await until(pilot, lambda: "bob is now in team" in notes(app), "approved")
            assert bar is not None and not bar.display
            assert app.main is not None and app.main.composer.has_focus
            members = await bob.members(chat_id)
            assert sorted(u.login for u in members.members) == ["alice", "bob"]
            await bob.send(chat_id, "thanks for letting me in")
            await until(
                pilot,
                lambda: "thanks for letting me in" in screen_text(app),
                "bob's message in the group",
            )
    finally:
        await bob.close()


async def test_join_by_pasted_link_is_told_when_approved_then_leaves(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    alice = await other_user(server, "alice")
    app = make_app(server.url, name="bob")
    try:
        chat = await alice.create_chat("ops")
        link = await alice.create_link(chat.id)
        async with signed_in(app, "bob", notifications=True) as (pilot, _):
            app.push_screen(JoinScreen(app.client))  # type: ignore[arg-type]
            await until(pilot, lambda: app.screen.query("#join-what"), "the join dialog")
            app.screen.query_one("#join-what", Input).value = link.link
            await click(pilot, "#join")
            await until(pilot, lambda: "Asked to join ops" in screen_text(app), "requested")
            await pilot.press("escape")

            await alice.approve(chat.id, "bob")
            await until(pilot, lambda: "You are in ops now" in notes(app), "the decision")
            await until(pilot, lambda: chat_named(app, "ops") is not None, "ops in the list")
            app.open_chat(chat.id)
            await until(pilot, lambda: "≡ ops" in screen_text(app), "ops open")
            await click(pilot, "#chat-title")  # the title of a chat shows its members
            await until(pilot, lambda: isinstance(app.screen, MembersScreen), "members")
            await until(pilot, lambda: "bob (you)" in screen_text(app), "the member list")
            assert "alice (owner)" in screen_text(app)
            await click(pilot, "#leave")
            await until(pilot, lambda: chat_named(app, "ops") is None, "ops gone")
            await until(pilot, lambda: app.main.current_chat == GENERAL_CHAT_ID, "back home")  # type: ignore[union-attr]
            members = await alice.members(chat.id)
            assert [u.login for u in members.members] == ["alice"]
    finally:
        await alice.close()


async def test_owner_invites_with_completion_and_rejects_from_the_request_list(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    carol = await other_user(server, "carol")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            chat_id = await create_with_palette(pilot, app, "crew")
            await until(pilot, lambda: app.store is not None and "bob" in app.store.logins())

            show_invite(app)
            await until(pilot, lambda: app.screen.query("#invite-login"), "the invite dialog")
            await pilot.press("b", "right", "enter")  # "b" completes to "bob"
            await until(pilot, lambda: "bob is in crew" in screen_text(app), "invited")
            assert "crew" in [c.name for c in (await bob.chats()).chats]
            await pilot.press("escape")

            link = await app.client.create_link(chat_id)  # type: ignore[union-attr]
            await carol.join("crew", link.key)
            await until(pilot, lambda: "carol asks to join crew" in screen_text(app), "bar")
            show_requests(app)
            await until(pilot, lambda: isinstance(app.screen, JoinRequestsScreen), "list")
            await until(pilot, lambda: "carol → crew" in screen_text(app), "carol's request")
            await click(pilot, "#reject-0")
            await until(pilot, lambda: "No one is waiting" in screen_text(app), "decided")
            assert "crew" not in [c.name for c in (await carol.chats()).chats]
    finally:
        await bob.close()
        await carol.close()


async def test_an_invited_user_is_told_and_finds_the_chat_in_the_list(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    alice = await other_user(server, "alice")
    app = make_app(server.url, name="bob")
    try:
        chat = await alice.create_chat("design")
        async with signed_in(app, "bob", notifications=True) as (pilot, _):
            await alice.invite(chat.id, "bob")
            await until(pilot, lambda: "You are in design now (owner alice)" in notes(app), "told")
            await until(pilot, lambda: "≡ design" in screen_text(app), "in the chat list")
            assert notes(app).count("You are in design") == 1
            await alice.remove_member(chat.id, "bob")
            await until(pilot, lambda: "≡ design" not in screen_text(app), "removed")
            await alice.invite(chat.id, "bob")
            await until(pilot, lambda: notes(app).count("You are in design") == 2, "told again")
    finally:
        await alice.close()


async def test_a_revoked_link_no_longer_lets_anyone_ask_to_join(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            await create_with_palette(pilot, app, "vault")
            show_links(app)
            await until(pilot, lambda: "No active links" in screen_text(app), "the dialog")
            links = app.screen
            assert isinstance(links, LinksScreen)
            app.screen.query_one("#max-uses", Input).value = "5"
            await click(pilot, "#new-link")
            await until(pilot, lambda: "0/5 uses" in screen_text(app), "the limited link")
            key = links.links[0].key
            await click(pilot, "#revoke-0")
            await until(pilot, lambda: "Link revoked" in screen_text(app), "revoked")
            assert "No active links" in screen_text(app)
            with pytest.raises(ApiError):
                await bob.join("vault", key)
    finally:
        await bob.close()


async def test_reject_by_command_takes_the_request_off_the_bar(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 12: after /reject (or /approve) typed in the composer the join-request
    bar kept asking about a request that was already decided."""
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    carol = await other_user(server, "carol")
    try:
        async with signed_in(app) as (pilot, _):
            assert app.client is not None and app.main is not None
            team = await app.client.create_chat("team")
            await bob.join("team")
            await carol.join("team")
            await until(pilot, lambda: "+1 more" in screen_text(app), "two requests on the bar")
            bar = app.main.query_one(JoinRequestBar)
            await pilot.press(*"/reject team carol", "enter")
            await until(pilot, lambda: "carol" not in screen_text(app), "carol off the bar")
            assert bar.display and "bob asks to join team" in screen_text(app)
            await pilot.press(*"/approve team bob", "enter")
            await until(pilot, lambda: not bar.display, "the bar gone")
            members = await bob.members(team.id)
            assert sorted(u.login for u in members.members) == ["alice", "bob"]
    finally:
        await bob.close()
        await carol.close()


async def test_a_decision_on_the_owners_other_device_takes_the_request_off_the_bar(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 12: a join request approved, rejected or settled by an invite on the
    owner's other device used to stay on this device's bar (the decision went only to the
    requester); now each one leaves the bar as its event arrives."""
    app = make_app(server.url)
    others = [await other_user(server, who) for who in ("bob", "carol", "dave")]
    phone = Client(server.url)
    try:
        async with signed_in(app) as (pilot, _):
            assert app.main is not None
            await phone.login("alice", "secret12")
            team = await phone.create_chat("team")
            for client in others:
                await client.join("team")
            await until(pilot, lambda: "+2 more" in screen_text(app), "three requests")
            bar = app.main.query_one(JoinRequestBar)
            await phone.reject(team.id, "dave")
            await until(pilot, lambda: "+1 more" in screen_text(app), "dave off the bar")
            assert [r.login for r in bar.requests] == ["bob", "carol"]
            await phone.approve(team.id, "carol")
            await until(pilot, lambda: [r.login for r in bar.requests] == ["bob"], "carol off")
            assert "bob asks to join team" in screen_text(app) and "more" not in screen_text(app)
            await phone.invite(team.id, "bob")
            await until(pilot, lambda: not bar.display, "the bar gone")
            assert app.is_running
    finally:
        for client in (*others, phone):
            await client.close()


async def test_create_typed_in_the_composer_opens_the_new_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 12: ``/create team`` typed in the composer created the chat but left
    the user in general, so the next line went there; like the "New chat" dialog, it
    opens the new chat, and what is typed next goes to it."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press(*"/create team", "enter")
        await until(pilot, lambda: chat_named(app, "team") is not None, "the new chat")
        team = chat_named(app, "team")
        main = app.main
        assert main is not None and team is not None
        await until(pilot, lambda: main.current_chat == team, "the new chat in front")
        await until(pilot, lambda: "team" in screen_text(app).splitlines()[1], "its title")
        await pilot.press(*"hello team", "enter")
        assert app.client is not None
        client = app.client

        async def in_team() -> bool:
            return [m.text for m in (await client.history(team)).messages] == ["hello team"]

        await until_true(pilot, in_team, "the message in team")
        general = await client.history(GENERAL_CHAT_ID)
        assert "hello team" not in [m.text for m in general.messages]

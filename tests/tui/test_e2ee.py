"""End-to-end encryption in the TUI (issue 14), against the real server: an encrypted
direct chat decrypts through the library's DeviceCrypto, shows a lock in the chat list
and the title, sends encrypted (thread comments too), says plainly what this device has
no key for, and keeps no plaintext in its cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from messenger_client import Client
from messenger_client import commands as slash
from messenger_client.crypto import NO_KEY_TEXT, DeviceCrypto
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.groups import NewChatScreen
from messenger_protocol import QueryKeys
from messenger_protocol import endpoints as ep
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    SIZE,
    click,
    log_in_app,
    other_user,
    screen_text,
    shown_texts,
    signed_in,
    until,
    until_true,
)
from tests.tui.test_groups import chat_named


async def test_encrypted_dm_reads_sends_and_says_what_it_cannot_decrypt(
    server: ServerProcess, make_app: Callable[..., MessengerApp], tmp_path: Path
) -> None:
    alice_old, bob = Client(server.url), Client(server.url)
    try:
        await alice_old.register("alice", "secret12")
        await bob.register("bob", "secret12")
        await DeviceCrypto.open(alice_old, tmp_path / "alice-old")
        bob_c = await DeviceCrypto.open(bob, tmp_path / "bob")
        dm = await bob.open_direct("alice")
        await bob_c.send(dm, "before the tui aardvarkword")  # for alice's old device only

        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await log_in_app(pilot, app, "alice")

            async def tui_device_published() -> bool:
                found = await bob.call(ep.QUERY_KEYS, QueryKeys(logins=["alice"]))
                return len(found.devices) == 2

            await until_true(pilot, tui_device_published, "the TUI's device keys")
            await bob_c.send(dm, "after zeppelinword")
            app.open_chat(dm.id)
            await until(
                pilot,
                lambda: shown_texts(app, dm.id) == [NO_KEY_TEXT, "after zeppelinword"],
                "the DM, decrypted where this device has the key",
            )
            await until(pilot, lambda: "end-to-end encrypted" in screen_text(app), "the title")
            screen = screen_text(app)
            assert "🔒@bob" in screen.replace(" ", ""), "a lock in the chat list"
            assert "🔒 @bob" in screen, "a lock in the title"
            assert NO_KEY_TEXT in screen

            await pilot.press(*"reply quokkaword", "enter")
            await until(pilot, lambda: len(shown_texts(app, dm.id)) == 3, "sent")
            assert app.store is not None
            await until(pilot, lambda: app.store is not None and app.store.timeline(dm.id)
                        .newest_id is not None and shown_texts(app, dm.id)[-1] ==
                        "reply quokkaword" and all(m.id for m in app.store.timeline(dm.id)),
                        "acknowledged")  # fmt: skip
            page = await bob.history(dm.id)
            last = page.messages[-1]
            assert last.text == "" and last.encrypted is not None, "sent encrypted"
            assert (await bob_c.decrypt(last)).text == "reply quokkaword"

            # an edit goes through the outbox and stays encrypted (issue 12)
            edit = {"message_id": last.id, "text": "reply ocelotword"}
            app.run_command(slash.ParsedCommand("edit", edit), dm.id)
            await until(pilot, lambda: "reply ocelotword (edited)" in screen_text(app), "shown")
            await until(pilot, lambda: not app.store or not app.store.outbox(), "on the server")
            edited = await bob.message(last.id)
            assert edited.text == "" and edited.encrypted is not None, "edited encrypted"
            assert (await bob_c.decrypt(edited)).text == "reply ocelotword"

            # its thread is encrypted too: bob's comment decrypts, alice's goes encrypted
            await bob_c.comment(last.id, "thread narwhalword")
            root = app.store.find(last.id)
            assert root is not None and app.main is not None
            app.threads.open(root)
            await until(pilot, lambda: "thread narwhalword" in screen_text(app), "in the panel")
            assert app.main.thread_composer.has_focus
            await pilot.press(*"answer ibexword", "enter")

            async def commented() -> bool:
                return len((await bob.thread(last.id)).comments) == 2

            await until_true(pilot, commented, "alice's comment on the server")
            mine = (await bob.thread(last.id)).comments[-1]
            assert mine.text == "" and mine.encrypted is not None, "commented encrypted"
            assert (await bob_c.decrypt(mine)).text == "answer ibexword"

        # restarted while the server is away: the chat is known to be encrypted from the
        # cache (the lock came only once the key directory answered again)
        server.stop()
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.main and app.main.current_chat, "general shown")
            assert app.main is not None and app.connection.state != "connected"
            app.open_chat(dm.id)
            await until(pilot, lambda: "🔒 @bob" in screen_text(app), "a lock in the title")
            assert "🔒@bob" in screen_text(app).replace(" ", ""), "a lock in the chat list"

        # the TUI's cache and files hold ciphertext only
        home = tmp_path / "client-alice"
        stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
        assert b"aardvarkword" not in stored
        assert b"zeppelinword" not in stored and b"quokkaword" not in stored
        assert b"ocelotword" not in stored
        assert b"narwhalword" not in stored and b"ibexword" not in stored
    finally:
        await alice_old.close()
        await bob.close()


async def test_a_group_created_encrypted_in_the_dialog_sends_encrypted(
    server: ServerProcess, make_app: Callable[..., MessengerApp], tmp_path: Path
) -> None:
    """The New chat dialog's checkbox makes the group end-to-end encrypted: a lock in
    the list and the title, and what is typed there reaches the members as ciphertext
    their devices decrypt."""
    bob = await other_user(server, "bob")
    try:
        bob_c = await DeviceCrypto.open(bob, tmp_path / "bob")
        app = make_app(server.url)
        async with signed_in(app) as (pilot, _):
            await pilot.press("ctrl+p")
            await pilot.press(*"New chat")
            await until(pilot, lambda: "Create a private group chat" in screen_text(app))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, NewChatScreen), "the dialog")
            await pilot.press(*"vault")
            await click(pilot, "#chat-encrypted")
            await click(pilot, "#create")
            await until(pilot, lambda: chat_named(app, "vault") is not None, "the new chat")
            chat_id = chat_named(app, "vault")
            assert chat_id is not None and app.client is not None
            await app.client.invite(chat_id, "bob")
            await until(pilot, lambda: "🔒 ≡ vault" in screen_text(app), "a lock in the title")
            assert "🔒vault" in screen_text(app), "a lock in the chat list"
            await pilot.press(*"sealed walrusword", "enter")
            await until(
                pilot,
                lambda: (
                    app.store is not None
                    and [m.id > 0 for m in app.store.timeline(chat_id)] == [True]
                ),
                "acknowledged",
            )
            page = await bob.history(chat_id)
            assert page.messages[-1].encrypted is not None and page.messages[-1].text == ""
            assert (await bob_c.decrypt(page.messages[-1])).text == "sealed walrusword"
            assert shown_texts(app, chat_id) == ["sealed walrusword"]
    finally:
        await bob.close()

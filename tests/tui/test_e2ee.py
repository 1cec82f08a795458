"""End-to-end encryption in the TUI (issue 14), against the real server: an encrypted
direct chat decrypts through the library's DeviceCrypto, shows a lock in the chat list
and the title, sends encrypted, says plainly what this device has no key for, and keeps
no plaintext in its cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input

from messenger_client import Client
from messenger_client.crypto import NO_KEY_TEXT, DeviceCrypto
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.login import LoginScreen
from messenger_protocol import QueryKeys
from messenger_protocol import endpoints as ep
from tests.support.server import ServerProcess
from tests.tui.conftest import click, until, until_true
from tests.tui.test_app import SIZE, screen_text, shown_texts


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
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
            app.screen.query_one("#login", Input).value = "alice"
            app.screen.query_one("#password", Input).value = "secret12"
            await click(pilot, "#do-login")
            await until(pilot, lambda: app.connection.state == "connected", "connected")

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

        # the TUI's cache and files hold ciphertext only
        home = tmp_path / "client-alice"
        stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
        assert b"aardvarkword" not in stored
        assert b"zeppelinword" not in stored and b"quokkaword" not in stored
    finally:
        await alice_old.close()
        await bob.close()

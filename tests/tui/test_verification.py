"""Device trust in the TUI (issue 14), against the real server: verifying bob's device
by comparing seven emoji (started from F6, and answered from the notice line), a new
device of bob announced above the chat, and files in an encrypted chat sent and opened
encrypted. Bob is a library device (DeviceCrypto) whose to-device inbox the test reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import vodozemac as vz
from textual.pilot import Pilot

from messenger_client import Client
from messenger_client.crypto import NO_KEY_TEXT, DeviceCrypto
from messenger_client.trust import TrustNotice, VerificationUpdate
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.verify import DevicesScreen, VerifyScreen
from messenger_client.tui.widgets.attachments import AttachmentCard, AttachmentsScreen
from messenger_protocol import Chat, QueryKeys, device_signing_bytes
from messenger_protocol import endpoints as ep
from tests.support import db
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    SIZE,
    click,
    log_in_app,
    screen_text,
    shown_texts,
    signed_in,
    until,
    until_true,
)


class Bob:
    """Bob's library device: what it was told, and a pump for its inbox."""

    def __init__(self, client: Client, directory: Path) -> None:
        self.client = client
        self.directory = directory
        self.notices: list[TrustNotice] = []
        self.crypto: DeviceCrypto | None = None

    async def open(self) -> DeviceCrypto:
        self.crypto = await DeviceCrypto.open(
            self.client, self.directory, on_notice=self.notices.append
        )
        return self.crypto

    def state(self) -> str | None:
        updates = [n for n in self.notices if isinstance(n, VerificationUpdate)]
        return updates[-1].state if updates else None

    def last(self) -> VerificationUpdate:
        return [n for n in self.notices if isinstance(n, VerificationUpdate)][-1]

    async def until(self, pilot: Pilot[None], state: str) -> None:
        """Read bob's inbox (as his client would on its events) until ``state``."""
        assert self.crypto is not None
        crypto = self.crypto

        async def there() -> bool:
            await crypto.receive()
            return self.state() == state

        await until_true(pilot, there, f"bob's verification {state}")


async def tui_device(pilot: Pilot[None], bob: Client, login: str = "alice") -> None:
    """Wait until the TUI's device keys are in the key directory."""

    async def published() -> bool:
        found = await bob.call(ep.QUERY_KEYS, QueryKeys(logins=[login]))
        return len(found.devices) == 1

    await until_true(pilot, published, "the TUI's device keys")


async def encrypted_dm(
    pilot: Pilot[None], app: MessengerApp, bob: Bob, text: str = "hello alice"
) -> Chat:
    """Bob's encrypted DM with alice, open in the TUI, with one message in it."""
    assert bob.crypto is not None
    dm = await bob.client.open_direct("alice")
    await bob.crypto.send(dm, text)
    await until(pilot, lambda: app.store is not None and dm.id in app.store.chats, "the DM")
    app.open_chat(dm.id)
    await until(pilot, lambda: shown_texts(app, dm.id) == [text], "the DM decrypted")
    return dm


async def test_verify_bobs_device_by_emoji_from_f6(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client, tmp_path: Path
) -> None:
    """F6 in the DM shows bob's devices; Enter on his starts; both show the same seven
    emoji with their names; "They match" on both sides verifies: the screen says so, the
    devices screen marks it, and the chat's title says "✔ verified"."""
    bob_dev = Bob(bob, tmp_path / "bob")
    await bob_dev.open()
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await tui_device(pilot, bob)
        await encrypted_dm(pilot, app, bob_dev)
        await until(pilot, lambda: "not verified (F6)" in screen_text(app), "unverified title")

        await pilot.press("f6")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "bob's devices")
        assert "○ not verified" in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen), "the verify screen")
        screen = app.screen
        assert isinstance(screen, VerifyScreen)
        await until(pilot, lambda: screen.state == "requested", "the request sent")
        assert "Waiting for bob's device" in screen_text(app)

        await bob_dev.until(pilot, "incoming")
        assert bob_dev.crypto is not None
        await bob_dev.crypto.verification.start("alice")  # bob accepts
        await bob_dev.until(pilot, "showing")
        await until(pilot, lambda: screen.state == "showing", "the emoji on the TUI")
        theirs = bob_dev.last()
        assert screen.update_ is not None and screen.update_.emoji == theirs.emoji
        names = theirs.emoji_names
        await until(pilot, lambda: all(n in screen_text(app) for n in names), f"{names}")
        assert "They match" in screen_text(app) and "They don't match" in screen_text(app)

        await click(pilot, "#verify-match")
        await until(pilot, lambda: screen.state == "confirmed", "waiting for bob")
        await bob_dev.crypto.verification.confirm("alice")
        await until(pilot, lambda: screen.state == "verified", "verified on the TUI")
        assert "✔ bob's device" in screen_text(app)
        await bob_dev.until(pilot, "verified")
        await click(pilot, "#verify-close")
        await until(pilot, lambda: app.screen is app.main, "back in the chat")
        await until(pilot, lambda: "✔ verified" in screen_text(app), "the mark in the title")

        await pilot.press("f6")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "bob's devices")
        await until(pilot, lambda: "✔ verified" in screen_text(app), "the device marked")


async def test_a_request_from_bob_shows_above_the_chat_and_a_mismatch_cancels_it(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client, tmp_path: Path
) -> None:
    """Bob asks to verify: a line above the chat says so (a toast too); a click on it
    opens the request with Accept; after the emoji show, "They don't match" cancels on
    both sides, and nothing is verified."""
    bob_dev = Bob(bob, tmp_path / "bob")
    crypto = await bob_dev.open()
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await tui_device(pilot, bob)
        await encrypted_dm(pilot, app, bob_dev)
        await crypto.verification.start("alice")
        await until(pilot, lambda: "asks to verify this device" in screen_text(app), "the line")
        await click(pilot, "#trust-line")
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen), "the request")
        screen = app.screen
        assert isinstance(screen, VerifyScreen) and screen.state == "incoming"
        await click(pilot, "#verify-accept")
        await bob_dev.until(pilot, "showing")
        await until(pilot, lambda: screen.state == "showing", "the emoji")
        await click(pilot, "#verify-mismatch")
        await until(pilot, lambda: screen.state == "cancelled", "cancelled here")
        assert "Not verified" in screen_text(app)
        await bob_dev.until(pilot, "cancelled")
        assert bob_dev.last().code == "mismatch"
        assert app.e2ee is not None and app.e2ee.crypto is not None
        assert not app.e2ee.crypto.is_verified("bob", crypto.device_id)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "closed")
        assert "asks to verify" not in screen_text(app), "the line went with the request"


async def test_bobs_new_device_and_its_changed_keys_are_announced_above_the_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client, tmp_path: Path
) -> None:
    """Alice's TUI knows bob's device; bob adds another: the next message alice sends
    there finds it, and the chat says "bob has a new device …, not verified". Then the
    server swaps that device's keys: the chat says they CHANGED, and alice's next
    message goes under a new Megolm session, so the swapped-in keys get no key to it."""
    bob_dev = Bob(bob, tmp_path / "bob")
    await bob_dev.open()
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await tui_device(pilot, bob)
        dm = await encrypted_dm(pilot, app, bob_dev)
        await pilot.press(*"first", "enter")
        await until(pilot, lambda: all(m.id for m in app.store.timeline(dm.id)) and  # type: ignore[union-attr]
                    len(shown_texts(app, dm.id)) == 2, "sent to bob's one device")  # fmt: skip
        phone_client = Client(server.url)
        await phone_client.login("bob", "secret12")
        try:
            phone = await DeviceCrypto.open(phone_client, tmp_path / "bob-phone")
            await pilot.press(*"second", "enter")
            line = f"bob added a new device {phone.device_id}, not verified"
            await until(pilot, lambda: line in screen_text(app), "the new-device line")

            fake = vz.Account()
            curve, ed = fake.curve25519_key.to_base64(), fake.ed25519_key.to_base64()
            signed = device_signing_bytes("bob", phone.device_id, curve, ed)
            db.execute(server, "UPDATE device_keys SET curve25519 = ?, ed25519 = ?, signature = ?"
                       " WHERE device_id = ?", (curve, ed, fake.sign(signed).to_base64(),
                                                 phone.device_id))  # fmt: skip
            count = "SELECT count(*) FROM to_device WHERE device_id = ?"
            waiting = db.rows(server, count, (phone.device_id,))
            # a swap by the server sends no device_list event: alice's sends go on with the
            # keys her client keeps (never the swapped ones) until it asks the directory
            # again, as /devices does
            await pilot.press(*"/devices bob", "enter")
            await until(pilot, lambda: app.screen is not app.main, "the devices screen")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.main, "back in the chat")
            await pilot.press(*"third", "enter")
            line = f"the keys of bob's device {phone.device_id} CHANGED"
            await until(pilot, lambda: line in screen_text(app), "the changed-keys line")
            await until(pilot, lambda: all(m.id for m in app.store.timeline(dm.id)), "sent")  # type: ignore[union-attr]
            sessions = {m.text: m.encrypted.session_id for m in app.store.timeline(dm.id)  # type: ignore[union-attr]
                        if m.encrypted is not None}  # fmt: skip
            assert sessions["third"] != sessions["second"], "a new session after the change"
            assert db.rows(server, count, (phone.device_id,)) == waiting, "nothing went to it"
        finally:
            await phone_client.close()


async def test_files_in_an_encrypted_chat_go_and_open_encrypted(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client, tmp_path: Path
) -> None:
    """/file in the encrypted DM encrypts on the device: bob's device decrypts the same
    bytes, the server's copy is not them; bob's encrypted file opens from F4 byte for
    byte."""
    bob_dev = Bob(bob, tmp_path / "bob")
    crypto = await bob_dev.open()
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"the platypusword is in the file\n" * 50)
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await tui_device(pilot, bob)
        dm = await encrypted_dm(pilot, app, bob_dev)
        await pilot.press(*f"/file {notes}", "enter")

        async def bob_has_it() -> bool:
            page = await bob.history(dm.id)
            return any(m.attachments for m in page.messages)

        await until_true(pilot, bob_has_it, "the file at bob's")
        message = [m for m in (await bob.history(dm.id)).messages if m.attachments][-1]
        assert message.encrypted is not None and message.text == ""
        shown = await crypto.reveal(message)
        assert shown is not None and shown.attachments[0].name == "notes.txt"
        raw = await bob.download(message.attachments[0].id, tmp_path / "raw")
        assert b"platypusword" not in raw.read_bytes(), "the server holds ciphertext"
        saved = await crypto.download_file(crypto.known_files[message.attachments[0].id],
                                           tmp_path / "bob-downloads")  # fmt: skip
        assert saved.read_bytes() == notes.read_bytes()

        photo = tmp_path / "report.bin"
        photo.write_bytes(bytes(range(256)) * 40)
        sent = await crypto.send(dm, "", files=[photo])
        assert app.main is not None
        await until(pilot, lambda: app.store is not None and any(
            m.id == sent.id for m in app.store.timeline(dm.id)), "bob's file")  # fmt: skip
        assert app.main.view.timeline is not None
        index = app.main.view.timeline.index_of(sent.id)
        assert index is not None
        app.main.view.select_index(index)
        await pilot.press("f4")
        await until(pilot, lambda: isinstance(app.screen, AttachmentsScreen), "the files panel")
        panel = app.screen
        assert isinstance(panel, AttachmentsScreen)
        card = panel.query_one(AttachmentCard)
        assert "report.bin" in str(card.render())
        card.focus()
        await pilot.press("enter")
        await until(pilot, lambda: panel.saved is not None, "the decrypted download")
        assert panel.saved is not None and panel.saved.read_bytes() == photo.read_bytes()


async def test_the_tui_as_a_new_device_reads_earlier_messages_once_verified(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client, tmp_path: Path
) -> None:
    """Alice's TUI is her new device: bob's earlier message says "no key"; the TUI asks
    her other device, which says no until they verify each other by emoji; then the key
    comes and the message reads."""
    bob_c = await DeviceCrypto.open(bob, tmp_path / "bob")
    old_client = Client(server.url)
    await old_client.register("alice", "secret12")
    old = Bob(old_client, tmp_path / "alice-old")
    old_c = await old.open()
    try:
        dm = await bob.open_direct("alice")
        await bob_c.send(dm, "before the tui ibexword")
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await log_in_app(pilot, app, "alice")
            await until(pilot, lambda: app.store is not None and dm.id in app.store.chats)
            app.open_chat(dm.id)
            await until(pilot, lambda: shown_texts(app, dm.id) == [NO_KEY_TEXT], "no key yet")
            assert app.e2ee is not None and app.e2ee.crypto is not None
            tui_id = app.e2ee.crypto.device_id

            await old_c.verification.start("alice", tui_id)
            await click(pilot, "#trust-line")
            await until(pilot, lambda: isinstance(app.screen, VerifyScreen), "the request")
            screen = app.screen
            assert isinstance(screen, VerifyScreen)
            await click(pilot, "#verify-accept")
            await old.until(pilot, "showing")
            await until(pilot, lambda: screen.state == "showing", "the emoji")
            await click(pilot, "#verify-match")
            await old_c.verification.confirm("alice")
            await until(pilot, lambda: screen.state == "verified", "verified")

            async def read() -> bool:
                await old_c.receive()  # her old device answers the TUI's request
                return shown_texts(app, dm.id) == ["before the tui ibexword"]

            await until_true(pilot, read, "the earlier message, decrypted")
    finally:
        await old_client.close()

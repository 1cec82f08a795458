"""Device trust in end-to-end encryption (issue 14), through the client library, both
stores: SAS verification (both sides see the same emoji and numbers, a mismatch
cancels, the verified mark survives a restart), keys of earlier messages for a user's
new device (only once the two devices verified each other), and a device whose keys
the server changes (announced loudly, never encrypted to).

Each device handles its to-device inbox when the test says (``receive``), the way the
console does on a ``to_device`` event: every step waits for the message it needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import vodozemac as vz

from messenger_client import Client
from messenger_client.crypto import NO_KEY_TEXT, DecryptionError, DeviceCrypto
from messenger_client.trust import (
    DeviceKeyChanged,
    KeyRequestRefused,
    KeysReceived,
    KeysWithheld,
    NewDevice,
    TrustNotice,
    VerificationUpdate,
)
from messenger_protocol import ApiError, device_signing_bytes
from tests.support import db
from tests.support.plain import StartPlain
from tests.support.server import ServerProcess

Device = tuple[Client, DeviceCrypto, list[TrustNotice]]
Devices = Callable[[str, str], Awaitable[Device]]


@pytest.fixture
async def devices(server: ServerProcess, tmp_path: Path) -> AsyncIterator[Devices]:
    """Devices (a client logged in and its keys in a data dir of its own) by login and
    name; a login's first device registers it."""
    made: list[Client] = []
    registered: set[str] = set()

    async def device(login: str, name: str) -> Device:
        client = Client(server.url, device=name)
        made.append(client)
        if login in registered:
            await client.login(login, "password1")
        else:
            await client.register(login, "password1")
            registered.add(login)
        notices: list[TrustNotice] = []
        crypto = await DeviceCrypto.open(
            client, tmp_path / f"{login}-{name}", on_notice=notices.append
        )
        return client, crypto, notices

    yield device
    for client in made:
        await client.close()


def _last(notices: list[TrustNotice]) -> VerificationUpdate:
    updates = [n for n in notices if isinstance(n, VerificationUpdate)]
    assert updates, notices
    return updates[-1]


async def _to_showing(a: DeviceCrypto, b: DeviceCrypto) -> None:
    """``a`` asks ``b``'s device, ``b`` accepts, keys go both ways."""
    await a.verification.start(b.login, b.device_id)
    await b.receive()  # the request
    await b.verification.start(a.login)  # accept the one incoming request
    await a.receive()  # ready: a sends its key
    await b.receive()  # a's key: b shows, sends its key
    await a.receive()  # b's key: a checks the commitment, shows


async def test_two_devices_verify_by_emoji_and_a_mismatch_cancels(
    devices: Devices, tmp_path: Path
) -> None:
    alice, alice_c, alice_n = await devices("alice", "phone")
    _, bob_c, bob_n = await devices("bob", "phone")
    await _to_showing(alice_c, bob_c)
    a, b = _last(alice_n), _last(bob_n)
    assert (a.state, b.state) == ("showing", "showing")
    assert len(a.emoji) == 7 and len(a.decimals) == 3
    assert (a.emoji, a.emoji_names, a.decimals) == (b.emoji, b.emoji_names, b.decimals)
    assert all(1000 <= d <= 9191 for d in a.decimals)
    assert a.we_started and not b.we_started

    await alice_c.verification.confirm("bob")
    assert _last(alice_n).state == "confirmed"
    await bob_c.receive()
    assert _last(bob_n).state == "their_mac"
    assert not bob_c.is_verified("alice", alice_c.device_id)
    await bob_c.verification.confirm()
    assert _last(bob_n).state == "verified"
    await alice_c.receive()
    assert _last(alice_n).state == "verified"
    assert alice_c.is_verified("bob", bob_c.device_id)
    assert bob_c.is_verified("alice", alice_c.device_id)
    listed = await alice_c.device_list("bob")
    assert [(d.device_id, d.verified) for d in listed] == [(bob_c.device_id, True)]
    # the mark is kept with the device's keys: a restart remembers it
    again = await DeviceCrypto.open(alice, tmp_path / "alice-phone")
    assert again.is_verified("bob", bob_c.device_id)
    with pytest.raises(ApiError, match="no verification"):
        await alice_c.verification.confirm("bob")

    # carol and bob compare, and bob sees other emoji: cancelled on both sides
    _, carol_c, carol_n = await devices("carol", "phone")
    await _to_showing(carol_c, bob_c)
    await bob_c.verification.mismatch("carol")
    assert (_last(bob_n).state, _last(bob_n).code) == ("cancelled", "mismatch")
    await carol_c.receive()
    cancelled = _last(carol_n)
    assert (cancelled.state, cancelled.code) == ("cancelled", "mismatch")
    assert "bob cancelled it" in cancelled.reason
    assert not carol_c.is_verified("bob", bob_c.device_id)
    assert not bob_c.is_verified("carol", carol_c.device_id)
    # a step out of turn is refused with a one-line reason, not a crash
    with pytest.raises(ApiError, match="no verification"):
        await carol_c.verification.confirm("bob")


async def test_a_verification_left_ten_minutes_times_out_on_both_sides(
    devices: Devices,
) -> None:
    """Issue 14: a flow with no step for ten minutes is cancelled (code ``timeout``) on
    both devices, and a late /confirm says it timed out and how to start again."""
    _, alice_c, alice_n = await devices("alice", "phone")
    _, bob_c, bob_n = await devices("bob", "phone")
    now = [1000.0]
    alice_c.verification.clock = lambda: now[0]
    await _to_showing(alice_c, bob_c)
    assert _last(alice_n).state == "showing"
    now[0] += 599.0  # not yet
    await alice_c.verification.expire()
    assert _last(alice_n).state == "showing"
    now[0] += 1.0
    with pytest.raises(ApiError, match=r"timed out .*10 minutes.*/verify bob to start again"):
        await alice_c.verification.confirm("bob")
    mine = _last(alice_n)
    assert (mine.state, mine.code) == ("cancelled", "timeout")
    await bob_c.receive()
    theirs = _last(bob_n)
    assert (theirs.state, theirs.code) == ("cancelled", "timeout")
    assert "alice cancelled it: timed out" in theirs.reason
    assert not alice_c.is_verified("bob", bob_c.device_id)
    # a new start works as before
    await _to_showing(alice_c, bob_c)
    assert _last(alice_n).state == _last(bob_n).state == "showing"


async def test_a_new_device_gets_earlier_keys_only_once_verified(
    devices: Devices,
) -> None:
    alice, phone, phone_n = await devices("alice", "phone")
    _, bob_c, _ = await devices("bob", "phone")
    dm = await alice.open_direct("bob")
    earlier = [
        await phone.send(dm, "before the laptop, from alice"),
        await bob_c.send(dm, "before the laptop, from bob"),
    ]
    await phone.receive()

    laptop_client, laptop, laptop_n = await devices("alice", "laptop")
    # the phone's session reaches the laptop part-way: from this message on
    later = await phone.send(dm, "after the laptop, from alice")
    assert later.encrypted is not None and earlier[0].encrypted is not None
    assert later.encrypted.session_id == earlier[0].encrypted.session_id
    assert (await laptop.decrypt(later)).text == "after the laptop, from alice"
    for message in earlier:
        with pytest.raises(DecryptionError) as no_key:
            await laptop.decrypt(message)
        assert no_key.value.kind == "no_key"
    assert str(no_key.value) == NO_KEY_TEXT
    # the phone has not verified the laptop: it sends no keys, and says so on both
    await phone.receive()
    assert any(isinstance(n, NewDevice) and n.device_id == laptop.device_id for n in phone_n)
    assert not any(isinstance(n, NewDevice) for n in laptop_n)  # the phone is older
    assert [n.device_id for n in phone_n if isinstance(n, KeyRequestRefused)] == [laptop.device_id]
    await laptop.receive()
    assert [n.device_id for n in laptop_n if isinstance(n, KeysWithheld)] == [phone.device_id]
    with pytest.raises(DecryptionError, match="no key from your other devices"):
        await laptop.decrypt(earlier[1])

    # they verify each other; then the laptop asks again and the phone answers
    await _to_showing(laptop, phone)
    await phone.verification.confirm()
    await laptop.receive()
    await laptop.verification.confirm()  # laptop verified the phone: asks it again
    await phone.receive()  # the laptop's MAC (phone verifies it), then the requests
    assert phone.is_verified("alice", laptop.device_id)
    await laptop.receive()
    received = [n for n in laptop_n if isinstance(n, KeysReceived)]
    assert [(n.device_id, n.chat_ids) for n in received] == [(phone.device_id, (dm.id,))]
    page = await laptop_client.history(dm.id)
    assert [(await laptop.decrypt(m)).text for m in page.messages] == [
        "before the laptop, from alice",  # its session now from the start: kept
        "before the laptop, from bob",
        "after the laptop, from alice",
    ]


async def test_changed_keys_of_a_known_device_are_announced_and_not_encrypted_to(
    devices: Devices, server: ServerProcess
) -> None:
    alice, alice_c, alice_n = await devices("alice", "phone")
    _, bob_c, _ = await devices("bob", "phone")
    dm = await alice.open_direct("bob")
    before = await alice_c.send(dm, "before")
    await bob_c.receive()
    # the server (or whoever writes its database) swaps in keys of its own, well signed
    fake = vz.Account()
    curve, ed = fake.curve25519_key.to_base64(), fake.ed25519_key.to_base64()
    signature = fake.sign(device_signing_bytes("bob", bob_c.device_id, curve, ed)).to_base64()
    db.execute(
        server,
        "UPDATE device_keys SET curve25519 = ?, ed25519 = ?, signature = ? WHERE device_id = ?",
        (curve, ed, signature, bob_c.device_id),
    )
    after = await alice_c.send(dm, "after")
    await alice_c.send(dm, "after again")
    assert before.encrypted is not None and after.encrypted is not None
    assert after.encrypted.session_id != before.encrypted.session_id, "rotated at the change"
    changed = [n for n in alice_n if isinstance(n, DeviceKeyChanged)]
    assert [(n.login, n.device_id, n.chat_id) for n in changed] == [
        ("bob", bob_c.device_id, dm.id)
    ]  # loud once, not on every message
    # nothing went to the swapped-in keys: no to-device message waits for bob's device
    waiting = db.rows(
        server, "SELECT count(*) FROM to_device WHERE device_id = ?", (bob_c.device_id,)
    )
    assert waiting == [(0,)]
    listed = await alice_c.device_list("bob")
    assert [(d.device_id, d.key_changed, d.verified) for d in listed] == [
        (bob_c.device_id, True, False)
    ]
    # nor can the changed device be verified into trust
    with pytest.raises(ApiError, match="has no device"):
        await alice_c.verification.start("bob", bob_c.device_id)


def _after(line: str, marker: str) -> str:
    return line.split(marker, 1)[1]


async def test_plain_consoles_verify_and_a_new_device_reads_earlier_messages(
    plain: StartPlain,
) -> None:
    """Three consoles: alice's first device and bob talk; alice's new device cannot read
    what came before it and her first device refuses it keys until the two compared the
    same emoji; then the new device reads the earlier messages."""
    first, bob = await plain(), await plain()
    first.send("/auth alice password1")
    await first.expect("logged in as alice")
    bob.send("/auth bob password1")
    await bob.expect("logged in as bob")
    first.send("/private bob early aardvarkplaintext")
    await bob.expect("aardvarkplaintext")

    second = await plain()
    second.send("/login alice password1")
    await second.expect("logged in as alice")
    second.send("/history @bob")
    assert "🔒" in await second.expect("can't decrypt — no key from your other devices")
    refused = await first.expect("asked for the keys of earlier messages")
    new_id = _after(refused, "your device ").split()[0]
    withheld = await second.expect("shares no keys of earlier messages")
    first_id = _after(withheld, "your device ").split()[0]

    second.send(f"/verify alice {first_id}")
    await second.expect(f"asked your device {first_id} to verify")
    await first.expect(f"your device {new_id} asks to verify this device")
    first.send(f"/verify alice {new_id}")
    shown_first = await first.expect(f"compare with your device {new_id}:")
    shown_second = await second.expect(f"compare with your device {first_id}:")
    emoji = _after(shown_first, ": ").split(";")[0]
    assert emoji == _after(shown_second, ": ").split(";")[0]
    assert "or the numbers" in emoji
    first.send("/confirm")
    await first.expect(f"waiting for your device {new_id} to confirm")
    await second.expect("says the emoji match")
    second.send("/confirm alice")
    await second.expect(f"your device {first_id} is verified ✔")
    await first.expect(f"your device {new_id} is verified ✔")
    await second.expect("shared the keys of earlier messages")
    second.send("/history @bob")
    assert "early aardvarkplaintext" in await second.expect("aardvarkplaintext")
    second.send("/devices")
    await second.expect(f"{new_id} (this one)")
    assert (await second.expect(first_id)).split()[-1] == "verified"

"""The device's key store (issue 14): pickled under a private key file or a passphrase."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest
import vodozemac as vz

from messenger_client import Client
from messenger_client import crypto as crypto_module
from messenger_client.crypto import (
    RESERVED_INDEXES,
    STATE_FILE,
    DeviceCrypto,
    _Inbound,
    _load,
    _write_private,
)
from messenger_protocol import DeviceKeys, Encrypted, Message, MessengerError


def test_a_passphrase_opens_the_state_and_another_does_not(tmp_path: Path) -> None:
    key, state = _load(tmp_path, "correct horse")
    _write_private(tmp_path / "state.json", msgspec.json.encode(state))
    again_key, again = _load(tmp_path, "correct horse")
    assert (again_key, again.device_id) == (key, state.device_id)
    with pytest.raises(MessengerError, match="cannot open the device keys"):
        _load(tmp_path, "wrong horse")
    assert stat.S_IMODE((tmp_path / "pickle.salt").stat().st_mode) == 0o600
    assert not (tmp_path / "pickle.key").exists()


def test_the_key_file_is_private_and_must_be_32_bytes(tmp_path: Path) -> None:
    _load(tmp_path, None)
    assert stat.S_IMODE((tmp_path / "pickle.key").stat().st_mode) == 0o600
    (tmp_path / "pickle.key").write_bytes(b"short")
    with pytest.raises(MessengerError, match="32-byte key"):
        _load(tmp_path, None)


def test_replay_records_of_an_older_state_move_to_their_own_file(tmp_path: Path) -> None:
    key, state = _load(tmp_path, None)
    inbound = vz.InboundGroupSession(vz.GroupSession().session_key)
    state.inbound[inbound.session_id] = _Inbound(
        pickle=inbound.pickle(key), chat_id=2, sender="alice", sender_key="k", seen={"3": 42}
    )
    _write_private(tmp_path / STATE_FILE, msgspec.json.encode(state))
    crypto = DeviceCrypto.load(Client("http://127.0.0.1:9"), tmp_path, login="bob")
    assert crypto._replays.get(inbound.session_id, 3) == 42
    _, saved = _load(tmp_path, None)
    assert saved.inbound[inbound.session_id].seen == {}
    again = DeviceCrypto.load(Client("http://127.0.0.1:9"), tmp_path, login="bob")
    assert again._replays.get(inbound.session_id, 3) == 42


def _index(encrypted: Encrypted) -> int:
    return vz.MegolmMessage.from_base64(encrypted.ciphertext).message_index()


def _sender(directory: Path, monkeypatch: pytest.MonkeyPatch) -> DeviceCrypto:
    """alice's device with no other device to share keys with (no server needed)."""
    crypto = DeviceCrypto.load(Client("http://127.0.0.1:9"), directory, login="alice")

    async def no_devices(
        logins: object, chat_id: int | None = None, *, cached: bool = False
    ) -> tuple[list[DeviceKeys], list[tuple[str, str]]]:
        return [], []

    monkeypatch.setattr(crypto, "_devices_seen", no_devices)
    return crypto


async def test_a_killed_client_never_sends_a_megolm_index_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: whenever the client is killed, the state on disk holds the chat's
    session past every message index it sent, so the client started again never
    encrypts under a used index; it writes the state once per RESERVED_INDEXES
    messages, not per message. A reader ratchets over the skipped indexes."""
    writes: list[Path] = []

    def counted(path: Path, data: bytes) -> None:
        writes.append(path)
        _write_private(path, data)

    sender = _sender(tmp_path, monkeypatch)
    monkeypatch.setattr(crypto_module, "_write_private", counted)
    sent = []
    for n in range(2 * RESERVED_INDEXES + 6):
        sent.append(await sender.encrypt(2, ["alice"], f"message {n}"))
        assert _index(sent[-1]) == n
        key, on_disk = _load(tmp_path, None)  # what a client started now would go on from
        assert vz.GroupSession.from_pickle(on_disk.outbound["2"].pickle, key).message_index > n
    assert len([p for p in writes if p.name == STATE_FILE]) == 3

    again = _sender(tmp_path, monkeypatch)  # the first one was killed
    after = await again.encrypt(2, ["alice"], "after the crash")
    assert _index(after) == 3 * RESERVED_INDEXES > _index(sent[-1])
    texts = []
    for i, encrypted in enumerate([*sent[-2:], after]):
        message = Message(id=i + 1, chat_id=2, author="alice", text="", created_at=0.0,
                          encrypted=encrypted)  # fmt: skip
        texts.append(again.decrypt_now(message).text)
    assert texts == [f"message {len(sent) - 2}", f"message {len(sent) - 1}", "after the crash"]

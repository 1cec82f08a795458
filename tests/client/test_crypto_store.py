"""The device's key store (issue 14): pickled under a private key file or a passphrase."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest
import vodozemac as vz

from messenger_client import Client
from messenger_client.crypto import STATE_FILE, DeviceCrypto, _Inbound, _load, _write_private
from messenger_protocol import MessengerError


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

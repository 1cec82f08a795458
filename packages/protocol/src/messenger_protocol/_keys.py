"""The key directory and to-device messages of end-to-end encryption (issue 14).

A device (one client's data dir) has an Olm identity: a Curve25519 key for key agreement
and an Ed25519 key that signs. It uploads the public halves with signed one-time keys;
other devices query the identity keys of a user, claim one one-time key per device to
start an Olm session, and send it Olm-encrypted to-device messages (Megolm session keys).
The server keeps public keys and ciphertext only; it checks formats and sizes, never a
signature (the devices check those, with :func:`device_signing_bytes` and
:func:`one_time_key_signing_bytes`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from . import _limits as L
from ._models import DeviceId, Login, Model, PublicKey, Request

__all__ = [
    "AckToDevice",
    "ClaimKeys",
    "ClaimedKey",
    "ClaimedKeys",
    "DeviceKeyList",
    "DeviceKeys",
    "DeviceRef",
    "KeyCount",
    "OneTimeKey",
    "OutgoingToDevice",
    "QueryKeys",
    "SendToDevice",
    "ToDevice",
    "ToDeviceList",
    "ToDeviceSent",
    "UploadKeys",
    "device_set_digest",
    "device_signing_bytes",
    "one_time_key_signing_bytes",
]

Signature = Annotated[str, Meta(pattern=L.SIGNATURE_PATTERN)]
"""An Ed25519 signature (unpadded base64 of 64 bytes)."""
KeyId = Annotated[str, Meta(pattern=L.KEY_ID_PATTERN)]
OlmType = Literal[0, 1]
"""0: a pre-key message (it starts a session), 1: a normal message."""
OlmCiphertext = Annotated[
    str, Meta(min_length=1, max_length=L.MAX_TO_DEVICE_CIPHERTEXT, pattern=L.CIPHERTEXT_PATTERN)
]


def device_signing_bytes(login: str, device_id: str, curve25519: str, ed25519: str) -> bytes:
    """What a device signs with its Ed25519 key to vouch for its identity keys."""
    return msgspec.json.encode(
        {"curve25519": curve25519, "device_id": device_id, "ed25519": ed25519, "login": login}
    )


def device_set_digest(devices: Iterable[tuple[str, str]]) -> str:
    """Hex SHA-256 of a set of ``(login, device_id)``: what an encrypted send names as
    the devices it looked at (``SendMessage.devices``); the order does not matter."""
    return hashlib.sha256(msgspec.json.encode(sorted(set(devices)))).hexdigest()


def one_time_key_signing_bytes(login: str, device_id: str, key_id: str, key: str) -> bytes:
    """What a device signs with its Ed25519 key to vouch for one of its one-time keys."""
    return msgspec.json.encode(
        {"device_id": device_id, "key": key, "key_id": key_id, "login": login}
    )


# --- requests -------------------------------------------------------------


class OneTimeKey(Request, frozen=True):
    """A Curve25519 one-time key, signed by the device's Ed25519 key."""

    key_id: KeyId
    key: PublicKey
    signature: Signature


class UploadKeys(Request, frozen=True):
    """This session's device: its identity keys (signed) and more one-time keys.

    The first upload of a ``device_id`` registers it and binds it to this session; a
    later one (a new login of the same data dir) must carry the same identity keys.
    """

    device_id: DeviceId
    curve25519: PublicKey
    ed25519: PublicKey
    signature: Signature
    """Ed25519 signature of :func:`device_signing_bytes`."""
    one_time_keys: Annotated[list[OneTimeKey], Meta(max_length=L.MAX_ONE_TIME_KEYS_PER_UPLOAD)] = []


class QueryKeys(Request, frozen=True):
    """The users whose devices' identity keys are wanted."""

    logins: Annotated[list[Login], Meta(min_length=1, max_length=L.MAX_KEY_QUERY_USERS)]


class DeviceRef(Request, frozen=True):
    """One device of one user."""

    login: Login
    device_id: DeviceId


class ClaimKeys(Request, frozen=True):
    """Take one one-time key of each of these devices (each key is handed out once)."""

    devices: Annotated[list[DeviceRef], Meta(min_length=1, max_length=L.MAX_KEY_CLAIM_DEVICES)]


class OutgoingToDevice(Request, frozen=True):
    """One Olm ciphertext for one device of one user."""

    login: Login
    device_id: DeviceId
    type: OlmType
    ciphertext: OlmCiphertext


class SendToDevice(Request, frozen=True):
    """To-device messages from this session's device."""

    messages: Annotated[
        list[OutgoingToDevice], Meta(min_length=1, max_length=L.MAX_TO_DEVICE_BATCH)
    ]


class AckToDevice(Request, frozen=True):
    """This device has handled its to-device messages up to ``up_to``: delete them."""

    up_to: Annotated[int, Meta(ge=1, le=L.MAX_INT)]


# --- answers ----------------------------------------------------------------


class KeyCount(Model, frozen=True):
    """The device's unclaimed one-time keys on the server after an upload."""

    device_id: str
    one_time_keys: int


class DeviceKeys(Model, frozen=True):
    """The public identity keys of one device, as it signed them."""

    login: str
    device_id: str
    curve25519: str
    ed25519: str
    signature: str
    created_at: float = 0.0


class DeviceKeyList(Model, frozen=True):
    """Devices with keys of the users asked about (users without any are left out)."""

    devices: list[DeviceKeys] = []


class ClaimedKey(Model, frozen=True):
    """A one-time key, now taken: nobody else gets it."""

    login: str
    device_id: str
    key_id: str
    key: str
    signature: str


class ClaimedKeys(Model, frozen=True):
    """One key per device asked for; devices out of keys (or unknown) are left out."""

    keys: list[ClaimedKey] = []


class ToDeviceSent(Model, frozen=True):
    """How many of the messages were queued (all of them, or the send is refused)."""

    queued: int


class ToDevice(Model, frozen=True):
    """An Olm ciphertext waiting for this device, with who sent it from which device."""

    id: int
    sender: str
    sender_device: str
    sender_key: str
    """The sending device's Curve25519 identity key (as the key directory has it)."""
    type: int
    ciphertext: str
    created_at: float


class ToDeviceList(Model, frozen=True):
    """This device's waiting to-device messages, oldest first."""

    messages: list[ToDevice] = []

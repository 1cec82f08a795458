"""What the device-trust parts of end-to-end encryption tell the user (issue 14).

:class:`~messenger_client.crypto.DeviceCrypto` hands these typed notices to the
``on_notice`` callback its owner gave it (the plain console prints one line each, the
TUI shows them); without a callback they are only logged. They come from the
verification of devices (:mod:`messenger_client.verification`), from key sharing to
a user's new device (:mod:`messenger_client.key_sharing`) and from the key directory
(a new device of a contact, a known device whose keys changed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

__all__ = [
    "DeviceInfo",
    "DeviceKeyChanged",
    "KeyRequestRefused",
    "KeysReceived",
    "KeysWithheld",
    "NewDevice",
    "NoticeHook",
    "TrustNotice",
    "VerificationState",
    "VerificationUpdate",
]

VerificationState = Literal[
    "requested",  # we asked the other device; it has not accepted yet
    "incoming",  # the other device asks us; the user has not accepted yet
    "ready",  # we accepted (and committed to our key); waiting for theirs
    "key_sent",  # we started, sent our key; waiting for theirs
    "showing",  # both keys known: the emoji and numbers are on screen
    "confirmed",  # the user said they match; waiting for the other side
    "their_mac",  # the other side said they match; waiting for the user
    "verified",
    "cancelled",
]


class VerificationUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """A verification with another device moved to ``state``."""

    login: str
    device_id: str
    txn: str
    state: VerificationState
    we_started: bool
    emoji: tuple[str, ...] = ()
    """The seven emoji to compare (from ``showing`` on), e.g. ``🐶``."""
    emoji_names: tuple[str, ...] = ()
    """Their names, in the same order, e.g. ``Dog``."""
    decimals: tuple[int, ...] = ()
    """The same check as three four-digit numbers."""
    reason: str = ""
    """Why it was cancelled (``cancelled`` only)."""
    code: str = ""
    """``mismatch``, ``user``, ``key_mismatch``, ``commitment``, ``unexpected``, ``replaced``,
    ``timeout``."""


class NewDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A device of a user this device knew other devices of (or of this user) appeared."""

    login: str
    device_id: str
    chat_id: int | None = None
    """The chat whose message made this device look the user's devices up."""


class DeviceKeyChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A known device now shows other identity keys: nothing is encrypted to it."""

    login: str
    device_id: str
    chat_id: int | None = None


class KeysReceived(msgspec.Struct, frozen=True, kw_only=True):
    """Another device of this user shared the keys of earlier messages."""

    device_id: str
    sessions: int
    chat_ids: tuple[int, ...]


class KeysWithheld(msgspec.Struct, frozen=True, kw_only=True):
    """Another device of this user would not share keys: it has not verified this one."""

    device_id: str
    reason: str


class KeyRequestRefused(msgspec.Struct, frozen=True, kw_only=True):
    """A device of this user that this device has not verified asked for keys."""

    login: str
    device_id: str


TrustNotice = (
    VerificationUpdate
    | NewDevice
    | DeviceKeyChanged
    | KeysReceived
    | KeysWithheld
    | KeyRequestRefused
)
NoticeHook = Callable[[TrustNotice], None]


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One device of a user as this device knows it (``/devices``)."""

    login: str
    device_id: str
    ed25519: str
    """Its fingerprint (the Ed25519 key), as first seen."""
    verified: bool
    key_changed: bool
    """The key directory now shows other keys for it: it is not used."""
    current: bool = False
    """This device."""

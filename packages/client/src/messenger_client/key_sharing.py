"""Keys of earlier messages for a user's new device (issue 14), on request.

A device that meets a message whose Megolm session it was never given (it did not
exist yet when the session was shared) asks every other device of its own user, with
a ``key.request`` to-device message (Olm-encrypted, like all of them). A device that
has the session answers with ``key.forward`` (the session exported from its first
known index, with the chat, the author and the author's key it was received with)
**only if it verified the asking device**; otherwise it answers ``key.withheld`` and
tells its own person that an unverified device asked. The asking device takes a
forwarded key only from a device of its own user that it verified too, and only for a
session it asked for. Once two devices of a user verify each other, the new one asks
the other again for every session still missing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import msgspec

from messenger_protocol import DeviceKeys

from .trust import KeyRequestRefused, KeysReceived, KeysWithheld

if TYPE_CHECKING:
    from .crypto import DeviceCrypto

__all__ = ["ForwardedKey", "KeyRequest", "KeySharing", "KeyWithheld"]

log = logging.getLogger(__name__)


class _Msg(msgspec.Struct, frozen=True, tag_field="type"):
    session_id: str
    chat_id: int


class KeyRequest(_Msg, frozen=True, tag="key.request"):
    """The sender (a device of the same user) asks for a Megolm session."""


class ForwardedKey(_Msg, frozen=True, tag="key.forward"):
    """A Megolm session, exported, with who it came from originally."""

    sender: str
    """The login of the messages' author."""
    sender_key: str
    """The Curve25519 key of the author's device, as the forwarder received it."""
    session_key: str


class KeyWithheld(_Msg, frozen=True, tag="key.withheld"):
    """The answer of a device that will not (or cannot) forward the session."""

    code: Literal["unverified", "unknown"]
    reason: str


_Message = KeyRequest | ForwardedKey | KeyWithheld


class KeySharing:
    """Asking for and answering with keys between this user's devices."""

    def __init__(self, crypto: DeviceCrypto) -> None:
        self.crypto = crypto
        self._received: dict[str, list[int]] = {}
        """Device id -> chats of the sessions it forwarded in this receive."""
        self._told: set[tuple[str, str]] = set()
        """Devices (and codes) whose refusal or request was announced in this run."""

    async def _own_devices(self) -> list[DeviceKeys]:
        crypto = self.crypto
        return [d for d in await crypto.devices([crypto.login]) if d.login == crypto.login]

    async def request(self, session_id: str, chat_id: int) -> None:
        """Ask this user's other devices for a session (once per session)."""
        async with self.crypto.lock():
            if not self.crypto.note_requested(session_id, chat_id):
                return
            devices = await self._own_devices()
            if devices:
                payload = msgspec.json.encode(KeyRequest(session_id=session_id, chat_id=chat_id))
                await self.crypto.send_olm(devices, [payload] * len(devices))

    async def on_verified(self, device: DeviceKeys) -> None:
        """A device was just verified: if it is this user's, ask it for every session
        still missing (it refused while it did not know this device)."""
        if device.login != self.crypto.login:
            return
        missing = self.crypto.requested_sessions
        if not missing:
            return
        payloads = [
            msgspec.json.encode(KeyRequest(session_id=s, chat_id=c)) for s, c in missing.items()
        ]
        await self.crypto.send_olm([device] * len(payloads), payloads)

    async def handle(self, sender: DeviceKeys, plaintext: bytes) -> int:
        """A ``key.*`` message from ``sender`` (Olm-authenticated); how many sessions it
        brought."""
        crypto = self.crypto
        try:
            message = msgspec.json.decode(plaintext, type=_Message)
        except msgspec.DecodeError:
            log.warning("unreadable key-sharing message from %s/%s", sender.login, sender.device_id)
            return 0
        if sender.login != crypto.login:
            log.warning("%s/%s sent %s: only own devices share keys", sender.login,
                        sender.device_id, type(message).__name__)  # fmt: skip
            return 0
        verified = crypto.is_verified(sender.login, sender.device_id)
        match message:
            case KeyRequest(session_id=session_id, chat_id=chat_id):
                await self._answer(sender, verified, session_id, chat_id)
            case ForwardedKey() if not verified:
                log.warning("forwarded key from unverified device %s ignored", sender.device_id)
            case ForwardedKey(session_id=sid, chat_id=chat_id, sender=author, sender_key=key):
                if crypto.import_session(sid, chat_id, author, key, message.session_key):
                    self._received.setdefault(sender.device_id, []).append(chat_id)
                    return 1
            case KeyWithheld(code="unverified", reason=reason):
                if (sender.device_id, "withheld") not in self._told:
                    self._told.add((sender.device_id, "withheld"))
                    crypto.notify(KeysWithheld(device_id=sender.device_id, reason=reason))
            case KeyWithheld():
                pass
        return 0

    async def _answer(
        self, sender: DeviceKeys, verified: bool, session_id: str, chat_id: int
    ) -> None:
        crypto = self.crypto
        answer: _Message
        if not verified:
            answer = KeyWithheld(
                session_id=session_id,
                chat_id=chat_id,
                code="unverified",
                reason=f"device {crypto.device_id} has not verified this device",
            )
            if (sender.device_id, "refused") not in self._told:
                self._told.add((sender.device_id, "refused"))
                crypto.notify(KeyRequestRefused(login=sender.login, device_id=sender.device_id))
        else:
            exported = crypto.export_session(session_id)
            if exported is None or exported[0] != chat_id:
                answer = KeyWithheld(
                    session_id=session_id, chat_id=chat_id, code="unknown", reason="no such key"
                )
            else:
                _, author, author_key, session_key = exported
                answer = ForwardedKey(
                    session_id=session_id,
                    chat_id=chat_id,
                    sender=author,
                    sender_key=author_key,
                    session_key=session_key,
                )
                log.info("forwarding session %s to own device %s", session_id, sender.device_id)
        await crypto.send_olm([sender], [msgspec.json.encode(answer)])

    def received_done(self) -> None:
        """The end of one receive: announce the keys it brought, one notice per device."""
        received, self._received = self._received, {}
        for device_id, chats in received.items():
            self.crypto.notify(
                KeysReceived(
                    device_id=device_id, sessions=len(chats), chat_ids=tuple(sorted(set(chats)))
                )
            )

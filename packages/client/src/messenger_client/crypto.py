"""End-to-end encryption of one device (issue 14): Olm between devices, Megolm per chat.

All cryptography is vodozemac's (Element's audited Rust Olm/Megolm, through its Python
bindings); this module only keeps the state and moves the ciphertext::

    crypto = await DeviceCrypto.open(client, data_dir / "crypto")   # after login
    sent = await crypto.send(chat, "hello")        # encrypted when the chat is
    shown = await crypto.decrypt(message)          # a Decrypted, or DecryptionError

* The device's identity (an Olm account: Curve25519 + Ed25519) is made on first use and
  kept in ``directory/state.json``, every secret in it pickled by vodozemac (AES-256 +
  HMAC) under a 32-byte pickle key. The key comes from ``directory/pickle.key``, 32
  random bytes created with mode 0600 (so the state can be read only by whoever can
  read that file too), or, given a ``passphrase``, from scrypt of it with a random salt
  kept beside the state (then nothing on disk opens it without the passphrase).
* Sending in an encrypted chat: one Megolm outbound session per chat; its session key
  goes over Olm (a session per device, made from a claimed one-time key whose
  signature is checked) to every device of every member, this user's other devices
  included, before the first message that needs it. The message carries ciphertext
  only; its plaintext names the chat and the author, which decryption checks.
* Receiving: a ``to_device`` event for this device fetches its inbox, decrypts each Olm
  message, checks that the sending device is who the key directory (with that
  device's own signature) says, keeps the Megolm session and acknowledges the inbox.
* A Megolm message index seen before under another message id is a replay and refused;
  a ciphertext whose signature fails is refused as tampered with.
* Devices are remembered on first sight (trust on first use); keys of a known device
  that change are refused loudly (:class:`KeyChanged`). Verification (SAS) is not here yet.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import vodozemac as vz

from messenger_protocol import (
    AckToDevice,
    ApiError,
    Chat,
    ClaimKeys,
    DeviceKeys,
    DeviceRef,
    Encrypted,
    ErrorCode,
    Message,
    MessengerError,
    OneTimeKey,
    OutgoingToDevice,
    QueryKeys,
    SendMessage,
    SendToDevice,
    ToDevice,
    UploadKeys,
    device_signing_bytes,
    limits,
    one_time_key_signing_bytes,
)
from messenger_protocol import endpoints as ep

from .api import Client, new_client_id

__all__ = [
    "ALGORITHM",
    "NO_KEY_TEXT",
    "Decrypted",
    "DecryptionError",
    "DeviceCrypto",
    "KeyChanged",
    "device_directory",
]

log = logging.getLogger(__name__)

ALGORITHM: Literal["m.megolm.v1.aes-sha2"] = "m.megolm.v1.aes-sha2"
ONE_TIME_KEYS_TARGET = 50
"""One-time keys a device keeps published (topped up when fewer than half are left)."""
STATE_FILE = "state.json"
KEY_FILE = "pickle.key"
SALT_FILE = "pickle.salt"
NO_KEY_TEXT = "can't decrypt — no key from your other devices"
"""What a client shows in place of an encrypted message this device has no key for."""
_SCRYPT = {"n": 2**15, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024}


class DecryptionError(MessengerError):
    """A message this device cannot or will not show: ``kind`` says why."""

    def __init__(
        self, kind: Literal["no_key", "tampered", "replayed", "mismatch"], message: str
    ) -> None:
        super().__init__(message)
        self.kind = kind


class KeyChanged(MessengerError):
    """A known device of a user now shows other identity keys: possibly an attack."""


@dataclass(frozen=True, slots=True)
class Decrypted:
    """The plaintext of an encrypted message, checked."""

    text: str
    sender: str
    device_id: str


class _KnownDevice(msgspec.Struct):
    curve25519: str
    ed25519: str


class _Outbound(msgspec.Struct):
    pickle: str
    shared_with: list[str] = []
    """Curve25519 keys of the devices that have this session's key."""


class _Inbound(msgspec.Struct):
    pickle: str
    chat_id: int
    sender: str
    sender_key: str
    seen: dict[str, int] = {}
    """Message index (as text) -> the message id it arrived as."""


class _State(msgspec.Struct):
    device_id: str
    account: str
    uploaded: bool = False
    olm: dict[str, list[str]] = {}
    """Peer Curve25519 key -> pickled Olm sessions with it, newest first."""
    outbound: dict[str, _Outbound] = {}
    """Chat id (as text) -> its Megolm outbound session."""
    inbound: dict[str, _Inbound] = {}
    """Megolm session id -> the inbound session."""
    devices: dict[str, dict[str, _KnownDevice]] = {}
    """Login -> device id -> the keys first seen (trust on first use)."""


class _RoomKey(msgspec.Struct, frozen=True):
    """The plaintext of a to-device message: a Megolm session for a chat."""

    chat_id: int
    session_id: str
    session_key: str
    sender: str
    sender_device: str
    sender_ed25519: str
    recipient: str
    recipient_device: str
    type: Literal["room_key"] = "room_key"


class _Payload(msgspec.Struct, frozen=True):
    """The plaintext inside a Megolm message."""

    chat_id: int
    sender: str
    text: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _pickle_key(directory: Path, passphrase: str | None) -> bytes:
    """The 32-byte key the state is pickled under (see the module docstring)."""
    if passphrase is not None:
        salt_path = directory / SALT_FILE
        if not salt_path.exists():
            _write_private(salt_path, secrets.token_bytes(16))
        return hashlib.scrypt(passphrase.encode(), salt=salt_path.read_bytes(), dklen=32, **_SCRYPT)
    path = directory / KEY_FILE
    if not path.exists():
        _write_private(path, secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        raise MessengerError(f"{path} is not a 32-byte key")
    return key


def _load(directory: Path, passphrase: str | None) -> tuple[bytes, _State]:
    """The pickle key and the state of a device directory (a new identity if none)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _pickle_key(directory, passphrase)
    path = directory / STATE_FILE
    if not path.exists():
        account = vz.Account()
        state = _State(device_id=secrets.token_hex(8).upper(), account=account.pickle(key))
        log.info("new device identity %s", state.device_id)
        return key, state
    try:
        state = msgspec.json.decode(path.read_bytes(), type=_State)
        vz.Account.from_pickle(state.account, key)
    except (msgspec.DecodeError, vz.PickleException) as exc:
        raise MessengerError(f"cannot open the device keys in {directory}: {exc}") from exc
    return key, state


def device_directory(root: Path, server: str, login: str) -> Path:
    """Where one app keeps a user's device keys on one server, under ``root``."""
    server_part = re.sub(r"[^A-Za-z0-9_.-]", "_", re.sub(r"^[a-z]+://", "", server))
    return root / server_part / login


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (mode 0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class DeviceCrypto:
    """One device's keys and sessions, kept in ``directory``; talks through ``client``."""

    def __init__(
        self, client: Client, directory: Path, key: bytes, state: _State, login: str | None = None
    ) -> None:
        self.client = client
        self.directory = directory
        self._login = login
        self._key = key
        self._state = state
        self.account = vz.Account.from_pickle(state.account, key)

    # --- identity -------------------------------------------------------------

    @classmethod
    async def open(
        cls, client: Client, directory: Path, *, passphrase: str | None = None
    ) -> DeviceCrypto:
        """Load this device's identity from ``directory`` (made on first use) and publish
        its keys for the logged-in session."""
        crypto = cls.load(client, directory, passphrase=passphrase)
        await crypto.publish()
        return crypto

    @classmethod
    def load(
        cls,
        client: Client,
        directory: Path,
        *,
        passphrase: str | None = None,
        login: str | None = None,
    ) -> DeviceCrypto:
        """:meth:`open` without publishing (no I/O but the data dir): what was received
        before decrypts at once, offline too; :meth:`publish` once the session is known
        (``login`` names the user while the client does not know it yet)."""
        key, state = _load(directory, passphrase)
        crypto = cls(client, directory, key, state, login)
        crypto.save()
        return crypto

    @property
    def device_id(self) -> str:
        """This device's id in the key directory."""
        return self._state.device_id

    @property
    def curve25519(self) -> str:
        """This device's Curve25519 identity key."""
        return self.account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        """This device's Ed25519 signing key (its fingerprint)."""
        return self.account.ed25519_key.to_base64()

    @property
    def login(self) -> str:
        login = self.client.login_name or self._login
        if login is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "not logged in")
        return login

    def save(self) -> None:
        """Write the state (every secret in it pickled under the key), mode 0600."""
        self._state.account = self.account.pickle(self._key)
        _write_private(self.directory / STATE_FILE, msgspec.json.encode(self._state))

    async def publish(self) -> None:
        """Upload the identity keys (binding this session to the device) and top up the
        one-time keys."""
        login = self.login
        signature = self.account.sign(
            device_signing_bytes(login, self.device_id, self.curve25519, self.ed25519)
        ).to_base64()
        body = UploadKeys(
            device_id=self.device_id,
            curve25519=self.curve25519,
            ed25519=self.ed25519,
            signature=signature,
        )
        count = await self.client.call(ep.UPLOAD_KEYS, body)
        if count.one_time_keys < ONE_TIME_KEYS_TARGET // 2:
            self.account.generate_one_time_keys(ONE_TIME_KEYS_TARGET - count.one_time_keys)
            otks = [
                OneTimeKey(
                    key_id=key_id,
                    key=key.to_base64(),
                    signature=self.account.sign(
                        one_time_key_signing_bytes(login, self.device_id, key_id, key.to_base64())
                    ).to_base64(),
                )
                for key_id, key in self.account.one_time_keys.items()
            ]
            await self.client.call(
                ep.UPLOAD_KEYS, msgspec.structs.replace(body, one_time_keys=otks)
            )
            self.account.mark_keys_as_published()
        self._state.uploaded = True
        self.save()

    # --- devices ----------------------------------------------------------------

    def _check_device(self, dev: DeviceKeys) -> bool:
        """A device whose self-signature verifies; keys that changed raise KeyChanged."""
        try:
            vz.Ed25519PublicKey.from_base64(dev.ed25519).verify_signature(
                device_signing_bytes(dev.login, dev.device_id, dev.curve25519, dev.ed25519),
                vz.Ed25519Signature.from_base64(dev.signature),
            )
        except (vz.KeyException, vz.SignatureException, vz.DecodeException):
            log.warning("device %s of %s: bad signature, ignored", dev.device_id, dev.login)
            return False
        known = self._state.devices.setdefault(dev.login, {})
        seen = known.get(dev.device_id)
        if seen is None:
            known[dev.device_id] = _KnownDevice(dev.curve25519, dev.ed25519)
        elif (seen.curve25519, seen.ed25519) != (dev.curve25519, dev.ed25519):
            raise KeyChanged(
                f"the keys of {dev.login}'s device {dev.device_id} changed: refusing to use"
                " it (someone may be impersonating it)"
            )
        return True

    async def devices(self, logins: list[str]) -> list[DeviceKeys]:
        """The checked devices of these users (this device left out)."""
        found = await self.client.call(ep.QUERY_KEYS, QueryKeys(logins=sorted(set(logins))))
        out = [
            d
            for d in found.devices
            if not (d.login == self.login and d.device_id == self.device_id)
            and self._check_device(d)
        ]
        self.save()
        return out

    async def can_encrypt(self, chat: Chat) -> bool:
        """Whether this chat is encrypted by default: a direct chat whose two users both
        have a device with keys, or that this device has encrypted in before (a server
        hiding the other user's devices does not turn encryption off)."""
        if chat.kind != "direct":
            return False
        if str(chat.id) in self._state.outbound:
            return True  # encrypted once, encrypted for good: a server cannot downgrade it
        logins = await self._member_logins(chat)
        found = await self.client.call(ep.QUERY_KEYS, QueryKeys(logins=logins))
        return {d.login for d in found.devices} >= set(logins)

    async def encrypted_chats(self, chats: Iterable[Chat]) -> set[int]:
        """Which of these chats :meth:`can_encrypt` (one key query per hundred peers)."""
        chats = list(chats)
        found = {c.id for c in chats if str(c.id) in self._state.outbound}
        directs = [c for c in chats if c.kind == "direct" and c.peer and c.id not in found]
        peers = sorted({c.peer for c in directs if c.peer})
        have: set[str] = set()
        step = limits.MAX_KEY_QUERY_USERS - 1
        for start in range(0, len(peers), step):
            logins = [*peers[start : start + step], self.login]
            answer = await self.client.call(ep.QUERY_KEYS, QueryKeys(logins=logins))
            have |= {d.login for d in answer.devices}
        if self.login in have or not peers:
            found |= {c.id for c in directs if c.peer in have}
        return found

    async def _member_logins(self, chat: Chat) -> list[str]:
        members = await self.client.call(ep.MEMBERS, chat_id=chat.id)
        return sorted({u.login for u in members.members} | {self.login})

    # --- sending ------------------------------------------------------------------

    async def send(
        self,
        chat: Chat,
        text: str,
        *,
        client_id: str | None = None,
        reply_to: int | None = None,
    ) -> Message:
        """Post ``text``: encrypted when :meth:`can_encrypt` says so, else in the clear."""
        if not await self.can_encrypt(chat):
            return await self.client.send(chat.id, text, client_id=client_id, reply_to=reply_to)
        encrypted = await self.encrypt(chat.id, await self._member_logins(chat), text)
        body = SendMessage(
            text="", client_id=client_id or new_client_id(), encrypted=encrypted, reply_to=reply_to
        )
        return await self.client.call(ep.SEND, body, chat_id=chat.id)

    async def encrypt(self, chat_id: int, logins: list[str], text: str) -> Encrypted:
        """Megolm-encrypt ``text`` for a chat, first sharing the session with every device
        of ``logins`` that does not have it yet."""
        out = self._state.outbound.get(str(chat_id))
        if out is None:
            session = vz.GroupSession()
            out = _Outbound(pickle=session.pickle(self._key))
            self._state.outbound[str(chat_id)] = out
            # this device reads its own messages too
            self._add_inbound(
                vz.InboundGroupSession(session.session_key), chat_id, self.login, self.curve25519
            )
        else:
            session = vz.GroupSession.from_pickle(out.pickle, self._key)
        missing = [d for d in await self.devices(logins) if d.curve25519 not in out.shared_with]
        if missing:
            await self._share(session, chat_id, missing)
            out.shared_with.extend(d.curve25519 for d in missing)
        payload = msgspec.json.encode(_Payload(chat_id=chat_id, sender=self.login, text=text))
        ciphertext = session.encrypt(payload).to_base64()
        out.pickle = session.pickle(self._key)
        self.save()
        return Encrypted(
            algorithm=ALGORITHM,
            sender_key=self.curve25519,
            device_id=self.device_id,
            session_id=session.session_id,
            ciphertext=ciphertext,
        )

    async def _share(
        self, session: vz.GroupSession, chat_id: int, devices: list[DeviceKeys]
    ) -> None:
        """Send the session key over Olm to each device (making Olm sessions as needed)."""
        need = [d for d in devices if not self._state.olm.get(d.curve25519)]
        if need:
            claimed = await self.client.call(
                ep.CLAIM_KEYS,
                ClaimKeys(devices=[DeviceRef(login=d.login, device_id=d.device_id) for d in need]),
            )
            by_device = {(k.login, k.device_id): k for k in claimed.keys}
            for dev in need:
                otk = by_device.get((dev.login, dev.device_id))
                if otk is None:
                    log.warning("device %s of %s has no one-time keys", dev.device_id, dev.login)
                    continue
                try:
                    vz.Ed25519PublicKey.from_base64(dev.ed25519).verify_signature(
                        one_time_key_signing_bytes(dev.login, dev.device_id, otk.key_id, otk.key),
                        vz.Ed25519Signature.from_base64(otk.signature),
                    )
                except (vz.KeyException, vz.SignatureException, vz.DecodeException):
                    log.warning("one-time key of %s/%s: bad signature", dev.login, dev.device_id)
                    continue
                olm = self.account.create_outbound_session(
                    vz.Curve25519PublicKey.from_base64(dev.curve25519),
                    vz.Curve25519PublicKey.from_base64(otk.key),
                )
                self._state.olm[dev.curve25519] = [olm.pickle(self._key)]
        messages: list[OutgoingToDevice] = []
        for dev in devices:
            pickles = self._state.olm.get(dev.curve25519)
            if not pickles:
                continue
            olm = vz.Session.from_pickle(pickles[0], self._key)
            room_key = _RoomKey(
                chat_id=chat_id,
                session_id=session.session_id,
                session_key=session.session_key.to_base64(),
                sender=self.login,
                sender_device=self.device_id,
                sender_ed25519=self.ed25519,
                recipient=dev.login,
                recipient_device=dev.device_id,
            )
            kind, body = olm.encrypt(msgspec.json.encode(room_key)).to_parts()
            pickles[0] = olm.pickle(self._key)
            messages.append(
                OutgoingToDevice(
                    login=dev.login,
                    device_id=dev.device_id,
                    type=1 if kind else 0,
                    ciphertext=_b64(body),
                )
            )
        self.save()
        step = limits.MAX_TO_DEVICE_BATCH
        for start in range(0, len(messages), step):
            batch = SendToDevice(messages=messages[start : start + step])
            await self.client.call(ep.SEND_TO_DEVICE, batch)

    # --- receiving ------------------------------------------------------------------

    async def receive(self) -> int:
        """Fetch, decrypt and acknowledge this device's to-device messages; how many
        Megolm sessions they brought."""
        added = 0
        while True:
            inbox = await self.client.call(ep.TO_DEVICE)
            if not inbox.messages:
                break
            for item in inbox.messages:
                try:
                    added += await self._room_key(item)
                except DecryptionError as exc:
                    log.warning(
                        "to-device message %d from %s refused: %s", item.id, item.sender, exc
                    )
            self.save()
            await self.client.call(ep.ACK_TO_DEVICE, AckToDevice(up_to=inbox.messages[-1].id))
        if added:
            await self.publish()  # pre-key messages used up one-time keys
        return added

    def _olm_decrypt(self, item: ToDevice) -> bytes:
        message = vz.AnyOlmMessage.from_parts(item.type, _unb64(item.ciphertext))
        pickles = self._state.olm.setdefault(item.sender_key, [])
        for i, pickled in enumerate(pickles):
            olm = vz.Session.from_pickle(pickled, self._key)
            pre_key = message.to_pre_key() if item.type == 0 else None
            if pre_key is not None and not olm.session_matches(pre_key):
                continue
            try:
                plaintext = olm.decrypt(message)
            except vz.OlmDecryptionException:
                continue
            pickles[i] = olm.pickle(self._key)
            return plaintext
        pre_key = message.to_pre_key() if item.type == 0 else None
        if pre_key is None:
            raise DecryptionError("no_key", "an Olm message of a session this device does not have")
        try:
            olm, plaintext = self.account.create_inbound_session(
                vz.Curve25519PublicKey.from_base64(item.sender_key), pre_key
            )
        except (vz.SessionCreationException, vz.KeyException, vz.DecodeException) as exc:
            raise DecryptionError(
                "tampered", f"a to-device message that does not decrypt: {exc}"
            ) from exc
        pickles.insert(0, olm.pickle(self._key))
        return plaintext

    async def _room_key(self, item: ToDevice) -> int:
        plaintext = self._olm_decrypt(item)
        try:
            key = msgspec.json.decode(plaintext, type=_RoomKey)
        except msgspec.DecodeError as exc:
            raise DecryptionError("mismatch", "a to-device message that is not a room key") from exc
        if (key.recipient, key.recipient_device) != (self.login, self.device_id):
            raise DecryptionError("mismatch", "a room key meant for another device")
        # the sender's Curve25519 key (proven by Olm) must be the device it claims to be
        devices = await self.devices([key.sender])
        sender = next(
            (d for d in devices if d.login == key.sender and d.device_id == key.sender_device),
            None,
        )
        if (
            sender is None
            or sender.curve25519 != item.sender_key
            or sender.ed25519 != key.sender_ed25519
            or key.sender != item.sender
        ):
            raise DecryptionError(
                "mismatch", f"a room key whose sender is not {key.sender}'s device"
            )
        try:
            inbound = vz.InboundGroupSession(vz.SessionKey(key.session_key))
        except (vz.SessionKeyDecodeException, ValueError) as exc:
            raise DecryptionError("tampered", "a room key that does not decode") from exc
        if inbound.session_id != key.session_id or key.session_id in self._state.inbound:
            return 0
        self._add_inbound(inbound, key.chat_id, key.sender, item.sender_key)
        return 1

    def _add_inbound(
        self, inbound: vz.InboundGroupSession, chat_id: int, sender: str, sender_key: str
    ) -> None:
        self._state.inbound[inbound.session_id] = _Inbound(
            pickle=inbound.pickle(self._key), chat_id=chat_id, sender=sender, sender_key=sender_key
        )

    async def decrypt(self, message: Message) -> Decrypted:
        """The checked plaintext of an encrypted message (fetching this device's to-device
        messages once if its session is not here yet)."""
        enc = message.encrypted
        if enc is None:
            raise DecryptionError("mismatch", "this message is not encrypted")
        if enc.session_id not in self._state.inbound:
            await self.receive()
        return self.decrypt_now(message)

    async def reveal(self, message: Message) -> str | None:
        """The text to show for an encrypted message: its plaintext, or one line saying
        why it cannot be shown; None for a replayed copy (shown once, under its first
        id). Fetches this device's keys first if it has not the message's yet."""
        enc = message.encrypted
        if enc is not None and enc.session_id not in self._state.inbound:
            await self.receive()
        return self.reveal_now(message)

    def reveal_now(self, message: Message) -> str | None:
        """:meth:`reveal` without fetching anything (the TUI's store, the local cache)."""
        try:
            return self.decrypt_now(message).text
        except DecryptionError as exc:
            if exc.kind == "replayed":
                return None
            if exc.kind == "no_key":
                return NO_KEY_TEXT
            return f"(not shown: {exc})"

    def has_key(self, message: Message) -> bool:
        """Whether this device holds the session of an encrypted message."""
        enc = message.encrypted
        return enc is None or enc.session_id in self._state.inbound

    def decrypt_now(self, message: Message) -> Decrypted:
        """:meth:`decrypt` without fetching anything."""
        enc = message.encrypted
        if enc is None:
            raise DecryptionError("mismatch", "this message is not encrypted")
        entry = self._state.inbound.get(enc.session_id)
        if entry is None:
            raise DecryptionError(
                "no_key", "can't decrypt: this device was not given the key of this message"
            )
        if entry.sender != message.author or entry.sender_key != enc.sender_key:
            raise DecryptionError(
                "mismatch",
                f"message #{message.id} claims to be from {message.author},"
                " but its key is not theirs",
            )
        inbound = vz.InboundGroupSession.from_pickle(entry.pickle, self._key)
        try:
            megolm = vz.MegolmMessage.from_base64(enc.ciphertext)
            if megolm.message_index() < inbound.first_known_index:
                # sent before this device was given the session: the key is not here
                raise DecryptionError(
                    "no_key",
                    f"can't decrypt: message #{message.id} was sent before this device"
                    " was given its key",
                )
            result = inbound.decrypt(megolm)
        except (vz.MegolmDecryptionException, vz.DecodeException) as exc:
            raise DecryptionError(
                "tampered",
                f"message #{message.id} was tampered with or is corrupt: it does not decrypt"
                f" ({exc})",
            ) from exc
        index = str(result.message_index)
        first = entry.seen.get(index)
        if first is not None and first != message.id:
            raise DecryptionError(
                "replayed",
                f"message #{message.id} replays message #{first} (the same ciphertext again)",
            )
        try:
            payload = msgspec.json.decode(result.plaintext, type=_Payload)
        except msgspec.DecodeError as exc:
            raise DecryptionError(
                "tampered", f"message #{message.id}: no readable payload"
            ) from exc
        if payload.chat_id != message.chat_id or payload.chat_id != entry.chat_id:
            raise DecryptionError("mismatch", f"message #{message.id} was moved from another chat")
        if payload.sender != message.author:
            raise DecryptionError("mismatch", f"message #{message.id} is not from {message.author}")
        if first is None:
            entry.seen[index] = message.id
            self.save()
        return Decrypted(text=payload.text, sender=payload.sender, device_id=enc.device_id)

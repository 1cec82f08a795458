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
* A Megolm message index is never used twice, even when the client is killed at any
  moment (a reused index would encrypt two messages under the same key): before an index
  leaves this device, the state on disk (written and fsync'd) holds the chat's session
  ratcheted past it. One write reserves :data:`RESERVED_INDEXES` indexes
  (:meth:`DeviceCrypto._reserve`), so a send writes the state once per that many
  messages, not per message; a crash skips the unused rest of a reservation (readers
  ratchet forward over them).
* The members of a chat and their devices' keys are kept in memory while an event
  stream of the client is connected (:meth:`Client.watch_events
  <messenger_client.api.Client.watch_events>`), so an encrypted send makes one request,
  as a plain one does: a ``chat`` or ``chat_left`` event forgets a chat's members (and
  every user's keys: a member who joins may have changed devices meanwhile), a
  ``device_list`` event forgets one user's keys (the server logs one when a user
  registers or removes a device), a reconnect or a ``reset`` forgets everything, the
  way Matrix's ``device_lists.changed`` works. Without a connected stream, nothing is
  kept: every send asks the server. An event the server logged but the stream has not
  read yet (or a device registered after the answer) is caught by the server: a send
  names the devices it looked at (``SendMessage.devices``), a send whose devices are
  not the members' any more is refused ``devices_changed``, and :meth:`DeviceCrypto.send`
  asks again, shares the key with the new devices and sends again (same client_id).
* Receiving: a ``to_device`` event for this device fetches its inbox, decrypts each Olm
  message, checks that the sending device is who the key directory (with that
  device's own signature) says, keeps the Megolm session and acknowledges the inbox.
* A Megolm message index seen before under another message id is a replay and refused;
  a ciphertext whose signature fails is refused as tampered with. The indexes seen are
  appended to ``directory/replay.log`` (:class:`_ReplayLog`), one line a message, so
  decrypting never rewrites the state: it is written only when a key or session changes.
* One task at a time changes the state (:meth:`DeviceCrypto.lock`): every method that
  awaits something between reading and writing a session holds it, so a console or a
  TUI may send, fetch and verify from several tasks at once.
* Devices are remembered on first sight (trust on first use); a known device whose
  keys change is never encrypted to again and is announced loudly
  (:class:`~messenger_client.trust.DeviceKeyChanged`), a new device of a known user is
  announced too (:class:`~messenger_client.trust.NewDevice`). Comparing a short
  authentication string marks a device verified (:attr:`DeviceCrypto.verification`,
  :mod:`messenger_client.verification`); a verified device of this user is given the
  keys of earlier messages when it asks (:attr:`DeviceCrypto.key_sharing`,
  :mod:`messenger_client.key_sharing`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import mimetypes
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import msgspec
import vodozemac as vz

from messenger_protocol import (
    AckToDevice,
    ApiError,
    BaseEvent,
    Chat,
    ChatLeft,
    ChatUpdated,
    ClaimKeys,
    DeviceKeys,
    DeviceListChanged,
    DeviceRef,
    EditHistory,
    EditMessage,
    Encrypted,
    ErrorCode,
    Message,
    MessengerError,
    OneTimeKey,
    OutgoingToDevice,
    QueryKeys,
    Reset,
    SendMessage,
    SendToDevice,
    ToDevice,
    UploadKeys,
    device_set_digest,
    device_signing_bytes,
    format_too_large,
    limits,
    one_time_key_signing_bytes,
    quote_of,
)
from messenger_protocol import endpoints as ep

from .api import Client, Progress, new_client_id
from .events import StreamItem
from .key_sharing import KeySharing
from .trust import DeviceInfo, DeviceKeyChanged, NewDevice, NoticeHook, TrustNotice
from .verification import Verifications

__all__ = [
    "ALGORITHM",
    "NO_KEY_TEXT",
    "Decrypted",
    "DecryptionError",
    "DeviceCrypto",
    "EncryptedFile",
    "KeyChanged",
    "device_directory",
    "file_refusal",
    "open_file",
    "seal_file",
    "sealed_size",
]

log = logging.getLogger(__name__)

ALGORITHM: Literal["m.megolm.v1.aes-sha2"] = "m.megolm.v1.aes-sha2"
ONE_TIME_KEYS_TARGET = 50
"""One-time keys a device keeps published (topped up when fewer than half are left)."""
ROTATE_AFTER_MESSAGES = 100
"""A chat's Megolm session is replaced after this many messages (Matrix's default)."""
ROTATE_AFTER_SECONDS = 7 * 24 * 3600.0
"""... or when it is this old (Matrix's default: a week)."""
SEND_ATTEMPTS = 3
"""Tries of an encrypted send the server refuses with ``devices_changed`` (each asks
the key directory again and shares the key with the devices that came)."""
RESERVED_INDEXES = 32
"""Megolm message indexes of a chat's session that one write of the state covers: the
state on disk holds the session this many indexes ahead of the next one sent."""
STATE_FILE = "state.json"
REPLAY_FILE = "replay.log"
"""Replay records, one line a message decrypted: ``session_id index message_id``."""
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
    quote: str | None = None
    """The excerpt of the message this one answers, as its sender quoted it."""
    files: tuple[EncryptedFile, ...] = ()
    mentions: tuple[str, ...] = ()
    """Logins the sender mentions (also told to the server, which cannot read the text)."""


class _KnownDevice(msgspec.Struct):
    curve25519: str
    ed25519: str
    verified: bool = False
    """A short authentication string compared with it matched (never on first sight)."""
    changed: bool = False
    """The key directory showed other keys for it: it is not encrypted to any more."""


class _Outbound(msgspec.Struct):
    pickle: str
    """The session as the state on disk holds it: ratcheted past every message index
    this device used (up to :data:`RESERVED_INDEXES` ahead of the one it sends next)."""
    shared_with: list[str] = []
    """Curve25519 keys of the devices that have this session's key."""
    created_at: float = 0.0


class _Inbound(msgspec.Struct):
    pickle: str
    chat_id: int
    sender: str
    sender_key: str
    seen: dict[str, int] = {}
    """Message index (as text) -> the message id it arrived as: kept here by earlier
    versions, moved to :data:`REPLAY_FILE` on load (:class:`_ReplayLog`)."""


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
    requested: dict[str, int] = {}
    """Megolm session id -> chat id: keys asked of this user's other devices, not come."""
    encryption: dict[str, bool] = {}
    """Direct chat id (as text) -> this device's user turned encryption on or off there."""


class _Kind(msgspec.Struct):
    """The ``type`` of a to-device plaintext (each part decodes its own)."""

    type: str


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


class EncryptedFile(msgspec.Struct, frozen=True):
    """A file of an encrypted message as its payload names it: uploaded encrypted under
    a one-off Megolm session whose key travels here, inside the message."""

    id: str
    """The attachment id of the uploaded ciphertext."""
    name: str
    mime: str
    size: int
    """Bytes of the plaintext."""
    sha256: str
    """Hex SHA-256 of the plaintext (checked after decryption)."""
    key: str
    """The session key that opens the ciphertext."""


class _Payload(msgspec.Struct, frozen=True):
    """The plaintext inside a Megolm message."""

    chat_id: int
    sender: str
    text: str
    edit_of: int | None = None
    """Set in an edit: the message it replaces (an edit moved to another is refused)."""
    quote: str | None = None
    files: list[EncryptedFile] = []
    mentions: list[str] = []
    thread_root: int | None = None
    """Set in a thread comment: the root it was posted under (a comment moved to another
    thread, or out of one, is refused)."""


def seal_file(data: bytes) -> tuple[bytes, str]:
    """Encrypt a file's bytes under a fresh one-off Megolm session (AES-256-CBC,
    HMAC-SHA-256, Ed25519-signed): the ciphertext to upload and the key to send inside
    the encrypted message."""
    session = vz.GroupSession()
    key = session.session_key.to_base64()
    return session.encrypt(data).to_bytes(), key


def sealed_size(size: int) -> int:
    """Bytes of the ciphertext :func:`seal_file` makes of a file of ``size`` bytes: the
    size the server's file limit applies to. AES-CBC pads the plaintext to the next
    multiple of 16 (always adding 1 to 16 bytes); the Megolm message adds its version,
    message index and length fields, an 8-byte MAC and a 64-byte Ed25519 signature (96
    bytes in all for a 5 MiB file)."""
    padded = (size // 16 + 1) * 16
    length_bytes = max(1, (padded.bit_length() + 6) // 7)  # a protobuf varint
    return 1 + 2 + 1 + length_bytes + padded + 8 + 64


def file_refusal(size: int, limit: int = limits.MAX_FILE_BYTES, *, encrypted: bool) -> str | None:
    """Why a file of ``size`` bytes cannot be sent (None: it can): the limit is the
    server's, on what is uploaded -- for an encrypted chat the ciphertext
    (:func:`sealed_size`), so a file just under the limit may not fit once encrypted."""
    sent = sealed_size(size) if encrypted else size
    if sent <= limit:
        return None
    return format_too_large(sent, limit) + (" once encrypted" if encrypted else "")


def open_file(ciphertext: bytes, file: EncryptedFile) -> bytes:
    """The plaintext of a file :func:`seal_file` encrypted, checked against its hash."""
    try:
        inbound = vz.InboundGroupSession(vz.SessionKey(file.key))
        plaintext = inbound.decrypt(vz.MegolmMessage.from_bytes(ciphertext)).plaintext
    except (vz.MegolmDecryptionException, vz.DecodeException, vz.SessionKeyDecodeException) as exc:
        raise DecryptionError("tampered", f"{file.name} was tampered with: {exc}") from exc
    if hashlib.sha256(plaintext).hexdigest() != file.sha256 or len(plaintext) != file.size:
        raise DecryptionError("tampered", f"{file.name} is not the file that was sent")
    return plaintext


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _StateLock:
    """One task at a time with a device's sessions. The task holding it may take it
    again (sending shares keys, receiving answers a verification), so the parts of
    :class:`DeviceCrypto` take it wherever they start."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield  # already ours: an inner step of the same operation
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


def _locked(
    method: Callable[Concatenate[DeviceCrypto, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[DeviceCrypto, _P], Coroutine[Any, Any, _R]]:
    """The method runs holding the device's state lock (:meth:`DeviceCrypto.lock`)."""

    @functools.wraps(method)
    async def run(self: DeviceCrypto, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with self.lock():
            return await method(self, *args, **kwargs)

    return run


def _refusal_text(exc: DecryptionError) -> str:
    """What a client shows in place of an encrypted text it cannot or will not show."""
    return NO_KEY_TEXT if exc.kind == "no_key" else f"(not shown: {exc})"


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


def _seal_to(path: Path, sealed: Path) -> tuple[int, str, str]:
    """Encrypt the file at ``path`` into ``sealed`` (:func:`seal_file`): the plaintext's
    size and hex SHA-256, and the key."""
    data = path.read_bytes()
    ciphertext, key = seal_file(data)
    sealed.write_bytes(ciphertext)
    return len(data), hashlib.sha256(data).hexdigest(), key


def _write_plain(dest: Path, name: str, data: bytes) -> Path:
    target = dest / Path(name).name if dest.is_dir() else dest
    target.write_bytes(data)
    return target


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (mode 0600), atomically and durably: the
    bytes are fsync'd before the rename and the directory after it (else a power loss
    could bring the old file back, and with it a Megolm index already used)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _ReplayLog:
    """The Megolm message indexes this device decrypted, each with the message id it
    came as (a second id for one index is a replay), in :data:`REPLAY_FILE`: one short
    line appended per message, so decrypting never rewrites the pickled state.

    A line is written (one ``write``, to the kernel) before the message it records is
    shown, so a crash of the client loses none; it is flushed to the disk (``fsync``)
    in a worker thread once per turn of the event loop, for every line of that turn
    (at once without a running loop). A torn last line (the machine lost power in
    that moment) is skipped. The file holds ids and numbers only, no key or text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: dict[tuple[str, int], int] = {}
        self._sync_pending = False
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_bytes().splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    self._seen[(parts[0].decode(), int(parts[1]))] = int(parts[2])

    def get(self, session_id: str, index: int) -> int | None:
        """The message id an index of a session was first decrypted as (None: never)."""
        return self._seen.get((session_id, index))

    def add(self, records: Iterable[tuple[str, int, int]]) -> None:
        """Record (session id, message index, message id) triples."""
        lines = b"".join(f"{s} {i} {m}\n".encode() for s, i, m in records)
        if not lines:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)
        for line in lines.splitlines():
            session_id, index, message_id = line.decode().split()
            self._seen[(session_id, int(index))] = int(message_id)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._sync()
            return
        if not self._sync_pending:
            self._sync_pending = True
            loop.call_soon(self._sync_soon, loop)

    def _sync_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sync_pending = False
        loop.run_in_executor(None, self._sync)

    def _sync(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot flush %s: %s", self.path, exc)


class DeviceCrypto:
    """One device's keys and sessions, kept in ``directory``; talks through ``client``."""

    def __init__(
        self,
        client: Client,
        directory: Path,
        key: bytes,
        state: _State,
        login: str | None = None,
        on_notice: NoticeHook | None = None,
    ) -> None:
        self.client = client
        self.directory = directory
        self._login = login
        self.known_files: dict[str, EncryptedFile] = {}
        """Files of the messages this device decrypted, by attachment id (in memory)."""
        self.rotate_after_messages = ROTATE_AFTER_MESSAGES
        self.rotate_after_seconds = ROTATE_AFTER_SECONDS
        self._key = key
        self._state = state
        self._on_notice = on_notice
        self.account = vz.Account.from_pickle(state.account, key)
        self._lock = _StateLock()
        self._created_at = float("inf")
        """When the key directory registered this device (known after a query)."""
        self._devices_changed = False
        """:meth:`devices` remembered a device or a change of keys (its state is saved)."""
        self._warned: set[tuple[str, str]] = set()
        """Devices whose changed keys were announced in this run."""
        self.verification = Verifications(self)
        """Verifying other devices by a short authentication string (emoji or numbers)."""
        self.key_sharing = KeySharing(self)
        """Keys of earlier messages between this user's verified devices."""
        self._replays = _ReplayLog(directory / REPLAY_FILE)
        self._sessions: dict[str, tuple[str, vz.InboundGroupSession]] = {}
        """Megolm session id -> (its pickle, unpickled): decrypting unpickles once."""
        self._members: dict[int, list[str]] = {}
        """Chat id -> its members' logins (this user's too), while a stream is connected."""
        self._device_keys: dict[str, tuple[list[DeviceKeys], list[tuple[str, str]]]] = {}
        """Login -> their checked devices (this one left out) and (login, device id) of
        every device of theirs the key directory showed, while a stream is connected."""
        self._generation = 0
        """Grows at every event that forgets members or keys: an answer asked for before
        one is not kept."""
        client.watch_events(self._on_stream_item)
        self._sending: dict[str, tuple[_Outbound, vz.GroupSession, int]] = {}
        """Chat id (as text) -> (its outbound entry, the session at the index it sends
        next, the index the entry's pickle -- the one on disk -- is at)."""
        # replay records an earlier version kept in the state move to their own file
        moved = [
            (session_id, int(index), message_id)
            for session_id, entry in state.inbound.items()
            for index, message_id in entry.seen.items()
        ]
        if moved:
            self._replays.add(moved)
            self._replays._sync()
            for entry in state.inbound.values():
                entry.seen = {}

    # --- identity -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        client: Client,
        directory: Path,
        *,
        passphrase: str | None = None,
        on_notice: NoticeHook | None = None,
    ) -> DeviceCrypto:
        """Load this device's identity from ``directory`` (made on first use) and publish
        its keys for the logged-in session. ``on_notice`` is told of verifications, new
        devices, changed keys and shared keys (:mod:`messenger_client.trust`)."""
        crypto = cls.load(client, directory, passphrase=passphrase, on_notice=on_notice)
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
        on_notice: NoticeHook | None = None,
    ) -> DeviceCrypto:
        """:meth:`open` without publishing (no I/O but the data dir): what was received
        before decrypts at once, offline too; :meth:`publish` once the session is known
        (``login`` names the user while the client does not know it yet)."""
        key, state = _load(directory, passphrase)
        crypto = cls(client, directory, key, state, login, on_notice)
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

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold this device's state: the Olm and Megolm sessions change one operation at
        a time (two sends at once would encrypt under the same Megolm index, and the
        second would be refused as a replay). Re-entrant within one task; the
        synchronous reads (:meth:`decrypt_now`, :meth:`reveal_now`) need no lock."""
        return self._lock.hold()

    def save(self) -> None:
        """Write the state (every secret in it pickled under the key), mode 0600."""
        self._state.account = self.account.pickle(self._key)
        _write_private(self.directory / STATE_FILE, msgspec.json.encode(self._state))

    @_locked
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

    @_locked
    async def unpublish(self) -> None:
        """Take this device out of the key directory (its user logs out of it): the
        server forgets its keys, one-time keys and waiting to-device messages, so other
        devices stop encrypting to it (and replace the Megolm sessions it had). The
        identity stays in the data dir: a later :meth:`publish` is the same device."""
        await self.client.call(ep.DELETE_DEVICE_KEYS)
        self._state.uploaded = False
        self.save()

    def close(self) -> None:
        """Done with this device on its client (logout, another login, the app ends):
        the client stops telling it of its event streams and its verifications' timeouts
        stop, so a later login on the same :class:`Client` has one live
        :class:`DeviceCrypto`, not one more per login. The state on disk stays; a new
        :meth:`open` goes on from it."""
        self.client.unwatch_events(self._on_stream_item)
        self.verification.close()
        self._members.clear()
        self._device_keys.clear()

    # --- devices ----------------------------------------------------------------

    def notify(self, notice: TrustNotice) -> None:
        """Tell the owner (``on_notice``) of something about devices and their trust."""
        log.info("trust: %r", notice)
        if self._on_notice is not None:
            self._on_notice(notice)

    def _check_device(self, dev: DeviceKeys, chat_id: int | None = None) -> bool:
        """A device whose self-signature verifies and whose keys are the ones first seen
        (a device whose keys changed is left out, and announced once per run)."""
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
            # the first devices of another user are taken as they come (trust on first
            # use); a device added later, or a device of this user registered after this
            # one, is announced
            own_newer = dev.login == self.login and dev.created_at >= self._created_at
            announce = bool(known) or own_newer
            known[dev.device_id] = _KnownDevice(dev.curve25519, dev.ed25519)
            self._devices_changed = True
            if announce:
                self.notify(NewDevice(login=dev.login, device_id=dev.device_id, chat_id=chat_id))
        elif seen.changed or (seen.curve25519, seen.ed25519) != (dev.curve25519, dev.ed25519):
            self._devices_changed |= not seen.changed
            seen.changed = True
            if (dev.login, dev.device_id) not in self._warned:
                self._warned.add((dev.login, dev.device_id))
                log.warning("the keys of %s's device %s changed", dev.login, dev.device_id)
                self.notify(
                    DeviceKeyChanged(login=dev.login, device_id=dev.device_id, chat_id=chat_id)
                )
            return False
        return True

    def _forget_devices(self, chat_id: int, logins: Iterable[str]) -> None:
        """Forget what is kept of a chat's members and these users' devices (the server
        said they changed): the next send asks the server again."""
        self._members.pop(chat_id, None)
        for login in logins:
            self._device_keys.pop(login, None)
        self._generation += 1

    def _on_stream_item(self, item: StreamItem) -> None:
        """What an event stream of the client read: forget the members and device keys
        it may have changed (see the module docstring)."""
        if isinstance(item, DeviceListChanged):
            self._device_keys.pop(item.login, None)
        elif isinstance(item, ChatUpdated | ChatLeft):
            self._members.pop(item.chat.id if isinstance(item, ChatUpdated) else item.chat_id, None)
            self._device_keys.clear()
        elif isinstance(item, Reset) or not isinstance(item, BaseEvent):  # (re)connected, gone
            self._members.clear()
            self._device_keys.clear()
        else:
            return
        self._generation += 1

    async def devices(
        self, logins: Sequence[str], chat_id: int | None = None, *, cached: bool = False
    ) -> list[DeviceKeys]:
        """The checked devices of these users (this device left out; a device whose keys
        changed is left out too, and announced). ``cached``: the users' devices kept in
        memory are taken as they are (only while a stream is connected; see the module
        docstring), the others asked for."""
        return (await self._devices_seen(logins, chat_id, cached=cached))[0]

    @_locked
    async def _devices_seen(
        self, logins: Sequence[str], chat_id: int | None = None, *, cached: bool = False
    ) -> tuple[list[DeviceKeys], list[tuple[str, str]]]:
        """:meth:`devices`, with ``(login, device_id)`` of every device the key directory
        showed for them (this one and refused ones too): what an encrypted send tells
        the server it looked at (``SendMessage.devices``), from the same answer."""
        wanted = sorted(set(logins))
        generation = self._generation
        have: list[DeviceKeys] = []
        seen: list[tuple[str, str]] = []
        if cached and self.client.streaming:
            for login in wanted:
                kept = self._device_keys.get(login)
                if kept is not None:
                    have.extend(kept[0])
                    seen.extend(kept[1])
            wanted = [login for login in wanted if login not in self._device_keys]
            if not wanted:
                return have, seen
        fresh, shown = await self._query_devices(wanted, chat_id)
        if self._generation != generation:  # forgotten meanwhile: ask again, for all
            if have:
                return await self._devices_seen(logins, chat_id)
        elif self.client.streaming:
            for login in wanted:
                self._device_keys[login] = (
                    [d for d in fresh if d.login == login],
                    [ref for ref in shown if ref[0] == login],
                )
        if not have:
            return fresh, shown
        return sorted([*have, *fresh], key=lambda d: (d.login, d.device_id)), [*seen, *shown]

    async def _query_devices(
        self, logins: list[str], chat_id: int | None
    ) -> tuple[list[DeviceKeys], list[tuple[str, str]]]:
        devices: list[DeviceKeys] = []
        step = limits.MAX_KEY_QUERY_USERS  # a group may have more members than one query
        for start in range(0, len(logins), step):
            part = QueryKeys(logins=logins[start : start + step])
            devices.extend((await self.client.call(ep.QUERY_KEYS, part)).devices)
        for d in devices:
            if d.login == self.login and d.device_id == self.device_id:
                self._created_at = d.created_at  # when the server registered this device
        self._devices_changed = False
        out = [
            d
            for d in devices
            if not (d.login == self.login and d.device_id == self.device_id)
            and self._check_device(d, chat_id)
        ]
        if self._devices_changed:  # a device first seen, or keys changed: remembered
            self.save()
        return out, [(d.login, d.device_id) for d in devices]

    def is_verified(self, login: str, device_id: str) -> bool:
        """Whether this device verified that one (and its keys have not changed since)."""
        known = self._state.devices.get(login, {}).get(device_id)
        return known is not None and known.verified and not known.changed

    def known_keys(self, login: str, device_id: str) -> tuple[str, str] | None:
        """(Curve25519, Ed25519) of a device as first seen, None if unknown or changed."""
        known = self._state.devices.get(login, {}).get(device_id)
        if known is None or known.changed:
            return None
        return known.curve25519, known.ed25519

    def mark_verified(self, login: str, device_id: str) -> None:
        """Remember that a device's keys were verified (kept in the state)."""
        known = self._state.devices.get(login, {}).get(device_id)
        if known is None or known.changed:
            raise KeyChanged(f"{login}'s device {device_id} is unknown or its keys changed")
        known.verified = True
        self.save()

    async def device_list(self, login: str) -> list[DeviceInfo]:
        """Every device of a user the key directory shows, with what this device thinks
        of it (this device itself included, first, when ``login`` is this user)."""
        shown = {d.device_id for d in await self.devices([login])}
        out: list[DeviceInfo] = []
        if login == self.login:
            out.append(
                DeviceInfo(
                    login=login,
                    device_id=self.device_id,
                    ed25519=self.ed25519,
                    verified=True,
                    key_changed=False,
                    current=True,
                )
            )
        for device_id, known in sorted(self._state.devices.get(login, {}).items()):
            if device_id in shown or known.changed:
                out.append(
                    DeviceInfo(
                        login=login,
                        device_id=device_id,
                        ed25519=known.ed25519,
                        verified=known.verified and not known.changed,
                        key_changed=known.changed,
                    )
                )
        return out

    def _decided(self, chat: Chat) -> bool | None:
        """Whether a chat is encrypted, where that does not depend on the key directory
        (None: a direct chat is, once both its users have a device with keys).

        The one rule: a group is encrypted when its owner made it so, for good; a direct
        chat is encrypted by default, unless this device's user turned it off there
        (:meth:`set_encryption`); once this device encrypted in it, it stays encrypted
        (a server hiding the other user's devices does not turn encryption off)."""
        if chat.encrypted:
            return True
        if chat.kind != "direct":
            return False
        choice = self._state.encryption.get(str(chat.id))
        if choice is not None:
            return choice
        if str(chat.id) in self._state.outbound:
            return True
        return None

    def encryption_choice(self, chat: Chat) -> bool | None:
        """What this device's user chose for a direct chat (None: the default)."""
        return self._state.encryption.get(str(chat.id))

    async def set_encryption(self, chat: Chat, on: bool) -> bool:
        """Turn end-to-end encryption of a direct chat on or off for what this device
        sends (kept in the device's state); whether it is now on. On needs a device with
        keys of the other user; a group's encryption is its owner's choice at creation."""
        if chat.kind != "direct":
            if chat.encrypted == on:
                return on
            raise ApiError(
                ErrorCode.CONFLICT,
                f"{chat.name} is a group: it is encrypted for good"
                if chat.encrypted
                else f"{chat.name} is a group: only one made with /create --encrypted is encrypted",
            )
        if on:
            logins = await self._member_logins(chat.id)
            found = await self.client.call(ep.QUERY_KEYS, QueryKeys(logins=logins))
            missing = set(logins) - {d.login for d in found.devices}
            if missing:
                who = ", ".join(sorted(missing))
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"{who} has no device with keys yet: nothing can be encrypted to them",
                )
        self._state.encryption[str(chat.id)] = on
        self.save()
        return on

    async def can_encrypt(self, chat: Chat) -> bool:
        """Whether what this device sends in this chat is encrypted (the rule is
        :meth:`_decided`'s; a direct chat left to the default asks the key directory
        whether both users have a device with keys)."""
        decided = self._decided(chat)
        if decided is not None:
            return decided
        logins = await self._member_logins(chat.id)
        found = await self.client.call(ep.QUERY_KEYS, QueryKeys(logins=logins))
        return {d.login for d in found.devices} >= set(logins)

    async def encrypted_chats(self, chats: Iterable[Chat]) -> set[int]:
        """Which of these chats :meth:`can_encrypt` (one key query per hundred peers)."""
        chats = list(chats)
        found = {c.id for c in chats if self._decided(c) is True}
        directs = [c for c in chats if self._decided(c) is None and c.peer]
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

    async def _member_logins(self, chat_id: int) -> list[str]:
        """The logins of a chat's members and this user (kept in memory while a stream
        is connected; see the module docstring)."""
        kept = self._members.get(chat_id)
        if kept is not None and self.client.streaming:
            return kept
        generation = self._generation
        members = await self.client.call(ep.MEMBERS, chat_id=chat_id)
        logins = sorted({u.login for u in members.members} | {self.login})
        if self._generation == generation and self.client.streaming:
            self._members[chat_id] = logins
        return logins

    # --- sending ------------------------------------------------------------------

    async def send(
        self,
        chat: Chat,
        text: str,
        *,
        client_id: str | None = None,
        reply_to: int | None = None,
        quote: str | None = None,
        files: Sequence[Path] = (),
        mentions: Sequence[str] = (),
        progress: Progress | None = None,
        thread_root: int | None = None,
    ) -> Message:
        """Post ``text`` (and ``files``): encrypted when :meth:`can_encrypt` says so, else
        in the clear. Encrypted, a reply carries ``quote`` (the excerpt of the message it
        answers) inside the ciphertext; each file is encrypted with its own key, uploaded
        as opaque bytes (the server's size limit applies to the ciphertext) and named,
        with its key, inside the message; ``mentions`` go to the server as metadata.
        ``progress(sent, total)`` follows each file's upload in turn. With
        ``thread_root`` (the id of a thread's root message) it is a comment in that
        thread, encrypted like a message of its chat, under the same Megolm session
        (:meth:`comment` finds the root and the chat of any message)."""
        if not await self.can_encrypt(chat):
            ids = [(await self.client.upload(path, progress=progress)).id for path in files]
            if thread_root is not None:
                return await self.client.comment(
                    thread_root, text, client_id=client_id, attachments=ids
                )
            return await self.client.send(
                chat.id, text, client_id=client_id, reply_to=reply_to, attachments=ids
            )
        if reply_to is not None and quote is None:
            original = await self.client.call(ep.MESSAGE, message_id=reply_to)
            text = original.text
            if original.encrypted is not None:
                try:
                    text = (await self.decrypt(original)).text
                except DecryptionError:
                    text = ""  # not readable here: the quote stays empty
            deleted = original.deleted_at is not None
            quote = quote_of(original.id, original.author, text, deleted).text
        sealed = [await self.upload_file(path, progress) for path in files]
        client_id = client_id or new_client_id()

        async def send_once(logins: list[str]) -> Message:
            encrypted, digest = await self._encrypt(
                chat.id,
                logins,
                text,
                quote=quote,
                files=sealed,
                mentions=mentions,
                thread_root=thread_root,
            )
            body = SendMessage(
                text="",
                client_id=client_id,  # the same on every try: stored once
                encrypted=encrypted,
                reply_to=reply_to,
                attachments=[f.id for f in sealed],
                mentions=sorted(set(mentions)),
                devices=digest,
            )
            if thread_root is not None:
                return await self.client.call(ep.COMMENT, body, message_id=thread_root)
            return await self.client.call(ep.SEND, body, chat_id=chat.id)

        return await self._until_devices_hold(chat.id, f"a send to chat {chat.id}", send_once)

    async def comment(self, message_id: int, text: str, *, client_id: str | None = None) -> Message:
        """Comment on a message (a comment's comment joins its root's thread):
        encrypted when its chat is (:meth:`send` with ``thread_root``)."""
        message = await self.client.call(ep.MESSAGE, message_id=message_id)
        root = message.thread_root if message.thread_root is not None else message.id
        chat = await self.client.chat(message.chat_id)
        return await self.send(chat, text, client_id=client_id, thread_root=root)

    @_locked
    async def edit(self, message_id: int, text: str) -> Message:
        """Edit one's own message: an encrypted one with a new ciphertext (its payload
        names the message it replaces), one in the clear as the server edits it."""
        message = await self.client.call(ep.MESSAGE, message_id=message_id)
        if message.encrypted is None:
            return await self.client.edit(message_id, text)

        async def edit_once(logins: list[str]) -> Message:
            encrypted, digest = await self._encrypt(
                message.chat_id, logins, text, edit_of=message_id, thread_root=message.thread_root
            )
            body = EditMessage(text="", encrypted=encrypted, devices=digest)
            return await self.client.call(ep.EDIT_MESSAGE, body, message_id=message_id)

        return await self._until_devices_hold(
            message.chat_id, f"an edit of message {message_id}", edit_once
        )

    async def _until_devices_hold(
        self, chat_id: int, what: str, attempt: Callable[[list[str]], Awaitable[Message]]
    ) -> Message:
        """``attempt(logins)`` encrypts for the chat's members and calls the server; when
        the server refuses it with ``devices_changed`` (a device or a member came since
        the key directory was asked), what is kept of them is forgotten and it runs
        again, up to :data:`SEND_ATTEMPTS` times in all: the key reaches the new ones."""
        tries = 0
        while True:
            tries += 1
            logins = await self._member_logins(chat_id)
            try:
                return await attempt(logins)
            except ApiError as exc:
                if exc.code != ErrorCode.DEVICES_CHANGED or tries >= SEND_ATTEMPTS:
                    raise
                log.info("%s: devices changed before the server took it (%s); again", what, exc)
                self._forget_devices(chat_id, [*logins, *(d.login for d in exc.devices or ())])

    async def upload_file(self, path: Path, progress: Progress | None = None) -> EncryptedFile:
        """Encrypt a file with a key of its own and upload the ciphertext (named
        ``encrypted``, ``application/octet-stream``: the server learns only its size);
        ``progress(sent, total)`` follows the upload of the ciphertext.

        Needs no lock: the file's one-off session is no part of this device's state,
        and reading, hashing and encrypting run in a worker thread, so messages go and
        come while a file is encrypted and uploaded. A file whose ciphertext would be
        over the server's limit is refused before anything is read or sent."""
        refusal = file_refusal((await asyncio.to_thread(path.stat)).st_size, encrypted=True)
        if refusal is not None:
            raise ApiError(ErrorCode.TOO_LARGE, refusal, limit=limits.MAX_FILE_BYTES)
        with tempfile.TemporaryDirectory() as tmp:
            sealed = Path(tmp) / "encrypted"
            size, sha256, key = await asyncio.to_thread(_seal_to, path, sealed)
            uploaded = await self.client.upload(sealed, progress=progress)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return EncryptedFile(
            id=uploaded.id, name=path.name, mime=mime, size=size, sha256=sha256, key=key
        )

    async def download_file(
        self, file: EncryptedFile, dest: Path, progress: Progress | None = None
    ) -> Path:
        """Download an encrypted file and write its checked plaintext to ``dest`` (a
        directory: under the file's name); refuses a file that does not decrypt.
        ``progress(received, total)`` follows the download of the ciphertext."""
        with tempfile.TemporaryDirectory() as tmp:
            sealed = await self.client.download(
                file.id, Path(tmp) / "sealed", resume=False, progress=progress
            )
            ciphertext = await asyncio.to_thread(sealed.read_bytes)
        data = await asyncio.to_thread(open_file, ciphertext, file)
        return await asyncio.to_thread(_write_plain, dest, file.name, data)

    async def encrypt(
        self,
        chat_id: int,
        logins: list[str],
        text: str,
        *,
        edit_of: int | None = None,
        quote: str | None = None,
        files: Sequence[EncryptedFile] = (),
        mentions: Sequence[str] = (),
        thread_root: int | None = None,
    ) -> Encrypted:
        """Megolm-encrypt ``text`` for a chat, first sharing the session with every device
        of ``logins`` that does not have it yet.

        The chat's session is replaced by a new one (shared afresh) when a device that
        had it is no longer among ``logins``' devices -- a member left, a device went,
        a device's keys changed (:meth:`devices` leaves it out) -- so they get no key to
        what follows; and after :data:`ROTATE_AFTER_MESSAGES`
        messages or :data:`ROTATE_AFTER_SECONDS`, as Matrix does."""
        encrypted, _ = await self._encrypt(
            chat_id,
            logins,
            text,
            edit_of=edit_of,
            quote=quote,
            files=files,
            mentions=mentions,
            thread_root=thread_root,
        )
        return encrypted

    @_locked
    async def _encrypt(
        self,
        chat_id: int,
        logins: list[str],
        text: str,
        *,
        edit_of: int | None = None,
        quote: str | None = None,
        files: Sequence[EncryptedFile] = (),
        mentions: Sequence[str] = (),
        thread_root: int | None = None,
    ) -> tuple[Encrypted, str]:
        """:meth:`encrypt`, with the digest of the devices it looked at (the
        ``SendMessage.devices`` the server checks against the members' devices)."""
        devices, seen = await self._devices_seen(logins, chat_id, cached=True)
        digest = device_set_digest(seen)
        current = {d.curve25519 for d in devices} | {self.curve25519}
        chat = str(chat_id)
        out = self._state.outbound.get(chat)
        session = None if out is None else self._outbound(chat, out)
        if out is not None and session is not None:
            gone = set(out.shared_with) - current
            if (
                gone
                or session.message_index >= self.rotate_after_messages
                or time.time() - out.created_at >= self.rotate_after_seconds
            ):
                log.info("chat %d: a new Megolm session (%d devices gone)", chat_id, len(gone))
                session = None
        if out is None or session is None:
            session = vz.GroupSession()
            out = _Outbound(pickle=session.pickle(self._key), created_at=time.time())
            self._state.outbound[chat] = out
            self._sending[chat] = (out, session, 0)
            # this device reads its own messages too
            self._add_inbound(
                vz.InboundGroupSession(session.session_key), chat_id, self.login, self.curve25519
            )
        missing = [d for d in devices if d.curve25519 not in out.shared_with]
        if missing:
            await self._share(session, chat_id, missing)
            out.shared_with.extend(d.curve25519 for d in missing)
        payload = msgspec.json.encode(
            _Payload(
                chat_id=chat_id,
                sender=self.login,
                text=text,
                edit_of=edit_of,
                quote=quote,
                files=list(files),
                mentions=list(mentions),
                thread_root=thread_root,
            )
        )
        self._reserve(chat)
        ciphertext = session.encrypt(payload).to_base64()
        encrypted = Encrypted(
            algorithm=ALGORITHM,
            sender_key=self.curve25519,
            device_id=self.device_id,
            session_id=session.session_id,
            ciphertext=ciphertext,
        )
        return encrypted, digest

    def _outbound(self, chat: str, out: _Outbound) -> vz.GroupSession:
        """The session a chat's entry holds, at the index it sends next (unpickled once:
        the one in memory runs ahead of the pickle, see :meth:`_reserve`)."""
        cached = self._sending.get(chat)
        if cached is not None and cached[0] is out:
            return cached[1]
        session = vz.GroupSession.from_pickle(out.pickle, self._key)
        self._sending[chat] = (out, session, session.message_index)
        return session

    def _reserve(self, chat: str) -> None:
        """Make sure the state on disk holds a chat's session past the index it sends
        next, so no index is ever used twice (a client killed and started again goes on
        from the state on disk). While an earlier reservation covers it, nothing is
        written; else a copy of the session ratcheted :data:`RESERVED_INDEXES` ahead (by
        encrypting that many empty messages nobody sees) goes into the entry and the
        state is written and fsync'd, before the message is encrypted and sent."""
        out, session, reserved = self._sending[chat]
        if session.message_index < reserved:
            return
        ahead = vz.GroupSession.from_pickle(session.pickle(self._key), self._key)
        for _ in range(RESERVED_INDEXES):
            ahead.encrypt(b"")
        out.pickle = ahead.pickle(self._key)
        self.save()
        self._sending[chat] = (out, session, ahead.message_index)

    async def _share(
        self, session: vz.GroupSession, chat_id: int, devices: list[DeviceKeys]
    ) -> None:
        """Send the session key over Olm to each device (making Olm sessions as needed)."""
        payloads = [
            msgspec.json.encode(
                _RoomKey(
                    chat_id=chat_id,
                    session_id=session.session_id,
                    session_key=session.session_key.to_base64(),
                    sender=self.login,
                    sender_device=self.device_id,
                    sender_ed25519=self.ed25519,
                    recipient=dev.login,
                    recipient_device=dev.device_id,
                )
            )
            for dev in devices
        ]
        await self.send_olm(devices, payloads)

    @_locked
    async def send_olm(self, devices: Sequence[DeviceKeys], payloads: Sequence[bytes]) -> int:
        """Olm-encrypt ``payloads[i]`` for ``devices[i]`` and send them as to-device
        messages (making Olm sessions from claimed one-time keys as needed); how many
        went (a device out of one-time keys is skipped)."""
        need = list(
            {d.curve25519: d for d in devices if not self._state.olm.get(d.curve25519)}.values()
        )
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
        for dev, payload in zip(devices, payloads, strict=True):
            pickles = self._state.olm.get(dev.curve25519)
            if not pickles:
                continue
            olm = vz.Session.from_pickle(pickles[0], self._key)
            kind, body = olm.encrypt(payload).to_parts()
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
        return len(messages)

    # --- receiving ------------------------------------------------------------------

    async def receive(self) -> int:
        """Fetch, decrypt and acknowledge this device's to-device messages; how many
        Megolm sessions they brought. Room keys are kept here; verification and key
        sharing messages go to :attr:`verification` and :attr:`key_sharing`."""
        async with self.lock():  # one fetch at a time: each message is handled once
            added = 0
            pre_keys = 0
            while True:
                inbox = await self.client.call(ep.TO_DEVICE)
                if not inbox.messages:
                    break
                for item in inbox.messages:
                    pre_keys += item.type == 0
                    try:
                        added += await self._dispatch(item)
                    except (DecryptionError, ApiError) as exc:
                        # one bad message (or a reply that could not go out) must not
                        # keep the rest of the inbox waiting
                        log.warning(
                            "to-device message %d from %s refused: %s", item.id, item.sender, exc
                        )
                self.save()
                await self.client.call(ep.ACK_TO_DEVICE, AckToDevice(up_to=inbox.messages[-1].id))
            self.key_sharing.received_done()
            if pre_keys:
                await self.publish()  # pre-key messages used up one-time keys
            return added

    async def _dispatch(self, item: ToDevice) -> int:
        plaintext = self._olm_decrypt(item)
        try:
            kind = msgspec.json.decode(plaintext, type=_Kind).type
        except msgspec.DecodeError as exc:
            raise DecryptionError("mismatch", "a to-device message of no known kind") from exc
        if kind == "room_key":
            return await self._room_key(item, plaintext)
        sender = await self.sender_device(item)
        if kind.startswith("verify."):
            await self.verification.handle(sender, plaintext)
        elif kind.startswith("key."):
            return await self.key_sharing.handle(sender, plaintext)
        else:
            raise DecryptionError("mismatch", f"a to-device message of unknown kind {kind!r}")
        return 0

    async def sender_device(self, item: ToDevice) -> DeviceKeys:
        """The device that sent a to-device message, as the key directory (with that
        device's signature and the keys first seen) says: its Curve25519 key is the one
        Olm proved."""
        devices = await self.devices([item.sender])
        sender = next(
            (
                d
                for d in devices
                if d.device_id == item.sender_device and d.curve25519 == item.sender_key
            ),
            None,
        )
        if sender is None:
            raise DecryptionError(
                "mismatch", f"a to-device message whose sender is not {item.sender}'s device"
            )
        return sender

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

    async def _room_key(self, item: ToDevice, plaintext: bytes) -> int:
        try:
            key = msgspec.json.decode(plaintext, type=_RoomKey)
        except msgspec.DecodeError as exc:
            raise DecryptionError("mismatch", "a to-device message that is not a room key") from exc
        if (key.recipient, key.recipient_device) != (self.login, self.device_id):
            raise DecryptionError("mismatch", "a room key meant for another device")
        # the sender's Curve25519 key (proven by Olm) must be the device it claims to be
        devices = await self.devices([key.sender], key.chat_id)
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
        if inbound.first_known_index == 0:  # given part-way, earlier messages stay asked for
            self._state.requested.pop(inbound.session_id, None)

    # --- sessions for key sharing -------------------------------------------------

    def export_session(self, session_id: str) -> tuple[int, str, str, str] | None:
        """(chat id, sender, sender Curve25519 key, exported session key from its first
        known index) of an inbound Megolm session this device has, or None."""
        entry = self._state.inbound.get(session_id)
        if entry is None:
            return None
        inbound = vz.InboundGroupSession.from_pickle(entry.pickle, self._key)
        exported = inbound.export_at(inbound.first_known_index)
        if exported is None:
            return None
        return entry.chat_id, entry.sender, entry.sender_key, exported.to_base64()

    def import_session(
        self, session_id: str, chat_id: int, sender: str, sender_key: str, exported: str
    ) -> bool:
        """Keep a session another device of this user forwarded; whether it brought
        something (a session asked for, whose key decodes to the id it claims, that this
        device did not have or had only from a later message on).

        A device given a session part-way (it joined after the session's first
        messages) keeps the forwarded copy when it starts at an earlier message index,
        provided it is the same session: advanced to the index this device knows from,
        it must export the same key (else the forwarder's copy is refused and the one
        here stays)."""
        if self._state.requested.get(session_id) != chat_id:
            return False
        try:
            inbound = vz.InboundGroupSession.import_session(vz.ExportedSessionKey(exported))
        except (vz.SessionKeyDecodeException, ValueError):
            log.warning("a forwarded key of session %s does not decode", session_id)
            return False
        if inbound.session_id != session_id:
            return False
        entry = self._state.inbound.get(session_id)
        if entry is None:
            self._add_inbound(inbound, chat_id, sender, sender_key)
            return True
        held = vz.InboundGroupSession.from_pickle(entry.pickle, self._key)
        if inbound.first_known_index >= held.first_known_index:
            return False  # nothing earlier than what is here
        if (entry.chat_id, entry.sender, entry.sender_key) != (chat_id, sender, sender_key):
            log.warning("a forwarded key of session %s names another chat or author", session_id)
            return False
        ours = held.export_at(held.first_known_index)
        theirs = inbound.export_at(held.first_known_index)
        if ours is None or theirs is None or ours.to_base64() != theirs.to_base64():
            log.warning("a forwarded key of session %s is not the session here", session_id)
            return False
        log.info(
            "session %s now known from message %d (was %d)",
            session_id,
            inbound.first_known_index,
            held.first_known_index,
        )
        entry.pickle = inbound.pickle(self._key)  # the replay record (seen) stays
        self._state.requested.pop(session_id, None)
        return True

    @property
    def requested_sessions(self) -> dict[str, int]:
        """Sessions (id -> chat id) asked of this user's other devices, not come yet."""
        return dict(self._state.requested)

    def note_requested(self, session_id: str, chat_id: int) -> bool:
        """Remember that this session's key was asked for; False if it already was, or
        this device holds it from its first message on."""
        if session_id in self._state.requested or self._first_index(session_id) == 0:
            return False
        self._state.requested[session_id] = chat_id
        self.save()
        return True

    @_locked
    async def decrypt(self, message: Message) -> Decrypted:
        """The checked plaintext of an encrypted message (fetching this device's to-device
        messages once if its session is not here yet)."""
        enc = message.encrypted
        if enc is None:
            raise DecryptionError("mismatch", "this message is not encrypted")
        if not self.has_key(message):
            await self.receive()
        if not self.has_key(message):
            # an earlier message (from before this device, or a key lost on the way):
            # ask this user's other devices, which answer if they verified this one
            await self.key_sharing.request(enc.session_id, message.chat_id)
        return self.decrypt_now(message)

    @_locked
    async def reveal(self, message: Message) -> Message | None:
        """The text to show for an encrypted message: its plaintext, or one line saying
        why it cannot be shown; None for a replayed copy (shown once, under its first
        id). Fetches this device's keys first if it has not the message's yet."""
        enc = message.encrypted
        if enc is not None and not self.has_key(message):
            await self.receive()
            if not self.has_key(message):
                await self.key_sharing.request(enc.session_id, message.chat_id)
        return self.reveal_now(message)

    @_locked
    async def edits(self, message_id: int) -> EditHistory:
        """Every version of a message, oldest first, as ``GET /messages/{id}/edits``
        lists them (its author and admins): an encrypted message's each with its text
        decrypted and checked like the message itself, or one line saying why it cannot
        be shown (the server keeps the ciphertext each edit replaced, never a text).
        Fetches this device's keys first if it has not those of a version yet."""
        history = await self.client.edits(message_id)
        if all(v.encrypted is None for v in history.versions):
            return history
        try:
            message = await self.client.call(ep.MESSAGE, message_id=message_id)
        except ApiError as exc:  # an admin outside its chat: no key here either
            log.info("message %d for its edits: %s", message_id, exc)
            return msgspec.structs.replace(
                history,
                versions=[
                    v if v.encrypted is None else msgspec.structs.replace(v, text=NO_KEY_TEXT)
                    for v in history.versions
                ],
            )
        versions = []
        for version in history.versions:
            if version.encrypted is None:
                versions.append(version)
                continue
            as_sent = msgspec.structs.replace(message, text="", encrypted=version.encrypted)
            if not self.has_key(as_sent):
                await self.receive()
                if not self.has_key(as_sent):
                    await self.key_sharing.request(version.encrypted.session_id, message.chat_id)
            try:
                text = self.decrypt_now(as_sent).text
            except DecryptionError as exc:
                text = _refusal_text(exc)
            versions.append(msgspec.structs.replace(version, text=text))
        return msgspec.structs.replace(history, versions=versions)

    def reveal_now(self, message: Message) -> Message | None:
        """:meth:`reveal` without fetching anything (the TUI's store, the local cache):
        the message with its text (and its reply's quote, as the sender quoted it) in
        memory, one line saying why in place of a text it cannot show; None for a
        replayed copy."""
        if message.encrypted is None:
            return message
        try:
            shown = self.decrypt_now(message)
        except DecryptionError as exc:
            if exc.kind == "replayed":
                return None
            return msgspec.structs.replace(message, text=_refusal_text(exc))
        quote = message.reply_to
        if quote is not None and shown.quote is not None and not quote.deleted:
            quote = msgspec.structs.replace(quote, text=shown.quote)
        files = {f.id: f for f in shown.files}
        self.known_files.update(files)
        attachments = [
            msgspec.structs.replace(a, name=f.name, size=f.size, mime=f.mime, sha256=f.sha256)
            if (f := files.get(a.id)) is not None
            else a
            for a in message.attachments
        ]
        return msgspec.structs.replace(
            message, text=shown.text, reply_to=quote, attachments=attachments
        )

    def readable_now(self, message: Message) -> Message | None:
        """The message with its plaintext in memory, None when this device cannot show
        it (no key, tampered with, a replayed copy): what a local search looks in."""
        if message.encrypted is None:
            return message
        try:
            self.decrypt_now(message)
        except DecryptionError:
            return None
        return self.reveal_now(message)

    def has_key(self, message: Message) -> bool:
        """Whether this device holds the session of an encrypted message, from that
        message's index on (a session given part-way does not open earlier ones)."""
        enc = message.encrypted
        if enc is None:
            return True
        first = self._first_index(enc.session_id)
        if first is None:
            return False
        if first == 0:
            return True
        try:
            return vz.MegolmMessage.from_base64(enc.ciphertext).message_index() >= first
        except vz.DecodeException:
            return True  # not a Megolm message: decryption says it is tampered with

    def _first_index(self, session_id: str) -> int | None:
        """The first message index this device can decrypt in a session (None: it has
        none of it)."""
        entry = self._state.inbound.get(session_id)
        if entry is None:
            return None
        return self._inbound(session_id, entry).first_known_index

    def _inbound(self, session_id: str, entry: _Inbound) -> vz.InboundGroupSession:
        """The unpickled session of an entry (unpickled again once its pickle changed)."""
        cached = self._sessions.get(session_id)
        if cached is not None and cached[0] is entry.pickle:
            return cached[1]
        inbound = vz.InboundGroupSession.from_pickle(entry.pickle, self._key)
        self._sessions[session_id] = (entry.pickle, inbound)
        return inbound

    def decrypt_now(self, message: Message) -> Decrypted:
        """:meth:`decrypt` without fetching anything."""
        enc = message.encrypted
        if enc is None:
            raise DecryptionError("mismatch", "this message is not encrypted")
        entry = self._state.inbound.get(enc.session_id)
        if entry is None:
            raise DecryptionError("no_key", NO_KEY_TEXT)
        if entry.sender != message.author or entry.sender_key != enc.sender_key:
            raise DecryptionError(
                "mismatch",
                f"message #{message.id} claims to be from {message.author},"
                " but its key is not theirs",
            )
        inbound = self._inbound(enc.session_id, entry)
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
        first = self._replays.get(enc.session_id, result.message_index)
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
        if payload.thread_root != message.thread_root:
            raise DecryptionError(
                "mismatch", f"message #{message.id} was moved into or out of a thread"
            )
        if first is None:
            self._replays.add([(enc.session_id, result.message_index, message.id)])
        if payload.edit_of is not None and payload.edit_of != message.id:
            raise DecryptionError(
                "mismatch", f"message #{message.id} carries an edit of #{payload.edit_of}"
            )
        return Decrypted(
            text=payload.text,
            sender=payload.sender,
            device_id=enc.device_id,
            quote=payload.quote,
            files=tuple(payload.files),
            mentions=tuple(payload.mentions),
        )

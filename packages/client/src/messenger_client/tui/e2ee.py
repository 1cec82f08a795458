"""End-to-end encryption in the TUI (issue 14): the library's :class:`DeviceCrypto`, no
second implementation.

The app keeps what the server sent: the store's cache holds an encrypted message as
ciphertext (its text empty); the store shows it through :meth:`Encryption.reveal`,
which decrypts it in memory with the keys this device already holds (so the cache never
holds a plaintext, and a cached chat reads offline). A message whose key has not come
yet shows :data:`~messenger_client.crypto.NO_KEY_TEXT`; when this device's to-device
inbox brings keys the session fetches them and the store shows such messages again.
Sends in an encrypted chat go out encrypted from the outbox (:meth:`send`); a file
there is encrypted with a key of its own and sent at once (:meth:`send_file`, the plain
client's ``/file`` path), and opened by :meth:`open_file`. The device-trust notices
(verification, new devices, changed keys) go to the ``on_notice`` hook given to
:meth:`load` (the app's :class:`~.devices.DeviceTrust`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import msgspec

from messenger_protocol import (
    ApiError,
    Attachment,
    Chat,
    ErrorCode,
    Message,
    MessengerError,
    quote_of,
)

from ..api import Client, Progress
from ..cache import PendingSend
from ..crypto import DeviceCrypto, device_directory
from ..trust import NoticeHook

__all__ = ["Encryption"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Encryption:
    """One session's device keys and which of its chats are encrypted."""

    def __init__(self, crypto: DeviceCrypto | None, encrypted: set[int]) -> None:
        self.crypto = crypto
        """This device's keys (None: they could not be opened; encrypted messages then
        say so and sends go in the clear only where the chat is not encrypted)."""
        self.encrypted = encrypted
        """Chats known to be encrypted (shown with a lock; sends in them are encrypted)."""
        self._published = False
        self._wanted: dict[str, int] = {}
        """Sessions of messages shown without their key, to ask for -> their chat."""
        self._asked: set[str] = set()
        self._asking: asyncio.Task[None] | None = None

    @classmethod
    def load(
        cls,
        client: Client,
        data_dir: Path,
        server: str,
        login: str,
        encrypted: set[int],
        on_notice: NoticeHook | None = None,
    ) -> Encryption:
        """This device's keys from the TUI's data dir (made on first use; the plain
        console is another device); no I/O but the disk, so messages cached earlier
        decrypt before the server answers. ``encrypted`` is the store's set of
        encrypted chats, kept up to date here; ``on_notice`` hears of verifications,
        new devices, changed keys and shared keys."""
        directory = device_directory(data_dir / "crypto-tui", server, login)
        try:
            crypto = DeviceCrypto.load(client, directory, login=login, on_notice=on_notice)
            return cls(crypto, encrypted)
        except (MessengerError, OSError) as exc:
            log.warning("end-to-end encryption unavailable: %s", exc)
            return cls(None, encrypted)

    async def start(self, chats: Iterable[Chat]) -> None:
        """Publish this device's keys (once per session), fetch waiting room keys, and
        learn which chats are encrypted."""
        crypto = self.crypto
        if crypto is None:
            return
        # one thing at a time with the keys: DeviceCrypto holds its own lock
        if not self._published:
            await crypto.publish()
            self._published = True
        await crypto.receive()
        await self.learn(chats)

    async def learn(self, chats: Iterable[Chat]) -> bool:
        """Find out which of these chats are encrypted; whether that changed anything."""
        crypto = self.crypto
        if crypto is None:
            return False
        before = set(self.encrypted)
        self.encrypted |= await crypto.encrypted_chats(c for c in chats if c.id not in before)
        return self.encrypted != before

    def seen(self, message: Message) -> bool:
        """An encrypted message marks its chat encrypted; whether that is news."""
        if message.encrypted is None or message.chat_id in self.encrypted:
            return False
        self.encrypted.add(message.chat_id)
        return True

    def needs_keys(self, message: Message) -> bool:
        """An encrypted message whose key this device has not fetched yet."""
        return self.crypto is not None and not self.crypto.has_key(message)

    async def receive(self) -> int:
        """Fetch this device's waiting room keys; how many came."""
        if self.crypto is None:
            return 0
        try:
            return await self.crypto.receive()
        except MessengerError as exc:
            log.warning("could not fetch this device's keys: %s", exc)
            return 0

    async def use(self, act: Callable[[DeviceCrypto], Awaitable[T]]) -> T:
        """Do ``act`` with this device's keys (a verification step, a file send; the
        keys hold their own lock); refused when this device has no keys."""
        crypto = self.crypto
        if crypto is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "end-to-end encryption is off on this device")
        return await act(crypto)

    async def send_file(self, chat: Chat, path: Path, progress: Progress | None = None) -> Message:
        """Send a file to an encrypted chat: encrypted with a key of its own, uploaded as
        opaque bytes (``progress`` follows the upload), named (with its key) inside the
        encrypted message."""
        self.encrypted.add(chat.id)
        return await self.use(lambda crypto: crypto.send(chat, "", files=[path],
                                                         progress=progress))  # fmt: skip

    async def open_file(
        self, attachment: Attachment, dest: Path, progress: Progress | None = None
    ) -> Path:
        """Download a file of an encrypted message and save its checked plaintext under
        ``dest`` (refused when this device did not decrypt the message naming it;
        ``progress`` follows the download)."""
        crypto = self.crypto
        sealed = crypto.known_files.get(attachment.id) if crypto is not None else None
        if crypto is None or sealed is None:
            raise ApiError(
                ErrorCode.NOT_FOUND,
                "this device has no key to that file (its message did not decrypt here)",
            )
        return await crypto.download_file(sealed, dest, progress)

    def reveal(self, message: Message) -> Message:
        """An encrypted message with its text as this device can show it (a message
        in the clear as it is)."""
        if message.encrypted is None or message.deleted_at is not None:
            return message
        if self.crypto is None:
            text = "(encrypted: this device has no keys)"
            return msgspec.structs.replace(message, text=text)
        revealed = self.crypto.reveal_now(message)
        if not self.crypto.has_key(message) and self._published:
            self._want(message.encrypted.session_id, message.chat_id)
        if revealed is None:
            text = f"(a replayed copy of an earlier message, #{message.id}: not shown again)"
            return msgspec.structs.replace(message, text=text)
        return revealed

    def _want(self, session_id: str, chat_id: int) -> None:
        """A message shown without its key: ask this user's other devices for it (once
        per session, in the background; a device that has not verified this one says
        no, and is asked again once they verify each other)."""
        if session_id in self._wanted or session_id in self._asked:
            return
        self._wanted[session_id] = chat_id
        if self._asking is None or self._asking.done():
            try:
                self._asking = asyncio.get_running_loop().create_task(self._ask())
            except RuntimeError:  # no loop (a test's store): asked at the next one
                self._asking = None

    def close(self) -> None:
        """The session ended: stop asking for keys and close the device keys
        (:meth:`DeviceCrypto.close`)."""
        if self._asking is not None:
            self._asking.cancel()
            self._asking = None
        if self.crypto is not None:
            self.crypto.close()

    async def _ask(self) -> None:
        crypto = self.crypto
        while crypto is not None and self._wanted:
            session_id, chat_id = self._wanted.popitem()
            self._asked.add(session_id)
            try:
                await crypto.key_sharing.request(session_id, chat_id)
            except MessengerError as exc:
                log.info("could not ask for the keys of %s: %s", session_id, exc)

    async def send(
        self, pending: PendingSend, chat: Chat | None, replied: Message | None = None
    ) -> Message | None:
        """Send ``pending`` encrypted if its chat is encrypted (None: it is not, send it
        in the clear); a thread comment is encrypted like a message of its chat. A file
        attached here is refused rather than sent readable (the file picker sends files
        to an encrypted chat itself, :meth:`send_file`)."""
        crypto = self.crypto
        if crypto is None or chat is None:
            return None
        if chat.id not in self.encrypted and not await crypto.can_encrypt(chat):
            return None
        self.encrypted.add(chat.id)
        if pending.attachments:
            raise ApiError(
                ErrorCode.INVALID,
                "a file attached this way would go readable to an encrypted chat: not sent",
            )
        return await crypto.send(
            chat,
            pending.text,
            client_id=pending.client_id,
            reply_to=pending.reply_to,
            quote=_quote(replied),
            thread_root=pending.thread_root,
        )

    async def edit(self, message_id: int, text: str) -> Message | None:
        """Edit a message, an encrypted one with a new ciphertext (the outbox's edit
        step); None: this device has no keys, the edit goes as the server edits it."""
        if self.crypto is None:
            return None
        return await self.crypto.edit(message_id, text)


def _quote(replied: Message | None) -> str | None:
    """The excerpt a reply carries, inside its ciphertext, of the message it answers."""
    if replied is None:
        return None
    return quote_of(replied.id, replied.author, replied.text, replied.deleted_at is not None).text

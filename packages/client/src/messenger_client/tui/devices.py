"""Device trust in the TUI (issue 14): verifying other devices by emoji, and what the
library says about devices, shown where the user looks.

:class:`DeviceTrust` is the part of the app that hears the library's trust notices
(:mod:`messenger_client.trust`, the ``on_notice`` hook of this device's
:class:`~messenger_client.crypto.DeviceCrypto`) and shows them: a toast, and a line
above the timeline of the chat they concern ("bob has a new device …, not verified";
a verification request shows in every chat) that a click or F6 acts on. It opens the
devices screen of a user (verified, unverified, keys changed) and the verification
screen (the seven emoji with their names, "They match" / "They don't match"), and
runs each step through the library's :class:`~messenger_client.verification.
Verifications` -- the state machine lives there, once. The title of a private chat
says whether every device of its peer is verified.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

from messenger_protocol import ApiError, ErrorCode, MessengerError

from .. import commands as slash
from ..crypto import DeviceCrypto
from ..outputs import InfoOut
from ..trust import (
    DeviceKeyChanged,
    NewDevice,
    TrustNotice,
    VerificationUpdate,
)
from .host import Host
from .messages import TrustChanged, VerificationChanged
from .robust import describe_error
from .tasks import app_work

__all__ = ["DeviceTrust"]

log = logging.getLogger(__name__)

_OPEN = ("requested", "incoming", "ready", "key_sent", "showing", "confirmed", "their_mac")

Line = tuple[str, str, str]
"""A notice line: its text and the device it is about (login, device id)."""


class DeviceTrust:
    """Verifications and device notices, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.flows: dict[tuple[str, str], VerificationUpdate] = {}
        """(login, device id) -> where the newest verification with that device is."""
        self.lines: dict[int | None, Line] = {}
        """Chat id -> the notice line above its timeline (None: above every chat's)."""
        self.verified: set[str] = set()
        """Peers every device of whom this device verified (a mark in their chat's title)."""

    def reset(self) -> None:
        """A new session: nothing is known of its devices yet."""
        self.flows.clear()
        self.lines.clear()
        self.verified.clear()

    # --- what the library tells ----------------------------------------------------------

    def notice(self, notice: TrustNotice) -> None:
        """The ``on_notice`` hook of this device's keys: show what it says."""
        app = self.app
        match notice:
            case VerificationUpdate():
                self._verification(notice)
            case NewDevice(login=login, device_id=device_id, chat_id=chat_id):
                self.verified.discard(login)
                who = "you" if self._mine(login) else login
                line = f"🆕 {who} added a new device {device_id}, not verified: click or F6"
                self.lines[self._chat_of(login, chat_id)] = (line, login, device_id)
                app.notify(self._library_text(notice), title="New device", timeout=8)
            case DeviceKeyChanged(login=login, device_id=device_id, chat_id=chat_id):
                self.verified.discard(login)
                line = (
                    f"⚠ the keys of {self._whose(login, device_id)} CHANGED: nothing is"
                    " encrypted to it; ask them in person"
                )
                self.lines[self._chat_of(login, chat_id)] = (line, login, device_id)
                app.notify(
                    self._library_text(notice), title="Keys changed", severity="error", timeout=20
                )
            case _:
                app.notify(self._library_text(notice), timeout=8)
        self._tell_main()

    def _library_text(self, notice: TrustNotice) -> str:
        """The plain console's line for a notice (its /verify hints work here too)."""
        runner = self.app.runner
        out = runner.notice_output(notice) if runner is not None else None
        return out.text if isinstance(out, InfoOut) else repr(notice)

    def _chat_of(self, login: str, chat_id: int | None) -> int | None:
        """Where a notice about ``login``'s devices shows: the chat that made this device
        look, else the private chat with them, else every chat."""
        store = self.app.store
        if chat_id is not None or store is None:
            return chat_id
        chat = store.direct_chat(login)
        return chat.id if chat is not None else None

    def _verification(self, update: VerificationUpdate) -> None:
        app = self.app
        key = (update.login, update.device_id)
        self.flows[key] = update
        whose = self._whose(update.login, update.device_id)
        for chat_id, line in list(self.lines.items()):
            if (line[1], line[2]) == key:
                del self.lines[chat_id]
        shown = self._screen_shows(key, update.login)
        match update.state:
            case "incoming":
                text = f"🔐 {whose} asks to verify this device: click here or press F6"
                self.lines[None] = (text, update.login, update.device_id)
                app.notify(
                    f"{whose} asks to verify this device: F6 (or click the line above the"
                    " chat) to compare emoji",
                    title="Verification request",
                    timeout=15,
                )
            case "verified":
                app.notify(f"{whose} is verified ✔", timeout=8)
                self.marks()
            case "cancelled" if not shown:
                app.notify(f"Verification with {whose} cancelled: {update.reason}", timeout=8)
        for screen in app.screen_stack:
            screen.post_message(VerificationChanged(update))

    def _screen_shows(self, key: tuple[str, str], login: str) -> bool:
        from .screens.verify import VerifyScreen

        return any(isinstance(s, VerifyScreen) and s.shows(*key) for s in self.app.screen_stack)

    def _mine(self, login: str) -> bool:
        store = self.app.store
        return store is not None and login == store.me

    def _whose(self, login: str, device_id: str) -> str:
        store = self.app.store
        if store is not None and login == store.me:
            return f"your device {device_id}"
        return f"{login}'s device {device_id}"

    def _tell_main(self) -> None:
        main = self.app.main
        if main is not None and main.is_mounted:
            lines = {chat: line[0] for chat, line in self.lines.items()}
            main.post_message(TrustChanged(lines, frozenset(self.verified)))

    @app_work(exclusive=True, group="trust-marks")
    async def marks(self) -> None:
        """Find out which private-chat peers have every device verified (one key query)."""
        app = self.app
        e2ee, store = app.e2ee, app.store
        if e2ee is None or e2ee.crypto is None or store is None:
            return
        crypto = e2ee.crypto
        peers = sorted(
            {
                c.peer
                for c in store.chats.values()
                if c.kind == "direct" and c.peer and c.id in store.encrypted
            }
        )
        if not peers:
            return
        try:
            devices = await e2ee.use(lambda c: c.devices(peers))
        except MessengerError as exc:
            log.info("device marks: %s", exc)
            return
        verified: set[str] = set()
        for peer in peers:
            theirs = [d for d in devices if d.login == peer]
            if theirs and all(crypto.is_verified(peer, d.device_id) for d in theirs):
                verified.add(peer)
        self.verified = verified
        self._tell_main()

    # --- what the user does -----------------------------------------------------------

    def here(self) -> None:
        """F6 or a click on the notice line: answer a verification request, verify the
        device a notice is about, or show the devices of the open chat's peer (one's
        own devices elsewhere)."""
        app = self.app
        store, main = app.store, app.main
        if store is None or main is None:
            return
        incoming = [k for k, u in self.flows.items() if u.state == "incoming"]
        if incoming:
            self.verify(*incoming[-1])
            return
        line = self.lines.get(main.current_chat) or self.lines.get(None)
        if line is not None:
            self.verify(line[1], line[2])
            return
        chat = store.chats.get(main.current_chat or 0)
        self.show_devices(chat.peer if chat is not None and chat.peer else store.me)

    def verify(self, login: str, device_id: str | None = None) -> None:
        """Open the verification screen with a device of ``login`` and start (or accept)
        the verification."""
        from .screens.verify import VerifyScreen

        known = self.flows.get((login, device_id)) if device_id is not None else None
        self.app.push_screen(VerifyScreen(login, device_id, known))
        if known is None or known.state != "incoming":
            self._start(login, device_id)  # a request is answered on the screen

    def accept(self, login: str, device_id: str | None) -> None:
        """Accept a verification request (the screen's Accept)."""
        self._start(login, device_id)

    @app_work(group="trust")
    async def _start(self, login: str, device_id: str | None) -> None:
        await self._step(lambda c: c.verification.start(login, device_id))

    @app_work(group="trust")
    async def confirm(self, login: str | None, device_id: str | None = None) -> None:
        """The person says the emoji match."""
        await self._step(lambda c: c.verification.confirm(login, device_id))

    @app_work(group="trust")
    async def mismatch(self, login: str | None, device_id: str | None = None) -> None:
        """The person says the emoji differ (or stops the verification)."""
        await self._step(lambda c: c.verification.mismatch(login, device_id))

    async def _step(self, act: Callable[[DeviceCrypto], Awaitable[object]]) -> None:
        e2ee = self.app.e2ee
        try:
            if e2ee is None:
                raise ApiError(ErrorCode.UNAVAILABLE, "end-to-end encryption is off here")
            await e2ee.use(act)
        except MessengerError as exc:
            text = _reason(exc, self.app.server)
            self.app.notify(f"Verification: {text}", severity="error")
            for screen in self.app.screen_stack:
                screen.post_message(VerificationChanged(error=text))

    def cancel_open(self, login: str, device_id: str | None) -> None:
        """The verification screen closed while its verification was open: stop it."""
        for (who, device), update in self.flows.items():
            if who == login and device_id in (None, device) and update.state in _OPEN:
                self.mismatch(who, device)

    @app_work(group="trust")
    async def show_devices(self, login: str) -> None:
        """The devices screen of ``login``: verified, unverified, keys changed; choosing
        one verifies it."""
        from .screens.verify import DevicesScreen

        app = self.app
        e2ee = app.e2ee
        try:
            if e2ee is None:
                raise ApiError(ErrorCode.UNAVAILABLE, "end-to-end encryption is off here")
            devices = await e2ee.use(lambda c: c.device_list(login))
        except MessengerError as exc:
            text = _reason(exc, app.server)
            app.notify(f"Devices of {login}: {text}", severity="error")
            return

        def chosen(device_id: str | None) -> None:
            if device_id is not None:
                self.verify(login, device_id)

        app.push_screen(DevicesScreen(login, devices), chosen)

    def command(self, parsed: slash.ParsedCommand) -> None:
        """``/verify``, ``/confirm``, ``/mismatch`` and ``/devices`` typed in the TUI."""
        args, store = parsed.args, self.app.store
        match parsed.name:
            case "verify":
                self.verify(args["login"], args.get("device"))
            case "confirm":
                self.confirm(args.get("login"))
            case "mismatch":
                self.mismatch(args.get("login"))
            case "devices":
                self.show_devices(args.get("login") or (store.me if store is not None else ""))

    def actions(self) -> list[tuple[str, str, Callable[[], object]]]:
        """The palette's entries: answer each request, verify the open chat's peer,
        one's own devices."""
        app = self.app
        store, main = app.store, app.main
        if store is None or main is None or app.e2ee is None or app.e2ee.crypto is None:
            return []
        out: list[tuple[str, str, Callable[[], object]]] = []
        for (login, device_id), update in self.flows.items():
            if update.state == "incoming":
                out.append(
                    (
                        f"Accept the verification request of {self._whose(login, device_id)}",
                        "Compare seven emoji with them (F6)",
                        partial(self.verify, login, device_id),
                    )
                )
        chat = store.chats.get(main.current_chat or 0)
        if chat is not None and chat.peer:
            peer = chat.peer
            out.append(
                (
                    f"Verify @{peer}'s devices",
                    "Compare emoji with one of their devices (F6, /verify)",
                    lambda: self.show_devices(peer),
                )
            )
        out.append(
            (
                "Your devices",
                "This device, your others: verified or not (/devices)",
                lambda: self.show_devices(store.me),
            )
        )
        return out


def _reason(exc: MessengerError, server: str) -> str:
    """The library's own words for a refused step (a 409 there is not a taken login)."""
    return exc.message if isinstance(exc, ApiError) else describe_error(exc, server)

"""Verifying another device by a short authentication string (issue 14), as Element does.

Two devices agree on a secret by an ephemeral Curve25519 exchange (vodozemac's
:class:`vodozemac.Sas`) and show seven emoji (and the same as three four-digit
numbers) derived from it; the two people compare them, over the phone or side by
side. If they match, each device sends a MAC of its identity keys under the shared
secret; the other checks it against the keys the key directory showed and marks the
device verified. A server that put itself in the middle (fake devices, fake keys)
would have made two different secrets: the emoji differ and the people cancel.

Every message travels Olm-encrypted as a to-device message of type ``verify.*``
(:meth:`DeviceCrypto.send_olm`); the flow, per pair of devices::

    us (start)                                  them (accept)
    verify.request  ---------------------------->            requested -> incoming
                    <----------------------------  verify.ready {commitment}  -> ready
    verify.key {our key}  ---------------------->
                    <----------------------------  verify.key {their key}
    both: "showing" the emoji; the people compare
    verify.mac  <------------------------------->  verify.mac   (each after its /confirm)
    both: verified (the other's MAC checks out)

The responder commits to its key (a SHA-256 of it) before it sees ours, so neither
side can pick a key to make the emoji come out equal. ``verify.cancel`` ends the flow
from any open state (the people said the emoji differ, or something did not check). A
flow that sees no step for :data:`TIMEOUT_SECONDS` (ten minutes, as Matrix has it) times
out: it is cancelled on both sides with code ``timeout`` and the person is told to start
again. :data:`TRANSITIONS` is the whole state machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import msgspec
import vodozemac as vz

from messenger_protocol import ApiError, DeviceKeys, ErrorCode

from .trust import VerificationState, VerificationUpdate

if TYPE_CHECKING:
    from .crypto import DeviceCrypto

__all__ = [
    "SAS_EMOJI",
    "TIMEOUT_SECONDS",
    "TRANSITIONS",
    "Verification",
    "Verifications",
]

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 600.0
"""A verification with no step for this long is cancelled (Matrix: ten minutes)."""

Step = Literal[
    # what the user does
    "start",
    "accept",
    "confirm",
    "mismatch",
    "cancel",
    "timeout",  # no step for TIMEOUT_SECONDS
    # what the other device sends
    "request",
    "ready",
    "key",
    "mac",
    "cancelled",
]

_OPEN: tuple[VerificationState, ...] = (
    "requested",
    "incoming",
    "ready",
    "key_sent",
    "showing",
    "confirmed",
    "their_mac",
)

TRANSITIONS: dict[tuple[VerificationState | None, Step], VerificationState] = {
    (None, "start"): "requested",
    (None, "request"): "incoming",
    ("incoming", "accept"): "ready",
    ("requested", "ready"): "key_sent",
    ("ready", "key"): "showing",
    ("key_sent", "key"): "showing",
    ("showing", "confirm"): "confirmed",
    ("showing", "mac"): "their_mac",
    ("confirmed", "mac"): "verified",
    ("their_mac", "confirm"): "verified",
    **{
        (state, step): "cancelled"
        for state in _OPEN
        for step in ("mismatch", "cancel", "cancelled", "timeout")
    },
}
"""(state, step) -> the next state; a step not listed for a state is refused (from the
other device: the flow is cancelled as ``unexpected``)."""

SAS_EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"),
    ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"),
    ("🐧", "Penguin"), ("🐢", "Turtle"), ("🐟", "Fish"), ("🐙", "Octopus"),
    ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"),
    ("🍌", "Banana"), ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"), ("🎩", "Hat"),
    ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"), ("👍", "Thumbs Up"),
    ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"), ("🎁", "Gift"),
    ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"), ("📎", "Paperclip"),
    ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"), ("🔨", "Hammer"), ("☎️", "Telephone"),
    ("🏁", "Flag"), ("🚂", "Train"), ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"),
    ("🏆", "Trophy"), ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip
"""The 64 emoji of Matrix's SAS (``m.sas.v1``), by index, with their English names."""

_SAS_INFO = "MESSENGER_SAS_V1"
_MAC_INFO = "MESSENGER_MAC_V1"


# --- the messages ------------------------------------------------------------------


class _Msg(msgspec.Struct, frozen=True, tag_field="type"):
    txn: str


class VerifyRequest(_Msg, frozen=True, tag="verify.request"):
    """The sender wants to verify the recipient device."""


class VerifyReady(_Msg, frozen=True, tag="verify.ready"):
    """The recipient accepted; ``commitment`` is the SHA-256 of its coming key and txn."""

    commitment: str


class VerifyKey(_Msg, frozen=True, tag="verify.key"):
    """The sender's ephemeral Curve25519 key."""

    key: str


class VerifyMac(_Msg, frozen=True, tag="verify.mac"):
    """The sender's person said the emoji match: a MAC of its identity keys."""

    mac: str


class VerifyCancel(_Msg, frozen=True, tag="verify.cancel"):
    """The flow is over, and why."""

    code: str
    reason: str


_Message = VerifyRequest | VerifyReady | VerifyKey | VerifyMac | VerifyCancel
_STEP_OF: dict[type[_Msg], Step] = {
    VerifyRequest: "request",
    VerifyReady: "ready",
    VerifyKey: "key",
    VerifyMac: "mac",
    VerifyCancel: "cancelled",
}


class _Abort(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _commitment(key: str, txn: str) -> str:
    return base64.b64encode(hashlib.sha256(f"{key}|{txn}".encode()).digest()).decode()


@dataclass(slots=True)
class Verification:
    """One verification with one device of one user (in memory only: it is a
    conversation between two running devices)."""

    txn: str
    device: DeviceKeys
    """The other device, as the key directory showed it."""
    we_started: bool
    state: VerificationState | None = None
    sas: vz.Sas = field(default_factory=vz.Sas)
    commitment: str = ""
    their_key: str = ""
    established: vz.EstablishedSas | None = None
    their_mac: str = ""
    emoji: tuple[int, ...] = ()
    decimals: tuple[int, ...] = ()
    code: str = ""
    reason: str = ""
    stepped_at: float = 0.0
    """When it last moved (on :attr:`Verifications.clock`): it times out from there."""
    timer: asyncio.TimerHandle | None = None

    @property
    def login(self) -> str:
        return self.device.login

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def open(self) -> bool:
        return self.state in _OPEN

    def update(self) -> VerificationUpdate:
        """The notice of where this verification is."""
        assert self.state is not None
        return VerificationUpdate(
            login=self.login,
            device_id=self.device_id,
            txn=self.txn,
            state=self.state,
            we_started=self.we_started,
            emoji=tuple(SAS_EMOJI[i][0] for i in self.emoji),
            emoji_names=tuple(SAS_EMOJI[i][1] for i in self.emoji),
            decimals=self.decimals,
            reason=self.reason,
            code=self.code,
        )


class Verifications:
    """This device's verifications of other devices (one at a time per other device)."""

    def __init__(self, crypto: DeviceCrypto) -> None:
        self.crypto = crypto
        self.flows: dict[tuple[str, str], Verification] = {}
        """(login, device id) -> the newest verification with that device."""
        self.timeout = TIMEOUT_SECONDS
        self.clock: Callable[[], float] = time.monotonic
        """What a flow's age is measured on (a test gives its own)."""
        self._expiring: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Stop every flow's timeout (the device is closed: nothing of it may fire later,
        as another login on the same client); the flows stay as they were."""
        for flow in self.flows.values():
            if flow.timer is not None:
                flow.timer.cancel()
                flow.timer = None
        for task in list(self._expiring):
            task.cancel()

    # --- what the user does ----------------------------------------------------------

    async def start(self, login: str, device_id: str | None = None) -> Verification:
        """Ask a device of ``login`` to verify (the only unverified one when
        ``device_id`` is None), or accept that device's open request."""
        async with self.crypto.lock():
            await self.expire()
            return await self._start(login, device_id)

    async def _start(self, login: str, device_id: str | None) -> Verification:
        device = await self._pick(login, device_id)
        flow = self.flows.get((device.login, device.device_id))
        if flow is not None and flow.state == "incoming":
            await self._step(flow, "accept")
            return flow
        if flow is not None and flow.open:
            await self._cancel(flow, "replaced", "a new verification was started", tell=True)
        flow = self._new(secrets.token_hex(8), device, we_started=True)
        self.flows[(device.login, device.device_id)] = flow
        await self._step(flow, "start")
        return flow

    async def confirm(self, login: str | None = None, device_id: str | None = None) -> Verification:
        """The person says the emoji (or numbers) match."""
        async with self.crypto.lock():
            await self.expire()
            flow = self.find(login, device_id)
            await self._step(flow, "confirm")
            return flow

    async def mismatch(
        self, login: str | None = None, device_id: str | None = None
    ) -> Verification:
        """The person says they differ (or wants to stop): the flow is cancelled."""
        async with self.crypto.lock():
            await self.expire()
            flow = self.find(login, device_id)
            step: Step = "mismatch" if flow.state in ("showing", "their_mac") else "cancel"
            await self._step(flow, step)
            return flow

    async def expire(self) -> None:
        """Cancel (on both sides) every open flow that saw no step for :attr:`timeout`."""
        async with self.crypto.lock():
            now = self.clock()
            for flow in list(self.flows.values()):
                if flow.open and now - flow.stepped_at >= self.timeout:
                    await self._step(flow, "timeout")

    def _new(self, txn: str, device: DeviceKeys, *, we_started: bool) -> Verification:
        return Verification(txn=txn, device=device, we_started=we_started, stepped_at=self.clock())

    def _arm(self, flow: Verification) -> None:
        """(Re)start the flow's timeout, or stop it once the flow is over."""
        if flow.timer is not None:
            flow.timer.cancel()
            flow.timer = None
        if flow.open:
            loop = asyncio.get_running_loop()
            flow.timer = loop.call_later(self.timeout, self._expire_soon)

    def _expire_soon(self) -> None:
        task = asyncio.ensure_future(self.expire())
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    def find(self, login: str | None = None, device_id: str | None = None) -> Verification:
        """The open verification with that user's device (None: the only open one)."""
        flows = [
            f
            for f in self.flows.values()
            if f.open
            and (login is None or f.login == login)
            and (device_id is None or f.device_id == device_id)
        ]
        if len(flows) == 1:
            return flows[0]
        whose = f" with {login}" if login else ""
        if not flows:
            timed_out = [
                f
                for f in self.flows.values()
                if f.code == "timeout"
                and (login is None or f.login == login)
                and (device_id is None or f.device_id == device_id)
            ]
            if timed_out:
                flow = timed_out[-1]
                raise ApiError(
                    ErrorCode.NOT_FOUND,
                    f"the verification with {flow.login}'s device {flow.device_id} {flow.reason}",
                )
            raise ApiError(ErrorCode.NOT_FOUND, f"no verification{whose} is under way")
        names = ", ".join(f"{f.login} {f.device_id}" for f in flows)
        raise ApiError(
            ErrorCode.CONFLICT, f"more than one verification{whose}: say which ({names})"
        )

    async def _pick(self, login: str, device_id: str | None) -> DeviceKeys:
        devices = await self.crypto.devices([login])
        if device_id is not None:
            for d in devices:
                if d.login == login and d.device_id == device_id:
                    return d
            raise ApiError(ErrorCode.NOT_FOUND, f"{login} has no device {device_id} to verify")
        incoming = [
            f.device for f in self.flows.values() if f.login == login and f.state == "incoming"
        ]
        if len(incoming) == 1:
            return incoming[0]
        candidates = [
            d
            for d in devices
            if d.login == login and not self.crypto.is_verified(login, d.device_id)
        ]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ApiError(ErrorCode.NOT_FOUND, f"{login} has no unverified device to verify")
        names = ", ".join(d.device_id for d in candidates)
        raise ApiError(
            ErrorCode.CONFLICT,
            f"{login} has {len(candidates)} unverified devices: say which ({names})",
        )

    # --- what the other device sends ---------------------------------------------------

    async def handle(self, sender: DeviceKeys, plaintext: bytes) -> None:
        """A ``verify.*`` to-device message from ``sender`` (Olm-authenticated)."""
        try:
            message = msgspec.json.decode(plaintext, type=_Message)
        except msgspec.DecodeError:
            log.warning(
                "unreadable verification message from %s/%s", sender.login, sender.device_id
            )
            return
        await self.expire()
        key = (sender.login, sender.device_id)
        flow = self.flows.get(key)
        if isinstance(message, VerifyRequest):
            if flow is not None and flow.open:
                if flow.state == "requested" and message.txn < flow.txn:
                    # both asked at once: the smaller txn wins, and we wanted this anyway
                    flow.state, flow.code = "cancelled", "replaced"
                    self._arm(flow)
                    flow = self._new(message.txn, sender, we_started=False)
                    self.flows[key] = flow
                    await self._step(flow, "request", message)
                    await self._step(flow, "accept")
                    return
                if flow.state == "requested":
                    return  # ours wins: they accept it the same way
                await self._cancel(flow, "replaced", f"{sender.login} started again", tell=False)
            flow = self._new(message.txn, sender, we_started=False)
            self.flows[key] = flow
            await self._step(flow, "request", message)
            return
        if flow is None or flow.txn != message.txn:
            log.info("verification message for no current flow from %s", sender.device_id)
            return
        if not flow.open:
            # over here (timed out, cancelled, done): the other side was told, if at all
            log.info("verification message for a closed flow from %s", sender.device_id)
            return
        await self._step(flow, _STEP_OF[type(message)], message)

    # --- the machine -----------------------------------------------------------------------

    async def _step(self, flow: Verification, step: Step, message: _Message | None = None) -> None:
        following = TRANSITIONS.get((flow.state, step))
        if following is None:
            if message is None:
                state = flow.state or "not started"
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"the verification with {flow.login}'s device {flow.device_id} is {state}:"
                    f" cannot {step} now",
                )
            await self._cancel(
                flow, "unexpected", f"unexpected {step} while {flow.state}", tell=True
            )
            return
        try:
            await self._act(flow, step, message)
        except _Abort as abort:
            await self._cancel(flow, abort.code, abort.reason, tell=True)
            return
        flow.state = following
        flow.stepped_at = self.clock()
        self._arm(flow)
        if following == "verified":
            self.crypto.mark_verified(flow.login, flow.device_id)
        self.crypto.notify(flow.update())
        if following == "verified":
            await self.crypto.key_sharing.on_verified(flow.device)

    async def _act(self, flow: Verification, step: Step, message: _Message | None) -> None:
        """What a step does besides moving the state (raises _Abort to cancel)."""
        match step, message:
            case "start", _:
                await self._send(flow, VerifyRequest(txn=flow.txn))
            case "accept", _:
                flow.commitment = _commitment(flow.sas.public_key.to_base64(), flow.txn)
                await self._send(flow, VerifyReady(txn=flow.txn, commitment=flow.commitment))
            case "ready", VerifyReady(commitment=commitment):
                flow.commitment = commitment
                await self._send(flow, VerifyKey(txn=flow.txn, key=flow.sas.public_key.to_base64()))
            case "key", VerifyKey(key=key):
                if flow.we_started and _commitment(key, flow.txn) != flow.commitment:
                    raise _Abort("commitment", "their key is not the one they committed to")
                ours = flow.sas.public_key.to_base64()
                try:
                    flow.established = flow.sas.diffie_hellman(
                        vz.Curve25519PublicKey.from_base64(key)
                    )
                except (vz.KeyException, vz.SasException, vz.DecodeException) as exc:
                    raise _Abort("unexpected", f"their key is not a key: {exc}") from exc
                flow.their_key = key
                if not flow.we_started:
                    await self._send(flow, VerifyKey(txn=flow.txn, key=ours))
                self._show(flow, ours)
            case "confirm", _:
                if flow.their_mac:
                    self._check_mac(flow)
                await self._send(flow, VerifyMac(txn=flow.txn, mac=self._our_mac(flow)))
            case "mac", VerifyMac(mac=mac):
                flow.their_mac = mac
                if flow.state == "confirmed":
                    self._check_mac(flow)
            case "mismatch", _:
                flow.code, flow.reason = "mismatch", "you said the emoji do not match"
                await self._send(
                    flow,
                    VerifyCancel(txn=flow.txn, code="mismatch", reason="the emoji do not match"),
                )
            case "cancel", _:
                flow.code, flow.reason = "user", "you cancelled it"
                await self._send(flow, VerifyCancel(txn=flow.txn, code="user", reason="cancelled"))
            case "timeout", _:
                minutes = round(self.timeout / 60)
                flow.code = "timeout"
                flow.reason = (
                    f"timed out (no step in {minutes} minutes): /verify {flow.login} to start again"
                )
                try:
                    await self._send(
                        flow, VerifyCancel(txn=flow.txn, code="timeout", reason="timed out")
                    )
                except (ApiError, ConnectionError) as exc:
                    log.info("could not tell %s of the timeout: %s", flow.device_id, exc)
            case "cancelled", VerifyCancel(code=code, reason=reason):
                flow.code = code
                flow.reason = f"{flow.login} cancelled it: {reason}"
            case "request", _:
                pass
            case _:
                raise _Abort("unexpected", f"a malformed {step}")

    def _show(self, flow: Verification, ours: str) -> None:
        assert flow.established is not None
        me = (self.crypto.login, self.crypto.device_id, ours)
        them = (flow.login, flow.device_id, flow.their_key)
        first, second = (me, them) if flow.we_started else (them, me)
        info = "|".join([_SAS_INFO, *first, *second, flow.txn])
        sas = flow.established.bytes(info)
        flow.emoji = tuple(sas.emoji_indices)
        flow.decimals = tuple(sas.decimals)

    def _mac_info(self, sender: tuple[str, str], receiver: tuple[str, str], txn: str) -> str:
        return "|".join([_MAC_INFO, *sender, *receiver, txn])

    def _our_mac(self, flow: Verification) -> str:
        assert flow.established is not None
        info = self._mac_info(
            (self.crypto.login, self.crypto.device_id), (flow.login, flow.device_id), flow.txn
        )
        return flow.established.calculate_mac(
            f"{self.crypto.ed25519}|{self.crypto.curve25519}", info
        )

    def _check_mac(self, flow: Verification) -> None:
        """Their MAC must cover the keys this device knows for them."""
        assert flow.established is not None
        known = self.crypto.known_keys(flow.login, flow.device_id)
        if known is None:
            raise _Abort("key_mismatch", "their device's keys changed during the verification")
        curve, ed = known
        info = self._mac_info(
            (flow.login, flow.device_id), (self.crypto.login, self.crypto.device_id), flow.txn
        )
        try:
            flow.established.verify_mac(f"{ed}|{curve}", info, flow.their_mac)
        except (vz.SasException, ValueError) as exc:
            raise _Abort(
                "key_mismatch",
                "their device's keys are not the ones the server shows (someone may be in"
                " the middle)",
            ) from exc

    async def _cancel(self, flow: Verification, code: str, reason: str, *, tell: bool) -> None:
        if tell:
            try:
                await self._send(flow, VerifyCancel(txn=flow.txn, code=code, reason=reason))
            except (ApiError, ConnectionError) as exc:
                log.info("could not tell %s of the cancel: %s", flow.device_id, exc)
        flow.state, flow.code, flow.reason = "cancelled", code, reason
        self._arm(flow)
        self.crypto.notify(flow.update())

    async def _send(self, flow: Verification, message: _Message) -> None:
        sent = await self.crypto.send_olm([flow.device], [msgspec.json.encode(message)])
        if not sent:
            raise ApiError(
                ErrorCode.UNAVAILABLE,
                f"{flow.login}'s device {flow.device_id} has no one-time keys left: try later",
            )

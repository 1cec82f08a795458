"""The key directory and to-device messages of end-to-end encryption (issue 14).

The rules: the server stores public keys and ciphertext only, in the formats and sizes
:mod:`messenger_protocol.limits` names (checked by the typed models before anything gets
here; the counts here). A session speaks for the one device whose keys it uploaded; a
device id, once registered with its identity keys, keeps them (another upload of the same
id with other keys is a conflict: a device whose keys changed is a new device). A
one-time key is handed out once. To-device messages wait in the recipient device's
inbox until that device acknowledges them; a logged ``to_device`` event tells the user's
streams that one of their devices has mail, in order with the chat events. A device
whose user logs out of it is removed with its keys and messages, so other devices stop
encrypting to it. A device registered or removed logs a ``device_list`` event for its user
and every user who shares a direct chat or an encrypted group with them (what a client
keeping device keys in memory forgets them on); uploading one-time keys, or the same
keys from another session, changes no device list and logs nothing.
"""

from __future__ import annotations

import logging

from messenger_protocol import (
    AckToDevice,
    ApiError,
    ClaimedKey,
    ClaimedKeys,
    ClaimKeys,
    DeviceKeyList,
    DeviceListChanged,
    ErrorCode,
    KeyCount,
    Ok,
    QueryKeys,
    SendToDevice,
    ToDeviceList,
    ToDeviceSent,
    ToDeviceWaiting,
    UploadKeys,
    limits,
)

from ..clock import Clock
from ..storage import Store, Tx
from ..storage.keys import DeviceRecord, OutgoingRow, key_queries
from .actor import Actor
from .events import EventService

__all__ = ["KeyService"]

log = logging.getLogger(__name__)

TO_DEVICE_PAGE = 100
"""To-device messages one fetch returns (the device acknowledges and fetches again)."""


class KeyService:
    """Uploads, queries and claims of device keys; to-device messages."""

    def __init__(self, store: Store, events: EventService, clock: Clock) -> None:
        self.store = store
        self.events = events
        self.clock = clock

    async def upload(self, actor: Actor, body: UploadKeys) -> KeyCount:
        """Register (or re-bind) this session's device and add its one-time keys."""
        now = self.clock.now()

        def unit(tx: Tx) -> KeyCount:
            q = key_queries(tx)
            known = q.device(actor.user_id, body.device_id)
            if known is None:
                if q.device_count(actor.user_id) >= limits.MAX_DEVICES_PER_USER:
                    raise ApiError(
                        ErrorCode.CONFLICT,
                        f"a user may have at most {limits.MAX_DEVICES_PER_USER} devices with keys",
                        limit=limits.MAX_DEVICES_PER_USER,
                    )
            elif (known.curve25519, known.ed25519) != (body.curve25519, body.ed25519):
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"device {body.device_id} is registered with other identity keys",
                )
            stored = 0 if known is None else q.one_time_key_count(actor.user_id, body.device_id)
            if stored + len(body.one_time_keys) > limits.MAX_ONE_TIME_KEYS_STORED:
                raise ApiError(
                    ErrorCode.CONFLICT,
                    f"a device may have at most {limits.MAX_ONE_TIME_KEYS_STORED} unclaimed"
                    f" one-time keys ({stored} are stored)",
                    limit=limits.MAX_ONE_TIME_KEYS_STORED,
                )
            q.put_device(
                DeviceRecord(
                    actor.user_id,
                    body.device_id,
                    actor.session_id,
                    body.curve25519,
                    body.ed25519,
                    body.signature,
                    now if known is None else known.created_at,
                )
            )
            q.add_one_time_keys(
                actor.user_id,
                body.device_id,
                [(k.key_id, k.key, k.signature) for k in body.one_time_keys],
            )
            if known is None:
                self._device_list_changed(tx, actor)
            count = q.one_time_key_count(actor.user_id, body.device_id)
            return KeyCount(device_id=body.device_id, one_time_keys=count)

        result = await self.store.write(unit)
        log.info("device keys of user %d: %s", actor.user_id, body.device_id)
        return result

    def _device_list_changed(self, tx: Tx, actor: Actor) -> None:
        """In the unit that registers or removes a device of the actor: tell the users
        who encrypt to them (and the actor's other devices)."""
        event = DeviceListChanged(login=actor.login)
        for user_id in key_queries(tx).device_list_watchers(actor.user_id):
            self.events.emit(tx, event, user_id=user_id)

    async def query(self, actor: Actor, body: QueryKeys) -> DeviceKeyList:
        """The identity keys of every device of these users (unknown logins left out)."""

        def unit(tx: Tx) -> DeviceKeyList:
            ids = []
            for login in dict.fromkeys(body.logins):
                user = tx.user_by_login(login)
                if user is not None:
                    ids.append(user.id)
            return DeviceKeyList(devices=key_queries(tx).devices_of(ids))

        return await self.store.read(unit)

    async def claim(self, actor: Actor, body: ClaimKeys) -> ClaimedKeys:
        """Take one one-time key of each device asked for, in one unit."""

        def unit(tx: Tx) -> ClaimedKeys:
            q = key_queries(tx)
            out: list[ClaimedKey] = []
            seen: set[tuple[str, str]] = set()
            for ref in body.devices:
                user = tx.user_by_login(ref.login)
                if user is None or (user.login, ref.device_id) in seen:
                    continue
                seen.add((user.login, ref.device_id))
                taken = q.claim_one_time_key(user.id, ref.device_id)
                if taken is not None:
                    key_id, key, signature = taken
                    out.append(
                        ClaimedKey(
                            login=user.login,
                            device_id=ref.device_id,
                            key_id=key_id,
                            key=key,
                            signature=signature,
                        )
                    )
            return ClaimedKeys(keys=out)

        return await self.store.write(unit)

    def _own_device(self, tx: Tx, actor: Actor) -> DeviceRecord:
        device = key_queries(tx).device_of_session(actor.session_id)
        if device is None or device.user_id != actor.user_id:
            raise ApiError(ErrorCode.CONFLICT, "this session has no device keys: upload them first")
        return device

    async def send(self, actor: Actor, body: SendToDevice) -> ToDeviceSent:
        """Queue Olm ciphertexts for devices; each recipient user gets one event."""
        now = self.clock.now()

        def unit(tx: Tx) -> ToDeviceSent:
            q = key_queries(tx)
            sender = self._own_device(tx, actor)
            rows: list[OutgoingRow] = []
            per_device: dict[tuple[int, str], int] = {}
            for msg in body.messages:
                user = tx.user_by_login(msg.login)
                if user is None or q.device(user.id, msg.device_id) is None:
                    raise ApiError(ErrorCode.NOT_FOUND, f"no device {msg.device_id} of {msg.login}")
                rows.append(OutgoingRow(user.id, msg.device_id, msg.type, msg.ciphertext))
                target = (user.id, msg.device_id)
                per_device[target] = per_device.get(target, 0) + 1
            for (user_id, device_id), count in per_device.items():
                waiting = q.to_device_pending(user_id, device_id)
                if waiting + count > limits.MAX_TO_DEVICE_PENDING:
                    raise ApiError(
                        ErrorCode.CONFLICT,
                        f"device {device_id} has {waiting} to-device messages waiting"
                        f" (at most {limits.MAX_TO_DEVICE_PENDING})",
                        limit=limits.MAX_TO_DEVICE_PENDING,
                    )
            q.add_to_device(rows, sender, now)
            for user_id, device_id in per_device:
                self.events.emit(tx, ToDeviceWaiting(device_id=device_id), user_id=user_id)
            return ToDeviceSent(queued=len(rows))

        return await self.store.write(unit)

    async def inbox(self, actor: Actor) -> ToDeviceList:
        """The to-device messages waiting for this session's device, oldest first."""

        def unit(tx: Tx) -> ToDeviceList:
            device = self._own_device(tx, actor)
            return ToDeviceList(
                messages=key_queries(tx).to_device_for(
                    actor.user_id, device.device_id, TO_DEVICE_PAGE
                )
            )

        return await self.store.read(unit)

    async def ack(self, actor: Actor, body: AckToDevice) -> Ok:
        """Delete this device's to-device messages up to ``up_to`` (it has them)."""

        def unit(tx: Tx) -> None:
            device = self._own_device(tx, actor)
            key_queries(tx).delete_to_device(actor.user_id, device.device_id, body.up_to)

        await self.store.write(unit)
        return Ok()

    async def remove_device(self, actor: Actor) -> Ok:
        """Take this session's device out of the key directory (its user logs out of
        it): nobody encrypts to it any more, its one-time keys and waiting to-device
        messages go. A session without a device has nothing to remove."""

        def unit(tx: Tx) -> str | None:
            q = key_queries(tx)
            device = q.device_of_session(actor.session_id)
            if device is None or device.user_id != actor.user_id:
                return None
            q.delete_device(actor.user_id, device.device_id)
            self._device_list_changed(tx, actor)
            return device.device_id

        removed = await self.store.write(unit)
        if removed is not None:
            log.info("device keys of user %d removed: %s", actor.user_id, removed)
        return Ok()

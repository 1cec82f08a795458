"""Queries of the key directory and to-device messages (issue 14).

Public keys and ciphertext only: the server never holds a private key. A one-time key
is claimed by deleting it (``DELETE ... RETURNING``), so each is handed out at most once
on both databases, whatever else runs at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from messenger_protocol import DeviceKeys, ToDevice

from .base import Tx
from .sql import Connection, connection, marks

__all__ = [
    "DeviceRecord",
    "KeyQueries",
    "OutgoingRow",
    "SqlKeyQueries",
    "key_queries",
]


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device of the key directory, with the session it was last uploaded from."""

    user_id: int
    device_id: str
    session_id: str
    curve25519: str
    ed25519: str
    signature: str
    created_at: float


@dataclass(frozen=True, slots=True)
class OutgoingRow:
    """One to-device message to store."""

    user_id: int
    device_id: str
    type: int
    ciphertext: str


class KeyQueries(Protocol):
    """What the key directory needs of the database."""

    def device(self, user_id: int, device_id: str) -> DeviceRecord | None:
        """A device of a user."""
        ...

    def device_of_session(self, session_id: str) -> DeviceRecord | None:
        """The device whose keys were last uploaded from this session."""
        ...

    def device_count(self, user_id: int) -> int:
        """Devices with keys of a user."""
        ...

    def put_device(self, device: DeviceRecord) -> None:
        """Register a device, or bind a known one (same keys) to a new session."""
        ...

    def add_one_time_keys(
        self, user_id: int, device_id: str, keys: Sequence[tuple[str, str, str]]
    ) -> None:
        """Store ``(key_id, key, signature)`` rows; a key id already stored is kept."""
        ...

    def one_time_key_count(self, user_id: int, device_id: str) -> int:
        """Unclaimed one-time keys of a device."""
        ...

    def devices_of(self, user_ids: Sequence[int]) -> list[DeviceKeys]:
        """Every device with keys of these users, by login and device id."""
        ...

    def member_devices(self, chat_id: int) -> list[tuple[str, str]]:
        """``(login, device_id)`` of every device with keys of a chat's members."""
        ...

    def claim_one_time_key(self, user_id: int, device_id: str) -> tuple[str, str, str] | None:
        """Take (delete and return) one ``(key_id, key, signature)`` of a device."""
        ...

    def to_device_pending(self, user_id: int, device_id: str) -> int:
        """To-device messages waiting for a device."""
        ...

    def add_to_device(self, rows: Sequence[OutgoingRow], sender: DeviceRecord, now: float) -> None:
        """Queue to-device messages from the sender's device."""
        ...

    def to_device_for(self, user_id: int, device_id: str, limit: int) -> list[ToDevice]:
        """A device's waiting messages, oldest first."""
        ...

    def delete_to_device(self, user_id: int, device_id: str, up_to: int) -> int:
        """Delete a device's messages with ids up to ``up_to``; how many went."""
        ...

    def delete_device(self, user_id: int, device_id: str) -> None:
        """Forget a device: its keys, its one-time keys and its waiting messages."""
        ...

    def device_list_watchers(self, user_id: int) -> list[int]:
        """Who is told that a user's device list changed: the user and every user who
        shares a direct chat or an encrypted group with them, by id."""
        ...

    def set_encrypted(self, message_id: int, encrypted: str) -> None:
        """Store the encrypted body (JSON) of a message."""
        ...


_DEVICE_COLUMNS = "user_id, device_id, session_id, curve25519, ed25519, signature, created_at"


class SqlKeyQueries:
    """:class:`KeyQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def device(self, user_id: int, device_id: str) -> DeviceRecord | None:
        """A device of a user."""
        row = self.conn.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM device_keys WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        return None if row is None else DeviceRecord(*row)

    def device_of_session(self, session_id: str) -> DeviceRecord | None:
        """The device whose keys were last uploaded from this session."""
        row = self.conn.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM device_keys WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else DeviceRecord(*row)

    def device_count(self, user_id: int) -> int:
        """Devices with keys of a user."""
        row = self.conn.execute(
            "SELECT count(*) FROM device_keys WHERE user_id = ?", (user_id,)
        ).fetchone()
        return int(row[0])

    def put_device(self, device: DeviceRecord) -> None:
        """Register a device, or bind a known one (same keys) to a new session."""
        # a session speaks for one device: an older binding of it is dropped
        self.conn.execute(
            "UPDATE device_keys SET session_id = '' WHERE session_id = ?"
            " AND NOT (user_id = ? AND device_id = ?)",
            (device.session_id, device.user_id, device.device_id),
        )
        self.conn.execute(
            f"INSERT INTO device_keys ({_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, device_id) DO UPDATE SET session_id = excluded.session_id",
            (
                device.user_id,
                device.device_id,
                device.session_id,
                device.curve25519,
                device.ed25519,
                device.signature,
                device.created_at,
            ),
        )

    def add_one_time_keys(
        self, user_id: int, device_id: str, keys: Sequence[tuple[str, str, str]]
    ) -> None:
        """Store ``(key_id, key, signature)`` rows; a key id already stored is kept."""
        self.conn.executemany(
            "INSERT INTO one_time_keys (user_id, device_id, key_id, key, signature)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, key_id) DO NOTHING",
            [(user_id, device_id, kid, key, sig) for kid, key, sig in keys],
        )

    def one_time_key_count(self, user_id: int, device_id: str) -> int:
        """Unclaimed one-time keys of a device."""
        row = self.conn.execute(
            "SELECT count(*) FROM one_time_keys WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        return int(row[0])

    def devices_of(self, user_ids: Sequence[int]) -> list[DeviceKeys]:
        """Every device with keys of these users, by login and device id."""
        if not user_ids:
            return []
        rows = self.conn.execute(
            "SELECT u.login, d.device_id, d.curve25519, d.ed25519, d.signature, d.created_at"
            " FROM device_keys d JOIN users u ON u.id = d.user_id"
            f" WHERE d.user_id IN ({marks(len(user_ids))}) ORDER BY u.login, d.device_id",
            tuple(user_ids),
        ).fetchall()
        return [DeviceKeys(*r) for r in rows]

    def member_devices(self, chat_id: int) -> list[tuple[str, str]]:
        """``(login, device_id)`` of every device with keys of a chat's members."""
        rows = self.conn.execute(
            "SELECT u.login, d.device_id FROM members m JOIN device_keys d ON d.user_id ="
            " m.user_id JOIN users u ON u.id = m.user_id WHERE m.chat_id = ?"
            " ORDER BY u.login, d.device_id",
            (chat_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def claim_one_time_key(self, user_id: int, device_id: str) -> tuple[str, str, str] | None:
        """Take (delete and return) one ``(key_id, key, signature)`` of a device.

        The row is deleted by the statement that returns it: two claims never get the
        same key (on PostgreSQL the second waits for the first's row lock, finds the
        row gone and returns nothing; the caller may then ask again).
        """
        row = self.conn.execute(
            "DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ? AND key_id ="
            " (SELECT key_id FROM one_time_keys WHERE user_id = ? AND device_id = ?"
            " ORDER BY key_id LIMIT 1) RETURNING key_id, key, signature",
            (user_id, device_id, user_id, device_id),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def to_device_pending(self, user_id: int, device_id: str) -> int:
        """To-device messages waiting for a device."""
        row = self.conn.execute(
            "SELECT count(*) FROM to_device WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        return int(row[0])

    def add_to_device(self, rows: Sequence[OutgoingRow], sender: DeviceRecord, now: float) -> None:
        """Queue to-device messages from the sender's device."""
        self.conn.executemany(
            "INSERT INTO to_device (user_id, device_id, sender_id, sender_device, sender_key,"
            " type, ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.user_id,
                    r.device_id,
                    sender.user_id,
                    sender.device_id,
                    sender.curve25519,
                    r.type,
                    r.ciphertext,
                    now,
                )
                for r in rows
            ],
        )

    def to_device_for(self, user_id: int, device_id: str, limit: int) -> list[ToDevice]:
        """A device's waiting messages, oldest first."""
        rows = self.conn.execute(
            "SELECT t.id, u.login, t.sender_device, t.sender_key, t.type, t.ciphertext,"
            " t.created_at FROM to_device t JOIN users u ON u.id = t.sender_id"
            " WHERE t.user_id = ? AND t.device_id = ? ORDER BY t.id LIMIT ?",
            (user_id, device_id, limit),
        ).fetchall()
        return [ToDevice(*r) for r in rows]

    def delete_to_device(self, user_id: int, device_id: str, up_to: int) -> int:
        """Delete a device's messages with ids up to ``up_to``; how many went."""
        cur = self.conn.execute(
            "DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND id <= ?",
            (user_id, device_id, up_to),
        )
        return cur.rowcount

    def device_list_watchers(self, user_id: int) -> list[int]:
        """Who is told that a user's device list changed: the user and every user who
        shares a direct chat or an encrypted group with them, by id."""
        rows = self.conn.execute(
            "SELECT DISTINCT o.user_id FROM members m JOIN chats c ON c.id = m.chat_id"
            " JOIN members o ON o.chat_id = m.chat_id"
            " WHERE m.user_id = ? AND (c.kind = 'direct' OR c.encrypted <> 0)",
            (user_id,),
        ).fetchall()
        return sorted({int(r[0]) for r in rows} | {user_id})

    def delete_device(self, user_id: int, device_id: str) -> None:
        """Forget a device: its keys, its one-time keys and its waiting messages."""
        for table in ("to_device", "one_time_keys", "device_keys"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )

    def set_encrypted(self, message_id: int, encrypted: str) -> None:
        """Store the encrypted body (JSON) of a message."""
        self.conn.execute("UPDATE messages SET encrypted = ? WHERE id = ?", (encrypted, message_id))


def key_queries(tx: Tx) -> KeyQueries:
    """The key-directory queries of a unit of work."""
    return SqlKeyQueries(connection(tx))

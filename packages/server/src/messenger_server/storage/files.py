"""Queries of the file tables (``files``, ``message_files``, ``blob_holds``) on SQLite.

Kept apart from :class:`~.sqlite.SqliteTx` so that the file service owns its
schema; a PostgreSQL store would provide the same :class:`FileQueries`.
Message rows are never referenced by a foreign key: the retention service may
delete messages, and the files they carried are then collected as orphans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from messenger_protocol import Attachment

from .base import Tx

__all__ = ["FileQueries", "FileRecord", "SqliteFileQueries", "file_queries"]

_IN_CHUNK = 500
"""Most ids bound into one ``IN (...)`` list (SQLite caps bound parameters)."""
_FILE_COLUMNS = (
    "f.id, f.owner_id, f.sha256, f.size, f.mime, f.name, f.width, f.height, f.created_at"
)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One upload: who uploaded which stored bytes under which display name."""

    id: str
    owner_id: int
    sha256: str
    size: int
    mime: str
    name: str
    width: int | None
    height: int | None
    created_at: float

    def attachment(self) -> Attachment:
        """The protocol view of this upload."""
        return Attachment(
            id=self.id,
            name=self.name,
            size=self.size,
            mime=self.mime,
            sha256=self.sha256,
            width=self.width,
            height=self.height,
        )


def _record(row: Any) -> FileRecord:
    return FileRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])


class FileQueries(Protocol):
    """What the file service needs of the database."""

    def insert_file(self, record: FileRecord) -> None:
        """Store a new upload."""
        ...

    def file(self, file_id: str) -> FileRecord | None:
        """The upload with this id."""
        ...

    def used_bytes(self, owner_id: int) -> int:
        """Bytes a user stores (each distinct content counted once)."""
        ...

    def owns_sha256(self, owner_id: int, sha256: str) -> bool:
        """The user already stores these bytes (a repeat costs no quota)."""
        ...

    def link(self, message_id: int, chat_id: int, file_ids: list[str]) -> None:
        """Attach uploads to a message, in order."""
        ...

    def attachments(self, message_ids: list[int]) -> dict[int, list[Attachment]]:
        """The attachments of messages, in their order."""
        ...

    def readable(self, file_id: str, user_id: int) -> bool:
        """Some existing message of a chat the user is in carries the file."""
        ...

    def chat_files(self, chat_id: int, limit: int) -> list[Attachment]:
        """Files attached to a chat's existing messages, newest first, each once."""
        ...

    def collect(self, unattached_before: float) -> list[str]:
        """Drop links of deleted messages and uploads nothing refers to.

        Uploads never attached are kept until ``unattached_before``. Returns the
        sha256 of every deleted upload.
        """
        ...

    def sha256_in_use(self, sha256: str) -> bool:
        """Some upload still stores these bytes."""
        ...

    def unlink(self, message_id: int) -> list[str]:
        """Take every upload off a message (it was deleted); their ids."""
        ...

    def drop_unlinked(self, file_ids: list[str]) -> list[str]:
        """Delete those of these uploads no message carries any more; their sha256."""
        ...

    def hold_for_upload(self, sha256: str, hold: str, now: float, deleting_since: float) -> bool:
        """Hold these bytes for an upload about to store them (until :meth:`release_hold`,
        in the unit that records the upload); False while a deletion of them held since
        ``deleting_since`` or later is under way."""
        ...

    def hold_for_deletion(
        self, sha256s: list[str], hold: str, now: float, uploading_since: float
    ) -> list[str]:
        """Those of ``sha256s`` no upload stores and no upload held since
        ``uploading_since`` is storing, held for deletion (until :meth:`release_hold`)."""
        ...

    def release_hold(self, hold: str) -> None:
        """Let go of what ``hold`` held."""
        ...


class SqliteFileQueries:
    """:class:`FileQueries` on the connection of a :class:`~.sqlite.SqliteTx`."""

    def __init__(self, tx: Tx) -> None:
        conn = getattr(tx, "conn", None)
        if conn is None:
            raise TypeError("the file tables need a SQLite store")
        self.conn = conn

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        rows: list[Any] = self.conn.execute(sql, tuple(args)).fetchall()
        return rows

    def insert_file(self, record: FileRecord) -> None:
        """Store a new upload."""
        self.conn.execute(
            "INSERT INTO files (id, owner_id, sha256, size, mime, name, width, height, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id, record.owner_id, record.sha256, record.size, record.mime,
                record.name, record.width, record.height, record.created_at,
            ),
        )  # fmt: skip

    def file(self, file_id: str) -> FileRecord | None:
        """The upload with this id."""
        row = self.conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files f WHERE f.id = ?", (file_id,)
        ).fetchone()
        return None if row is None else _record(row)

    def used_bytes(self, owner_id: int) -> int:
        """Bytes a user stores (each distinct content counted once)."""
        row = self.conn.execute(
            "SELECT coalesce(sum(size), 0) FROM"
            " (SELECT DISTINCT sha256, size FROM files WHERE owner_id = ?) AS stored",
            (owner_id,),
        ).fetchone()
        return int(row[0])

    def owns_sha256(self, owner_id: int, sha256: str) -> bool:
        """The user already stores these bytes (a repeat costs no quota)."""
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE owner_id = ? AND sha256 = ? LIMIT 1", (owner_id, sha256)
        ).fetchone()
        return row is not None

    def link(self, message_id: int, chat_id: int, file_ids: list[str]) -> None:
        """Attach uploads to a message, in order."""
        self.conn.executemany(
            "INSERT INTO message_files (message_id, file_id, position, chat_id)"
            " VALUES (?, ?, ?, ?)",
            [(message_id, fid, n, chat_id) for n, fid in enumerate(file_ids)],
        )

    def attachments(self, message_ids: list[int]) -> dict[int, list[Attachment]]:
        """The attachments of messages, in their order."""
        found: dict[int, list[Attachment]] = {}
        for start in range(0, len(message_ids), _IN_CHUNK):
            ids = message_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(ids))
            rows = self._all(
                f"SELECT mf.message_id, {_FILE_COLUMNS} FROM message_files mf"
                f" JOIN files f ON f.id = mf.file_id WHERE mf.message_id IN ({marks})"
                " ORDER BY mf.message_id, mf.position",
                ids,
            )
            for row in rows:
                found.setdefault(row[0], []).append(_record(row[1:]).attachment())
        return found

    def readable(self, file_id: str, user_id: int) -> bool:
        """Some existing message of a chat the user is in carries the file."""
        row = self.conn.execute(
            "SELECT 1 FROM message_files mf"
            " JOIN messages m ON m.id = mf.message_id"
            " JOIN members c ON c.chat_id = mf.chat_id AND c.user_id = ?"
            " WHERE mf.file_id = ? LIMIT 1",
            (user_id, file_id),
        ).fetchone()
        return row is not None

    def chat_files(self, chat_id: int, limit: int) -> list[Attachment]:
        """Files attached to a chat's existing messages, newest first, each once."""
        rows = self._all(
            f"SELECT {_FILE_COLUMNS}, max(mf.message_id) AS newest FROM message_files mf"
            " JOIN messages m ON m.id = mf.message_id"
            " JOIN files f ON f.id = mf.file_id"
            " WHERE mf.chat_id = ? GROUP BY f.id"
            " ORDER BY newest DESC, max(mf.position) DESC LIMIT ?",
            (chat_id, limit),
        )
        return [_record(row).attachment() for row in rows]

    def collect(self, unattached_before: float) -> list[str]:
        """Drop links of deleted messages and uploads nothing refers to."""
        self.conn.execute(
            "DELETE FROM message_files WHERE NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.id = message_files.message_id)"
        )
        rows = self._all(
            "SELECT id, sha256 FROM files f WHERE f.created_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM message_files mf WHERE mf.file_id = f.id)",
            (unattached_before,),
        )
        self.conn.executemany("DELETE FROM files WHERE id = ?", [(r[0],) for r in rows])
        return sorted({r[1] for r in rows})

    def sha256_in_use(self, sha256: str) -> bool:
        """Some upload still stores these bytes."""
        row = self.conn.execute("SELECT 1 FROM files WHERE sha256 = ? LIMIT 1", (sha256,))
        return row.fetchone() is not None

    def unlink(self, message_id: int) -> list[str]:
        """Take every upload off a message (it was deleted); their ids."""
        rows = self._all(
            "DELETE FROM message_files WHERE message_id = ? RETURNING file_id", (message_id,)
        )
        return sorted(r[0] for r in rows)

    def drop_unlinked(self, file_ids: list[str]) -> list[str]:
        """Delete those of these uploads no message carries any more; their sha256."""
        gone: set[str] = set()
        for start in range(0, len(file_ids), _IN_CHUNK):
            ids = file_ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(ids))
            rows = self._all(
                f"DELETE FROM files WHERE id IN ({marks}) AND NOT EXISTS"
                " (SELECT 1 FROM message_files mf WHERE mf.file_id = files.id) RETURNING sha256",
                ids,
            )
            gone.update(r[0] for r in rows)
        return sorted(gone)

    def hold_for_upload(self, sha256: str, hold: str, now: float, deleting_since: float) -> bool:
        """Hold these bytes for an upload about to store them; False while they are being
        deleted."""
        busy = self.conn.execute(
            "SELECT 1 FROM blob_holds WHERE sha256 = ? AND deleting = 1 AND at >= ? LIMIT 1",
            (sha256, deleting_since),
        ).fetchone()
        if busy is not None:
            return False
        self.conn.execute(
            "INSERT INTO blob_holds (hold, sha256, deleting, at) VALUES (?, ?, 0, ?)",
            (hold, sha256, now),
        )
        return True

    def hold_for_deletion(
        self, sha256s: list[str], hold: str, now: float, uploading_since: float
    ) -> list[str]:
        """Those of ``sha256s`` no upload stores or is storing, held for deletion."""
        # holds a crashed node left: no check counts them any more
        self.conn.execute("DELETE FROM blob_holds WHERE at < ?", (uploading_since,))
        doomed = []
        for sha256 in sha256s:
            if (
                self.sha256_in_use(sha256)
                or self.conn.execute(
                    "SELECT 1 FROM blob_holds WHERE sha256 = ? AND deleting = 0 LIMIT 1", (sha256,)
                ).fetchone()
                is not None
            ):
                continue
            self.conn.execute(
                "INSERT INTO blob_holds (hold, sha256, deleting, at) VALUES (?, ?, 1, ?)",
                (hold, sha256, now),
            )
            doomed.append(sha256)
        return doomed

    def release_hold(self, hold: str) -> None:
        """Let go of what ``hold`` held."""
        self.conn.execute("DELETE FROM blob_holds WHERE hold = ?", (hold,))


def file_queries(tx: Tx) -> FileQueries:
    """The file queries of a unit of work."""
    return SqliteFileQueries(tx)

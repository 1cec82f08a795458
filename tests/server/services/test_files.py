"""Files through the service: limits, sniffing, names, dedup, access, quota, collection (F13)."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    CreateChat,
    ErrorCode,
    HistoryQuery,
    MessageCreated,
    SendMessage,
)
from messenger_server.blobs import BlobStore, LocalBlobs
from messenger_server.services import files as files_module
from messenger_server.services.files import (
    UNATTACHED_GRACE_SECONDS,
    FileService,
    image_size,
    safe_name,
    sniff_mime,
)

from .conftest import Harness, ManualClock, make_app, next_turn

LIMIT = 5 * 1024 * 1024


def png(width: int, height: int) -> bytes:
    """The head of a PNG file (enough to sniff and measure)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4


ELF = b"\x7fELF\x02\x01\x01\x00" + b"\0" * 120


async def body(data: bytes, piece: int = 65536) -> AsyncIterator[bytes]:
    """A request body arriving in pieces."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def never_read() -> AsyncIterator[bytes]:
    """A body that must not be read."""
    raise AssertionError("the body was read")
    yield b""  # pragma: no cover


def stored(root: Path) -> list[Path]:
    """Every file under the files dir (temp files included)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def files_of(harness: Harness) -> FileService:
    return harness.app.files


async def test_exact_limit_is_accepted_and_one_more_byte_is_refused(harness: Harness) -> None:
    alice = await harness.user("alice")
    files = files_of(harness)
    data = b"a" * LIMIT
    ok = await files.upload(alice, "big.txt", body(data), None)
    assert ok.size == LIMIT
    before = stored(files.root)
    with pytest.raises(ApiError) as refused:
        await files.upload(alice, "bigger.bin", body(b"b" * (LIMIT + 1)), None)
    assert refused.value.code is ErrorCode.TOO_LARGE
    assert refused.value.message == "file is over the limit of 5.0 MiB"
    with pytest.raises(ApiError) as declared:
        await files.upload(alice, "bigger.bin", never_read(), LIMIT + 1)
    assert declared.value.code is ErrorCode.TOO_LARGE
    assert declared.value.message == "file is 1 byte over the limit of 5.0 MiB"
    assert stored(files.root) == before  # nothing left: no temp file, no blob


async def test_sniffed_type_wins_over_the_name(harness: Harness) -> None:
    alice = await harness.user("alice")
    files = files_of(harness)
    image = await files.upload(alice, "x.txt", body(png(640, 480)), None)
    assert (image.mime, image.width, image.height, image.name) == ("image/png", 640, 480, "x.txt")
    binary = await files.upload(alice, "a.jpg", body(ELF), None)
    assert binary.mime == "application/x-executable"
    assert (binary.width, binary.height) == (None, None)
    text = await files.upload(alice, "notes", body("héllo\nwörld\n".encode()), None)
    assert text.mime == "text/plain"


async def test_the_type_is_sniffed_off_the_event_loop(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sniffing runs puremagic's table in Python for milliseconds: on the loop's thread,
    every request and event delivery of the server waited for it (issue 11)."""
    threads: list[threading.Thread] = []

    def sniff(head: bytes) -> str:
        threads.append(threading.current_thread())
        return sniff_mime(head)

    monkeypatch.setattr(files_module, "sniff_mime", sniff)
    alice = await harness.user("alice")
    shown = await files_of(harness).upload(alice, "a.png", body(png(3, 2)), None)
    assert (shown.mime, shown.width, shown.height) == ("image/png", 3, 2)
    assert threads and threading.main_thread() not in threads


def test_sniffing_and_dimensions_of_common_formats() -> None:
    gif = b"GIF89a" + struct.pack("<HH", 12, 34) + b"\0" * 10
    jpeg = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 480, 800) + b"\x03" + b"\0" * 9
    )  # fmt: skip
    assert (sniff_mime(gif), image_size(gif)) == ("image/gif", (12, 34))
    assert (sniff_mime(jpeg), image_size(jpeg)) == ("image/jpeg", (800, 480))
    assert sniff_mime(b"%PDF-1.7\n") == "application/pdf"
    assert sniff_mime(bytes(range(256))) == "application/octet-stream"
    assert sniff_mime(b"PK\x03\x04" + b"\0" * 30) == "application/zip"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("a/b\\c", "c"),
        ("evil\x00name.txt", "evil_name.txt"),
        ("...hidden", "hidden"),
        ("..", "file"),
        ("", "file"),
        ("line\nbreak\u202etxt.exe", "line_break_txt.exe"),
        ("x" * 300 + ".png", "x" * 251 + ".png"),
    ],
)
def test_names_are_sanitised(given: str, kept: str) -> None:
    assert safe_name(given) == kept


async def test_same_bytes_are_stored_once(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    files = files_of(harness)
    first = await files.upload(alice, "one.bin", body(b"same bytes" * 1000), None)
    second = await files.upload(bob, "two.bin", body(b"same bytes" * 1000), None)
    assert first.id != second.id and first.sha256 == second.sha256
    blobs = [p for p in stored(files.root) if p.parent.parent.parent == files.root]
    assert [p.name for p in blobs] == [first.sha256]
    assert blobs[0].parent == files.root / first.sha256[:2] / first.sha256[2:4]


async def test_attachments_travel_with_the_message_and_gate_downloads(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    carol = await harness.user("carol")
    files = files_of(harness)
    stream = harness.stream(bob)
    group = await harness.app.chats.create(alice, CreateChat(name="secret"))
    doc = await files.upload(alice, "plan.txt", body(b"the plan"), None)
    with pytest.raises(ApiError) as not_yours:
        await harness.app.messages.post(
            bob, GENERAL_CHAT_ID, SendMessage(text="", attachments=[doc.id])
        )
    assert not_yours.value.code is ErrorCode.FORBIDDEN
    # bob cannot read it yet; an unknown id gets the very same answer
    refusals = []
    for who, file_id in ((bob, doc.id), (bob, "A" * 22), (carol, "../../etc/passwd")):
        with pytest.raises(ApiError) as refused:
            await files.open(who, file_id)
        refusals.append((refused.value.code, refused.value.message))
    assert len(set(refusals)) == 1 and refusals[0][0] is ErrorCode.FORBIDDEN
    await harness.app.messages.post(
        alice, group.id, SendMessage(text="in the group", attachments=[doc.id])
    )
    with pytest.raises(ApiError):
        await files.open(bob, doc.id)  # not a member of the group
    posted = await harness.app.messages.post(
        alice, GENERAL_CHAT_ID, SendMessage(text="for all", attachments=[doc.id])
    )
    assert posted.attachments == [doc]
    await next_turn()
    live = [e.message for _, e in stream.take() if isinstance(e, MessageCreated)]
    assert live[-1].attachments == [doc]
    page = await harness.app.messages.history(carol, GENERAL_CHAT_ID, HistoryQuery())
    assert page.messages[-1].attachments == [doc]
    opened = await files.open(carol, doc.id)
    assert b"".join([c async for c in files.blobs.read(opened.sha256, 0, 8)]) == b"the plan"
    listed = await files.chat_files(bob, GENERAL_CHAT_ID)
    assert [f.id for f in listed.files] == [doc.id]
    with pytest.raises(ApiError):
        await files.chat_files(bob, group.id)


async def test_quota_crossed_by_one_byte(tmp_path: Path) -> None:
    clock = ManualClock()
    app, _ = make_app(tmp_path, clock, user_quota_bytes=1000)
    await app.start()
    try:
        from messenger_protocol import Credentials

        session = await app.accounts.register(
            Credentials(login="alice", password="password1"), "::1"
        )
        alice = await app.accounts.authenticate(session.token, "127.0.0.1:1")
        await app.files.upload(alice, "a", body(b"a" * 600), None)
        await app.files.upload(alice, "again", body(b"a" * 600), None)  # same bytes: free
        await app.files.upload(alice, "b", body(b"b" * 400), None)  # exactly at the quota
        for length in (1, None):
            with pytest.raises(ApiError) as over:
                await app.files.upload(alice, "c", body(b"c"), length)
            assert over.value.code is ErrorCode.QUOTA_EXCEEDED
        assert not any((tmp_path / "files" / "tmp").iterdir())
    finally:
        await app.close()


async def test_allow_list_refuses_other_types(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, ManualClock(), allowed_mime=("image/*", "text/plain"))
    await app.start()
    try:
        from messenger_protocol import Credentials

        session = await app.accounts.register(
            Credentials(login="alice", password="password1"), "::1"
        )
        alice = await app.accounts.authenticate(session.token, "127.0.0.1:1")
        assert (await app.files.upload(alice, "p", body(png(1, 1)), None)).mime == "image/png"
        with pytest.raises(ApiError) as refused:
            await app.files.upload(alice, "x.png", body(ELF), None)
        assert refused.value.code is ErrorCode.UNSUPPORTED_TYPE
        blobs = stored(tmp_path / "files")
        assert len(blobs) == 1
    finally:
        await app.close()


async def test_collection_removes_what_no_message_carries(harness: Harness) -> None:
    alice = await harness.user("alice")
    files = files_of(harness)
    kept = await files.upload(alice, "kept", body(b"kept"), None)
    orphan = await files.upload(alice, "orphan", body(b"orphan"), None)
    doomed = await files.upload(alice, "doomed", body(b"doomed"), None)
    await harness.app.messages.post(
        alice, GENERAL_CHAT_ID, SendMessage(text="k", attachments=[kept.id])
    )
    gone_msg = await harness.app.messages.post(
        alice, GENERAL_CHAT_ID, SendMessage(text="d", attachments=[doomed.id])
    )
    assert await files.collect() == 0  # a fresh upload waits for its message
    harness.clock.advance(UNATTACHED_GRACE_SECONDS + 1)

    def delete_message(tx: object) -> None:
        tx.conn.execute("DELETE FROM messages WHERE id = ?", (gone_msg.id,))  # type: ignore[attr-defined]

    await harness.app.store.write(delete_message)  # as retention does
    assert await files.collect() == 2
    names = {p.name for p in stored(files.root)}
    assert names == {kept.sha256}
    with pytest.raises(ApiError):
        await files.open(alice, orphan.id)
    assert await files.blobs.size((await files.open(alice, kept.id)).sha256) is not None


class StopsAfterPut:
    """A node's blob store that stops once it has stored bytes, until let go."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.stored = asyncio.Event()
        self.go_on = asyncio.Event()

    async def start(self) -> None:
        await self.inner.start()

    async def put(self, sha256: str, source: Path) -> None:
        await self.inner.put(sha256, source)
        self.stored.set()
        await self.go_on.wait()

    async def size(self, sha256: str) -> int | None:
        return await self.inner.size(sha256)

    def read(self, sha256: str, first: int, length: int) -> AsyncIterator[bytes]:
        return self.inner.read(sha256, first, length)

    async def delete(self, sha256: str) -> bool:
        return await self.inner.delete(sha256)


async def test_clean_up_keeps_bytes_another_node_is_uploading_again(harness: Harness) -> None:
    """Issue 13: two nodes on one blob directory. Node B uploads bytes again that only an
    expired upload stores; node A's clean-up runs after B stored them (B found them
    there) and before B recorded its upload: the bytes stay, B's upload is whole."""
    alice = await harness.user("alice")
    node_a = files_of(harness)
    stops = StopsAfterPut(LocalBlobs(node_a.root))
    node_b = FileService(harness.app.store, harness.clock, node_a.root, blobs=stops)
    data = b"the same bytes twice"
    await node_a.upload(alice, "old", body(data), None)
    harness.clock.advance(UNATTACHED_GRACE_SECONDS + 1)  # the old upload is collectable
    again = asyncio.create_task(node_b.upload(alice, "again", body(data), None))
    await stops.stored.wait()
    assert await node_a.collect() == 0  # the old upload's row goes, its bytes stay
    stops.go_on.set()
    kept = await again
    assert await node_a.blobs.size(kept.sha256) == len(data)
    stored_file = await node_a.open(alice, kept.id)
    chunks = [c async for c in node_a.blobs.read(stored_file.sha256, 0, len(data))]
    assert b"".join(chunks) == data


def _names(paths: Iterable[Path]) -> set[str]:
    return {p.name for p in paths}

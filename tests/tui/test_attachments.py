"""Attachments in the Textual app: attach through the picker, see the card, download it."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DirectoryTree, Input, Label

from messenger_client import Client
from messenger_client.crypto import seal_file, sealed_size
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.widgets.attachments import (
    AttachmentCard,
    AttachmentsScreen,
    AttachScreen,
    icon_for,
    png_pixels,
    preview_of,
    refusal_for_size,
    render_half_blocks,
)
from messenger_client.tui.widgets.message_view import MessageView
from messenger_protocol import GENERAL_CHAT_ID, ApiError, limits
from tests.support.server import ServerProcess
from tests.tui.conftest import WAIT, screen_text, signed_in, until


def make_png(width: int, height: int) -> bytes:
    """A real RGB PNG: red on top, blue below (Sub and Up filters mixed)."""
    rows = b""
    for y in range(height):
        colour = b"\xff\x00\x00" if y < height // 2 else b"\x00\x00\xff"
        if y % 2:
            rows += b"\x00" + colour * width  # filter None
        else:  # filter Sub: each pixel as the difference from its left neighbour
            rows += b"\x01" + colour + b"\x00\x00\x00" * (width - 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )  # fmt: skip


def test_png_decoding_and_half_blocks() -> None:
    decoded = png_pixels(make_png(4, 4))
    assert decoded is not None
    width, height, rows = decoded
    assert (width, height) == (4, 4)
    assert rows[0] == [(255, 0, 0)] * 4 and rows[3] == [(0, 0, 255)] * 4
    picture = render_half_blocks(rows, width, height, cells=4)
    assert picture.plain == "▀▀▀▀\n▀▀▀▀"
    assert png_pixels(b"not a png") is None


def test_text_preview_shows_the_first_lines(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("".join(f"line {n}\n" for n in range(100)))
    shown = preview_of(notes, "text/plain")
    assert shown is not None
    assert shown.plain.splitlines() == [f"line {n}" for n in range(12)]
    assert preview_of(notes, "application/octet-stream") is None


def test_sizes_icons_and_refusals() -> None:
    assert refusal_for_size(6_400_000) == "file is 6.1 MiB, the limit is 5.0 MiB"
    assert refusal_for_size(5 * 1024 * 1024) is None
    # to an encrypted chat the limit is on the ciphertext: the largest file that fits
    # seals to exactly the limit, one byte more is refused
    fits = limits.MAX_FILE_BYTES - 81
    assert len(seal_file(bytes(fits))[0]) == sealed_size(fits) == limits.MAX_FILE_BYTES
    assert len(seal_file(bytes(fits + 1))[0]) == sealed_size(fits + 1)
    assert refusal_for_size(fits, encrypted=True) is None
    assert refusal_for_size(fits + 1, encrypted=True) == (
        "file is 16 bytes over the limit of 5.0 MiB once encrypted"
    )
    assert icon_for("image/png") != icon_for("application/pdf") != icon_for("text/plain")


async def test_attach_through_the_picker_see_the_card_and_download_it(
    server: ServerProcess,
    make_app: Callable[..., MessengerApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pick = tmp_path / "pick"
    pick.mkdir()
    picture = make_png(8, 8)
    (pick / "photo.png").write_bytes(picture)
    too_big = pick / "huge.bin"
    with too_big.open("wb") as f:
        f.truncate(6_400_000)
    monkeypatch.chdir(pick)
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press("ctrl+u")
        await until(pilot, lambda: isinstance(app.screen, AttachScreen), "the picker")
        picker = app.screen
        assert isinstance(picker, AttachScreen)
        tree = picker.query_one(DirectoryTree)

        def node_named(name: str) -> object:
            return next((n for n in tree.root.children if str(n.label) == name), None)

        await until(pilot, lambda: node_named("photo.png") is not None, "the file in the tree")
        # a file over the limit is refused with the reason, before any upload
        picker.query_one("#attach-path", Input).value = str(too_big)
        picker.query_one("#attach-path", Input).focus()
        await pilot.press("enter")
        status = picker.query_one("#attach-status", Label)
        await until(pilot, lambda: "the limit is 5.0 MiB" in str(status.render()), "the refusal")
        assert "file is 6.1 MiB, the limit is 5.0 MiB" in str(status.render())
        tree.focus()
        node = node_named("photo.png")
        tree.move_cursor(node)  # type: ignore[arg-type]
        await pilot.press("enter")
        assert app.store is not None
        store = app.store

        def posted() -> bool:
            return any(m.attachments for m in store.timeline(1).messages)

        await until(pilot, posted, "the message with the file")
        await until(pilot, lambda: app.screen is app.main, "back on the main screen")
        message = next(m for m in store.timeline(1).messages if m.attachments)
        attachment = message.attachments[0]
        assert (attachment.name, attachment.mime, attachment.size) == (
            "photo.png", "image/png", len(picture),
        )  # fmt: skip
        await until(pilot, lambda: "photo.png" in screen_text(app), "the card")
        assert "image/png" in screen_text(app)
        assert app.main is not None
        view = app.main.view
        assert view.timeline is not None
        index = view.timeline.index_of(message.id)
        assert index is not None
        # a click on the card line opens the files panel (a short chat sits at the bottom)
        layout = view.layout_
        assert layout is not None
        last = layout.line_of(index + 1) if index + 1 < len(view.timeline) else layout.total
        gap = max(view.size.height - layout.total, 0)
        row = last - 1 - round(view.scroll_y) + gap
        region = view.content_region
        y = row + region.y - view.region.y
        await pilot.click(MessageView, offset=(region.x - view.region.x + 12, y))
        await until(pilot, lambda: isinstance(app.screen, AttachmentsScreen), "panel by click")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "panel closed by Esc")
        # and so does F4 on the selected message
        view.select_index(index)
        await pilot.press("f4")
        await until(pilot, lambda: isinstance(app.screen, AttachmentsScreen), "the files panel")
        panel = app.screen
        assert isinstance(panel, AttachmentsScreen)
        card = panel.query_one(AttachmentCard)
        assert "photo.png" in str(card.render()) and "8x8" in str(card.render())
        card.focus()
        await pilot.press("enter")
        await until(pilot, lambda: panel.saved is not None, "the download")
        assert panel.saved is not None
        assert panel.saved == app.config.dirs.downloads / "photo.png"
        assert panel.saved.read_bytes() == picture
        # issue 9 item 11: a second download never overwrites the first; it says where it went
        first = panel.saved
        first.write_bytes(b"edited by the user")
        await pilot.press("enter")
        second = app.config.dirs.downloads / "photo (1).png"
        await until(pilot, lambda: panel.saved == second, "the second download")
        assert second.read_bytes() == picture and first.read_bytes() == b"edited by the user"
        said = str(panel.status.render())
        assert said == f"Saved to {second} (photo.png was already there)"
        await until(pilot, lambda: "▀" in str(panel.preview.render()), "the image preview")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "panel closed")


async def test_file_command_uploads_with_the_picker_and_explains_refusals(
    server: ServerProcess, make_app: Callable[..., MessengerApp], tmp_path: Path
) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as f:
        f.truncate(6_400_000)
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk\n")
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press(*f"/file {huge}", "enter")
        await until(pilot, lambda: isinstance(app.screen, AttachScreen), "the picker")
        status = app.screen.query_one("#attach-status", Label)
        await until(pilot, lambda: "file is 6.1 MiB" in str(status.render()), "the refusal")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "back")
        await pilot.press(*f"/file {notes}", "enter")
        assert app.store is not None
        store = app.store
        await until(
            pilot,
            lambda: any(
                a.name == "notes.txt" for m in store.timeline(1).messages for a in m.attachments
            ),
            "the posted file",
        )
        assert app.screen is app.main


async def test_a_5_mib_file_reads_5_0_mib_everywhere(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    tmp_path: Path,
) -> None:
    """Issue 9 item 12: the same 5 MiB file showed as "5.0 MiB", "5 MB" and "5.0 MB". One
    formatter: the TUI card, the files panel, the plain client's /files and a server error
    all say "5.0 MiB"."""
    server = server_factory()
    strict = server_factory(args=["--max-file-bytes", str(1024 * 1024)])
    five = tmp_path / "five.bin"
    five.write_bytes(os.urandom(limits.MAX_FILE_BYTES))
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    stranger = Client(strict.url)
    await stranger.register("bob", "secret12")
    try:
        with pytest.raises(ApiError) as refused:
            await stranger.upload(five)
        assert refused.value.message == "file is 5.0 MiB, the limit is 1.0 MiB"
        attachment = await bob.upload(five)
        message = await bob.send(GENERAL_CHAT_ID, "", attachments=[attachment.id])

        app = make_app(server.url)
        async with signed_in(app) as (pilot, _):
            await until(pilot, lambda: "five.bin" in screen_text(app), "the card")
            card_line = next(ln for ln in screen_text(app).splitlines() if "five.bin" in ln)
            assert "5.0 MiB" in card_line
            assert app.main is not None and app.main.view.timeline is not None
            index = app.main.view.timeline.index_of(message.id)
            assert index is not None
            app.main.view.select_index(index)
            app.main.view.focus()
            await pilot.press("f4")
            await until(pilot, lambda: isinstance(app.screen, AttachmentsScreen), "the panel")
            card = app.screen.query_one(AttachmentCard)
            assert "5.0 MiB" in str(card.render())

        env = {**os.environ, "MESSENGER_CLIENT_HOME": str(tmp_path / "plain-home")}
        plain = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "messenger_client", "--plain", "--server", server.url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(
            plain.communicate(b"/login bob secret12\n/files general\n/exit\n"), timeout=WAIT
        )
        listed = [ln for ln in out.decode().splitlines() if "five.bin" in ln and "[" not in ln]
        assert listed and all("5.0 MiB" in ln for ln in listed), out.decode()
    finally:
        await bob.close()
        await stranger.close()

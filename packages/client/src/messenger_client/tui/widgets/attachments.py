"""Attachments in the TUI: cards, previews, the attach picker and the download panel.

* :class:`AttachScreen` -- pick a file (a :class:`DirectoryTree`, or paste a path),
  upload it with a progress bar and post it to the open chat. A file over the limit
  is refused before anything is sent ("file is 6.1 MiB, the limit is 5.0 MiB"). In an
  end-to-end encrypted chat its ``upload`` encrypts the file and sends it itself.
* :class:`AttachmentsScreen` -- the attachments of one message as cards (icon by
  type, name, size, MIME); Enter or a click downloads one to the download dir with
  progress, then offers "open" (xdg-open/open) and "copy path"; PNG images get a
  half-block preview, text files their first lines. An encrypted message's files are
  fetched by its ``fetch`` (downloaded, decrypted and checked).
* :class:`AttachmentClicked` -- posted by the message view when a card line is clicked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import stat
import struct
import sys
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message as TextualMessage
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DirectoryTree, Input, Label, ProgressBar, Static

from messenger_protocol import (
    ApiError,
    Attachment,
    Message,
    MessengerError,
    format_size,
    limits,
)

from ...api import Client, ServerUnavailable
from ...crypto import file_refusal
from ..robust import Guarded
from ..timeline import Layout, Timeline

__all__ = [
    "AttachScreen",
    "AttachmentCard",
    "AttachmentClicked",
    "AttachmentsScreen",
    "attachment_at",
    "icon_for",
    "png_pixels",
    "refusal_for_size",
    "render_half_blocks",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
Upload = Callable[[Path, Progress], Awaitable[Attachment | None]]
"""Send a picked file: the stored attachment to post, or None when it was posted."""
Fetch = Callable[[Attachment, Path, Progress], Awaitable[Path]]
"""Save an attachment under a directory: where it went."""

PREVIEW_LINES = 12
"""Lines of a text file shown in its preview."""
PREVIEW_WIDTH = 48
"""Cells across an image preview."""
PREVIEW_MAX_BYTES = 5 * 1024 * 1024
"""Largest downloaded file decoded for a preview."""


class AttachmentClicked(TextualMessage):
    """A card in the message view was clicked."""

    def __init__(self, message: Message, attachment: Attachment) -> None:
        self.message = message
        self.attachment = attachment
        super().__init__()


def attachment_at(layout: Layout, timeline: Timeline, index: int, line: int) -> Attachment | None:
    """The attachment whose card is drawn on ``line`` (a line of message ``index``)."""
    message = timeline[index]
    if not message.attachments:
        return None
    end = layout.line_of(index + 1) if index + 1 < len(timeline) else layout.total
    first_card = end - (1 if message.comment_count else 0) - len(message.attachments)
    k = line - first_card
    return message.attachments[k] if 0 <= k < len(message.attachments) else None


# --- words and icons ------------------------------------------------------------------


def refusal_for_size(
    size: int, limit: int = limits.MAX_FILE_BYTES, *, encrypted: bool = False
) -> str | None:
    """Why a file of ``size`` bytes cannot be sent, or None when it can (to an encrypted
    chat the limit is on its ciphertext: :func:`~messenger_client.crypto.file_refusal`)."""
    return file_refusal(size, limit, encrypted=encrypted)


def icon_for(mime: str) -> str:
    """A one-cell icon for a MIME type."""
    major, _, minor = mime.partition("/")
    if major == "image":
        return "🖼"
    if major == "text" or minor in ("json", "xml", "x-yaml", "toml"):
        return "📄"
    if major in ("audio", "video"):
        return "🎞" if major == "video" else "🎵"
    if minor in ("zip", "gzip", "x-tar", "x-7z-compressed", "x-bzip2", "x-xz"):
        return "🗜"
    if minor == "pdf":
        return "📕"
    if "executable" in minor or "mach-binary" in minor:
        return "⚙"
    return "📎"


# --- previews -------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]] | None:
    """Decode an 8-bit, non-interlaced PNG (gray, RGB, gray+alpha, RGBA) to RGB rows."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, idat, header = 8, bytearray(), None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        return None
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or interlace or channels is None or width * height > 16_000_000:
        return None
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error:
        return None
    stride = width * channels
    rows: list[list[tuple[int, int, int]]] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        if start + stride + 1 > len(raw):
            return None
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = prev[i - channels] if i >= channels else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        if channels >= 3:
            rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)])
        else:
            rows.append([(line[i], line[i], line[i]) for i in range(0, stride, channels)])
    return width, height, rows


def render_half_blocks(
    rows: list[list[tuple[int, int, int]]], width: int, height: int, cells: int = PREVIEW_WIDTH
) -> Text:
    """Pixels as ``▀`` cells: the top pixel is the foreground, the bottom the background."""
    across = max(1, min(cells, width))
    scale = width / across
    down = max(1, int(height / scale))
    out = Text()
    for cy in range(0, down, 2):
        for cx in range(across):
            x = min(width - 1, int(cx * scale))
            top = rows[min(height - 1, int(cy * scale))][x]
            bottom = rows[min(height - 1, int((cy + 1) * scale))][x]
            out.append("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        out.append("\n")
    out.rstrip()
    return out


def preview_of(path: Path, mime: str) -> Text | None:
    """A short preview of a downloaded file: half-block image or the first text lines."""
    try:
        if path.stat().st_size > PREVIEW_MAX_BYTES:
            return None
        if mime == "image/png":
            decoded = png_pixels(path.read_bytes())
            if decoded is None:
                return None
            width, height, rows = decoded
            return render_half_blocks(rows, width, height)
        if mime.startswith("text/") or mime == "application/json":
            with path.open(encoding="utf-8", errors="replace") as f:
                lines = [next(f, "") for _ in range(PREVIEW_LINES)]
            return Text("".join(lines).rstrip("\n"))
    except OSError:
        return None
    return None


# --- cards ----------------------------------------------------------------------------


class AttachmentCard(Guarded, Static, can_focus=True):
    """One attachment: icon, name, size, type; Enter or a click asks for a download."""

    DEFAULT_CSS = """
    AttachmentCard { border: round $primary-darken-2; padding: 0 1; height: auto; }
    AttachmentCard:focus { border: round $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "download", "Download", id="attachments.download",
                tooltip="Download this file to your download folder"),
    ]  # fmt: skip

    class Chosen(TextualMessage):
        """The user wants this attachment."""

        def __init__(self, card: AttachmentCard) -> None:
            self.card = card
            super().__init__()

    def __init__(self, attachment: Attachment, **kwargs: str) -> None:
        self.attachment = attachment
        super().__init__(self.describe(attachment), **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def describe(attachment: Attachment) -> Text:
        """The card's text."""
        text = Text(f"{icon_for(attachment.mime)} ")
        text.append(attachment.name, "bold")
        text.append(f"  {format_size(attachment.size)} · {attachment.mime}", "dim")
        if attachment.width and attachment.height:
            text.append(f" · {attachment.width}x{attachment.height}", "dim")
        return text

    def action_download(self) -> None:
        """Ask the screen to download this attachment."""
        self.post_message(self.Chosen(self))

    def on_click(self) -> None:
        """A click downloads too."""
        self.focus()
        self.post_message(self.Chosen(self))


def _open_command(path: Path) -> list[str] | None:
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        return None
    return [opener, str(path)]


class AttachmentsScreen(Guarded, ModalScreen[None]):
    """The attachments of a message: download with progress, open, copy path, preview."""

    DEFAULT_CSS = """
    AttachmentsScreen { align: center middle; }
    AttachmentsScreen > Vertical {
        width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    AttachmentsScreen #att-status { color: $text-muted; height: auto; }
    AttachmentsScreen #att-actions { height: auto; }
    AttachmentsScreen #att-preview { height: auto; max-height: 30; }
    AttachmentsScreen ProgressBar { width: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_screen", "Close", id="attachments.close"),
        Binding("o", "open_file", "Open", id="attachments.open",
                tooltip="Open the downloaded file with the system's viewer"),
        Binding("c", "copy_path", "Copy path", id="attachments.copy",
                tooltip="Copy the downloaded file's path to the clipboard"),
    ]  # fmt: skip

    def __init__(
        self, client: Client, message: Message, downloads: Path, fetch: Fetch | None = None
    ) -> None:
        super().__init__()
        self.client = client
        self.fetch: Fetch = fetch or (
            lambda attachment, dest, moved: client.download(attachment.id, dest, progress=moved)
        )
        self.message = message
        self.downloads = downloads
        self.saved: Path | None = None
        """Where the last download went."""
        self.progress = ProgressBar(total=None, show_eta=False, id="att-progress")
        self.status = Label("Enter or click a file to download it", id="att-status")
        self.preview = Static("", id="att-preview")

    def compose(self) -> ComposeResult:
        """Cards, progress, actions, preview."""
        noun = "file" if len(self.message.attachments) == 1 else "files"
        with Vertical():
            yield Label(f"{len(self.message.attachments)} {noun} from {self.message.author}")
            with VerticalScroll(id="att-cards"):
                for n, attachment in enumerate(self.message.attachments):
                    yield AttachmentCard(attachment, id=f"att-card-{n}")
            yield self.progress
            yield self.status
            with Horizontal(id="att-actions"):
                yield Button("Open", id="att-open", disabled=True)
                yield Button("Copy path", id="att-copy", disabled=True)
                yield Button("Close", id="att-close")
            with VerticalScroll():
                yield self.preview

    def on_mount(self) -> None:
        """Focus the first card."""
        self.progress.display = False
        with contextlib.suppress(Exception):
            self.query(AttachmentCard).first().focus()

    @on(AttachmentCard.Chosen)
    def _chosen(self, event: AttachmentCard.Chosen) -> None:
        self.download(event.card.attachment)

    @work(exclusive=True, group="attachment-download")
    async def download(self, attachment: Attachment) -> None:
        """Download to the download dir with progress, then preview."""
        self.progress.display = True
        self.progress.update(total=attachment.size or None, progress=0)
        self.status.update(f"Downloading {attachment.name}…")

        def moved(done: int, total: int | None) -> None:
            self.progress.update(total=total, progress=done)

        try:
            await asyncio.to_thread(self.downloads.mkdir, parents=True, exist_ok=True)
            saved = await self.fetch(attachment, self.downloads, moved)
        except (ApiError, ServerUnavailable, OSError, MessengerError) as exc:
            reason = exc.message if isinstance(exc, ApiError) else str(exc)
            self.status.update(f"Not downloaded: {reason}")
            self.notify(f"Not downloaded: {reason}", severity="error")
            return
        self.saved = saved
        done = attachment.size or 1  # an encrypted file's progress counted its ciphertext
        self.progress.update(total=done, progress=done)
        taken = f" ({attachment.name} was already there)" if saved.name != attachment.name else ""
        self.status.update(f"Saved to {saved}{taken}")
        self.query_one("#att-open", Button).disabled = _open_command(saved) is None
        self.query_one("#att-copy", Button).disabled = False
        shown = await asyncio.to_thread(preview_of, saved, attachment.mime)
        self.preview.update(shown if shown is not None else "")

    @on(Button.Pressed, "#att-open")
    def action_open_file(self) -> None:
        """Open the downloaded file with xdg-open / open."""
        command = _open_command(self.saved) if self.saved is not None else None
        if command is None:
            return
        self._spawn(command)

    @work(group="attachment-open")
    async def _spawn(self, command: list[str]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
        except OSError as exc:
            self.notify(f"Cannot open: {exc}", severity="error")
            return
        await proc.wait()

    @on(Button.Pressed, "#att-copy")
    def action_copy_path(self) -> None:
        """Copy the downloaded file's path."""
        if self.saved is None:
            return
        self.app.copy_to_clipboard(str(self.saved))
        self.notify(f"Copied {self.saved}")

    @on(Button.Pressed, "#att-close")
    def action_dismiss_screen(self) -> None:
        """Close the panel."""
        self.dismiss(None)


# --- attaching ------------------------------------------------------------------------


class AttachScreen(Guarded, ModalScreen[Attachment | None]):
    """Pick a file (tree or pasted path), upload it with progress; dismissed with it."""

    DEFAULT_CSS = """
    AttachScreen { align: center middle; }
    AttachScreen > Vertical {
        width: 80%; max-width: 110; height: 80%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    AttachScreen DirectoryTree { height: 1fr; }
    AttachScreen #attach-status { height: auto; }
    AttachScreen ProgressBar { width: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="attach.cancel"),
    ]

    def __init__(
        self,
        client: Client,
        start: Path,
        max_bytes: int = limits.MAX_FILE_BYTES,
        *,
        initial: Path | None = None,
        upload: Upload | None = None,
        encrypted: bool = False,
    ) -> None:
        super().__init__()
        self.initial = initial
        self.send: Upload = upload or (lambda path, moved: client.upload(path, progress=moved))
        self.encrypted = encrypted
        """The chat is end-to-end encrypted (said on screen; ``upload`` encrypts)."""
        """A path given up front (``/file <path>``): uploaded as soon as the screen opens."""
        self.client = client
        self.start = start
        self.max_bytes = max_bytes
        self.picker = DirectoryTree(start, id="attach-tree")
        self.path_input = Input(placeholder="or paste a path and press Enter", id="attach-path")
        self.progress = ProgressBar(total=None, show_eta=False, id="attach-progress")
        self.status = Label(
            f"Choose a file (up to {format_size(max_bytes)}); Esc cancels", id="attach-status"
        )
        self.busy = False

    def compose(self) -> ComposeResult:
        """Tree, path input, progress, status."""
        with Vertical():
            yield Label(
                "Attach a file  · 🔒 encrypted on this device before upload"
                if self.encrypted
                else "Attach a file"
            )
            yield self.picker
            yield self.path_input
            yield self.progress
            yield self.status

    def on_mount(self) -> None:
        """Start in the tree."""
        self.progress.display = False
        self.picker.focus()
        if self.initial is not None:
            self.path_input.value = str(self.initial)
            self.upload(self.initial)

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.upload(Path(event.path))

    @on(Input.Submitted, "#attach-path")
    def _pasted(self, event: Input.Submitted) -> None:
        text = event.value.strip().strip("'\"")
        if text:
            self.upload(Path(text).expanduser())

    def refuse(self, reason: str) -> None:
        """Say why the file was not sent."""
        self.status.update(Text(f"Not sent: {reason}", "bold red"))
        self.notify(f"Not sent: {reason}", severity="error")

    @work(exclusive=True, group="attach-upload")
    async def upload(self, path: Path) -> None:
        """Check, upload with progress, and dismiss with the stored attachment."""
        if self.busy:
            return
        try:
            info = await asyncio.to_thread(path.stat)
        except OSError as exc:
            self.refuse(f"{exc.strerror or exc}: {path}")
            return
        size = info.st_size
        if not stat.S_ISREG(info.st_mode):
            self.refuse(f"{path} is not a file")
            return
        refusal = refusal_for_size(size, self.max_bytes, encrypted=self.encrypted)
        if refusal is not None:
            self.refuse(refusal)
            return
        self.busy = True
        self.progress.display = True
        self.progress.update(total=size or None, progress=0)
        self.status.update(f"{'Encrypting and uploading' if self.encrypted else 'Uploading'}"
                           f" {path.name}…")  # fmt: skip

        def moved(done: int, total: int | None) -> None:
            self.progress.update(total=total, progress=done)

        try:
            attachment = await self.send(path, moved)
        except (ApiError, ServerUnavailable, OSError, MessengerError) as exc:
            self.busy = False
            self.progress.display = False
            self.refuse(exc.message if isinstance(exc, ApiError) else str(exc))
            return
        self.busy = False
        self.dismiss(attachment)

    def action_cancel(self) -> None:
        """Close without sending."""
        if not self.busy:
            self.dismiss(None)


def focusable_cards(screen: Widget) -> list[AttachmentCard]:
    """The cards on a screen (for tests and key handling)."""
    return list(screen.query(AttachmentCard))

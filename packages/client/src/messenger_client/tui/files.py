"""Files: attaching one to a chat and opening the attachments of a message.

:class:`Files` is the part of the app that opens the file picker (whose upload shows its
progress and any refusal) and the attachments panel. An uploaded file becomes a message
through the outbox, like text: the picker posts :class:`~.messages.FileUploaded`. In an
end-to-end encrypted chat the picker sends it at once through the session's
:class:`~.e2ee.Encryption` (the plain client's ``/file`` path: encrypted with a key of
its own, opaque bytes on the server), and an encrypted message's files are decrypted
and checked on download (``/download``'s path).
"""

from __future__ import annotations

from pathlib import Path

from messenger_protocol import Attachment, Message

from ..api import Progress
from .host import Host
from .messages import FileUploaded
from .widgets.attachments import AttachmentsScreen, AttachScreen

__all__ = ["Files"]


class Files:
    """Attaching and opening files, for one app."""

    def __init__(self, app: Host, downloads: Path) -> None:
        self.app = app
        self.downloads = downloads
        """Where downloaded attachments go."""

    def attach(self, chat_id: int | None, path: Path | None = None) -> None:
        """Pick a file (or take ``path``), upload it with progress and post it to
        ``chat_id``."""
        client, store = self.app.client, self.app.store
        if client is None or chat_id is None:
            return
        e2ee = self.app.e2ee
        chat = store.chats.get(chat_id) if store is not None else None
        if store is not None and chat is not None and chat_id in store.encrypted:
            if e2ee is None or e2ee.crypto is None:
                self.app.notify(
                    "This device has no keys: a file would go readable to an encrypted chat",
                    severity="error",
                )
                return

            async def sealed(path: Path, moved: Progress) -> Attachment | None:
                assert e2ee is not None and chat is not None
                await e2ee.send_file(chat, path, moved)  # the event brings the message
                return None

            screen = AttachScreen(client, Path.cwd(), initial=path, upload=sealed, encrypted=True)
            self.app.push_screen(screen)
            return

        def post(attachment: Attachment | None) -> None:
            if attachment is not None:  # the message goes through the outbox, as text does
                self.app.post_message(FileUploaded(chat_id, attachment))

        self.app.push_screen(AttachScreen(client, Path.cwd(), initial=path), post)

    def attach_here(self) -> None:
        """Attach a file to the open chat (Ctrl+U)."""
        main = self.app.main
        self.attach(main.current_chat if main is not None else None)

    def show(self, message: Message) -> None:
        """Open the attachments panel of a message (if it has any)."""
        client = self.app.client
        if client is None or not message.attachments:
            return
        e2ee = self.app.e2ee
        if message.encrypted is not None and e2ee is not None:

            async def opened(attachment: Attachment, dest: Path, moved: Progress) -> Path:
                assert e2ee is not None
                return await e2ee.open_file(attachment, dest, moved)  # decrypted, checked

            self.app.push_screen(AttachmentsScreen(client, message, self.downloads, opened))
            return
        self.app.push_screen(AttachmentsScreen(client, message, Path(self.downloads)))

    def show_selected(self) -> None:
        """The attachments of the selected message, in the thread panel when it has the
        focus (F4)."""
        main = self.app.main
        if main is None:
            return
        view = main.thread_view if main.thread_view.has_focus else main.view
        message = view.selected_message()
        if message is None and view.timeline is not None:  # none selected: the newest file
            with_files = [m for m in view.timeline if m.id and m.attachments and not m.deleted_at]
            message = with_files[-1] if with_files else None
        if message is not None:
            self.show(message)

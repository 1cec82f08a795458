"""Group chats in the app: new chat, invite, invite links, join, members, join requests.

Each dialog is a small modal that calls the client library in a worker and says what
happened in its own error line or a toast. :class:`JoinRequestBar` sits above the
messages of an owner with pending join requests: one click on Approve lets someone in.
The app calls :func:`group_event` for every live event and :func:`connected` when
the stream is (re)connected; :func:`group_actions` feeds the command palette.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from messenger_protocol import (
    ApiError,
    Chat,
    InviteLink,
    JoinRequest,
    MessengerError,
    User,
    format_count,
    format_time,
)

from ...api import Client, ServerUnavailable
from ...commands import parse_invite
from ..host import Host
from ..robust import Guarded

__all__ = [
    "InviteScreen",
    "JoinRequestBar",
    "JoinRequestsScreen",
    "JoinScreen",
    "LinksScreen",
    "MembersScreen",
    "NewChatScreen",
    "bar_of",
    "find_bar",
    "group_actions",
]

log = logging.getLogger(__name__)

Action = tuple[str, str, Callable[[], object]]

DIALOG_CSS = """
GroupDialog {
    align: center middle;
    background: $background 60%;
}
GroupDialog > #group-box {
    width: 90;
    max-width: 95%;
    height: auto;
    max-height: 85%;
    padding: 1 2;
    border: round $primary;
    background: $surface;
}
GroupDialog #group-title {
    text-style: bold;
    color: $primary;
    margin-bottom: 1;
}
GroupDialog #group-rows {
    height: auto;
    max-height: 20;
}
GroupDialog .group-row {
    height: auto;
    margin-bottom: 1;
}
GroupDialog .group-row Label {
    width: 1fr;
    padding: 1 1 0 0;
}
GroupDialog .group-row Button, GroupDialog #group-buttons Button {
    margin-left: 1;
    min-width: 10;
}
GroupDialog #group-buttons {
    height: auto;
    margin-top: 1;
}
GroupDialog #group-buttons Input {
    width: 1fr;
}
GroupDialog #group-error {
    color: $error;
    height: auto;
}
GroupDialog #group-note {
    color: $text-muted;
    height: auto;
}
"""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ServerUnavailable):
        return "Cannot reach the server -- is it running?"
    if isinstance(exc, ApiError):
        return exc.message
    return str(exc) or type(exc).__name__


def _messenger(widget: Widget) -> Host:
    app = widget.app
    assert isinstance(app, Host)
    return app


class GroupDialog(Guarded, ModalScreen[None]):
    """Base of the group dialogs: a titled box, an error line, Esc closes."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="groups.close", tooltip="Close this dialog"),
    ]
    TITLE_TEXT = ""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        """The box: title, the dialog's body, the error line."""
        with Vertical(id="group-box"):
            yield Label(self.TITLE_TEXT, id="group-title")
            yield from self.body()
            yield Static("", id="group-note")
            yield Static("", id="group-error")

    def body(self) -> ComposeResult:
        """The dialog's own widgets."""
        yield from ()

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)

    def show_error(self, text: str) -> None:
        """Say what went wrong, in the dialog."""
        self.query_one("#group-error", Static).update(text)

    def show_note(self, text: str) -> None:
        """A line of information in the dialog."""
        self.query_one("#group-note", Static).update(text)
        self.query_one("#group-error", Static).update("")


# --- new chat, join, invite -----------------------------------------------------------


class NewChatScreen(GroupDialog):
    """Create a private group chat; the creator owns it."""

    TITLE_TEXT = "New group chat"

    def body(self) -> ComposeResult:
        """Name field and Create button."""
        yield Input(placeholder="chat name (letters, digits, - and _)", id="chat-name")
        yield Checkbox(
            "End-to-end encrypted (only members' devices can read it; for good)",
            id="chat-encrypted",
        )
        with Horizontal(id="group-buttons"):
            yield Button("Create", id="create", variant="primary")
            yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start typing the name."""
        self.query_one("#chat-name", Input).focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#create")
    @on(Input.Submitted, "#chat-name")
    def _create_pressed(self) -> None:
        name = self.query_one("#chat-name", Input).value.strip()
        if not name:
            self.show_error("Give the chat a name")
            return
        self._create(name, self.query_one("#chat-encrypted", Checkbox).value)

    @work(exclusive=True, group="group-dialog")
    async def _create(self, name: str, encrypted: bool) -> None:
        try:
            chat = await self.client.create_chat(name, encrypted=encrypted)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        app = _messenger(self)
        app.groups.add_chat(chat, open_it=True)
        app.notify(f"Created {chat.name}; invite people or share a link", timeout=4)
        self.dismiss(None)


class JoinScreen(GroupDialog):
    """Join a group chat by name (asks the owner) or with a pasted invite link."""

    TITLE_TEXT = "Join a group chat"

    def body(self) -> ComposeResult:
        """One field for a name or a link."""
        yield Input(placeholder="chat name, or paste an invite link", id="join-what")
        with Horizontal(id="group-buttons"):
            yield Button("Join", id="join", variant="primary")
            yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start typing."""
        self.query_one("#join-what", Input).focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#join")
    @on(Input.Submitted, "#join-what")
    def _join_pressed(self) -> None:
        text = self.query_one("#join-what", Input).value.strip()
        try:
            name, key = parse_invite(text)
        except ValueError:
            self.show_error("That is neither a chat name nor an invite link")
            return
        if not name:
            self.show_error("Type a chat name or paste an invite link")
            return
        self._join(name, key)

    @work(exclusive=True, group="group-dialog")
    async def _join(self, name: str, key: str | None) -> None:
        try:
            result = await self.client.join(name, key)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        app = _messenger(self)
        match result.state:
            case "joined" | "already_member" if result.chat is not None:
                app.groups.add_chat(result.chat, open_it=True)
                app.notify(f"You are in {result.chat.name}", timeout=4)
                self.dismiss(None)
            case "requested":
                self.show_note(f"Asked to join {name}; you will be told when the owner decides")
            case _:
                self.show_note(f"Asked the owner of {name} to invite you")


class InviteScreen(GroupDialog):
    """The owner adds a user to a group chat; → accepts the suggested login."""

    def __init__(self, client: Client, chat: Chat, logins: list[str]) -> None:
        super().__init__(client)
        self.chat = chat
        self.logins = logins
        self.TITLE_TEXT = f"Invite to {chat.name}"

    def body(self) -> ComposeResult:
        """Login field with completion."""
        yield Input(
            placeholder="login  (→ takes the suggestion)",
            id="invite-login",
            suggester=SuggestFromList(self.logins, case_sensitive=False),
        )
        with Horizontal(id="group-buttons"):
            yield Button("Invite", id="invite", variant="primary")
            yield Button("Close", id="cancel")

    def on_mount(self) -> None:
        """Start typing the login."""
        self.query_one("#invite-login", Input).focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#invite")
    @on(Input.Submitted, "#invite-login")
    def _invite_pressed(self) -> None:
        login = self.query_one("#invite-login", Input).value.strip().lstrip("@")
        if not login:
            self.show_error("Whom should I invite?")
            return
        self._invite(login)

    @work(exclusive=True, group="group-dialog")
    async def _invite(self, login: str) -> None:
        try:
            members = await self.client.invite(self.chat.id, login)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.query_one("#invite-login", Input).value = ""
        count = format_count(len(members.members), "member")
        self.show_note(f"{login} is in {self.chat.name} ({count})")


# --- invite links ------------------------------------------------------------------


class LinksScreen(GroupDialog):
    """The owner's invite links of a chat: create, copy, revoke."""

    def __init__(self, client: Client, chat: Chat) -> None:
        super().__init__(client)
        self.chat = chat
        self.links: list[InviteLink] = []
        self.TITLE_TEXT = f"Invite links of {chat.name}"

    def body(self) -> ComposeResult:
        """The list of links, then options for a new one."""
        yield VerticalScroll(id="group-rows")
        with Horizontal(id="group-buttons"):
            yield Input(placeholder="max uses", id="max-uses", type="integer")
            yield Input(placeholder="expires in hours", id="expires", type="integer")
            yield Button("New link", id="new-link", variant="primary")

    def on_mount(self) -> None:
        """Load the active links."""
        self._load()

    @work(exclusive=True, group="group-dialog")
    async def _load(self) -> None:
        try:
            status = await self.client.status()
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.links = [
            link for owned in status.owned_chats if owned.chat.id == self.chat.id
            for link in owned.links
        ]  # fmt: skip
        await self._show_links()

    async def _show_links(self) -> None:
        rows = self.query_one("#group-rows", VerticalScroll)
        await rows.remove_children()
        if not self.links:
            await rows.mount(Label("No active links. Anyone with a link still needs approval."))
            return
        for n, link in enumerate(self.links):
            limits = []
            if link.max_uses is not None:
                limits.append(f"{link.uses}/{link.max_uses} uses")
            if link.expires_at is not None:
                ends = format_time(link.expires_at, now=time.time(), relative=True)
                limits.append(f"until {ends}")
            extra = f"  ({', '.join(limits)})" if limits else ""
            await rows.mount(
                Horizontal(
                    Label(f"{link.link}{extra}"),
                    Button("Copy", id=f"copy-{n}"),
                    Button("Revoke", id=f"revoke-{n}", variant="error"),
                    classes="group-row",
                )
            )

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button == "new-link":
            self._create_link()
        elif button.startswith("copy-"):
            link = self.links[int(button.removeprefix("copy-"))]
            self.app.copy_to_clipboard(link.link)
            self.show_note(f"Copied: {link.link}")
        elif button.startswith("revoke-"):
            self._revoke(self.links[int(button.removeprefix("revoke-"))])

    def _number(self, field: str) -> int | None:
        value = self.query_one(field, Input).value.strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @work(exclusive=True, group="group-dialog")
    async def _create_link(self) -> None:
        hours = self._number("#expires")
        try:
            link = await self.client.create_link(
                self.chat.id,
                max_uses=self._number("#max-uses"),
                expires_in=hours * 3600 if hours else None,
            )
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.links.append(link)
        await self._show_links()
        self.app.copy_to_clipboard(link.link)
        self.show_note(f"New link (copied): {link.link}")

    @work(exclusive=True, group="group-dialog")
    async def _revoke(self, link: InviteLink) -> None:
        try:
            await self.client.revoke_link(self.chat.id, link.key)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.links = [x for x in self.links if x.key != link.key]
        await self._show_links()
        self.show_note("Link revoked: it no longer lets anyone ask to join")


# --- members --------------------------------------------------------------------------


class MembersScreen(GroupDialog):
    """Members of a chat; the owner removes members, a member leaves."""

    def __init__(self, client: Client, chat: Chat, me: str) -> None:
        super().__init__(client)
        self.chat = chat
        self.me = me
        self.members: list[User] = []
        self.TITLE_TEXT = f"Members of {chat.name}"

    def body(self) -> ComposeResult:
        """The member list and a Leave button."""
        yield VerticalScroll(id="group-rows")
        with Horizontal(id="group-buttons"):
            if self.chat.kind == "group" and self.chat.owner != self.me:
                yield Button("Leave chat", id="leave", variant="error")
            yield Button("Close", id="cancel")

    def on_mount(self) -> None:
        """Load the members."""
        self._load()

    @work(exclusive=True, group="group-dialog")
    async def _load(self) -> None:
        try:
            members = await self.client.members(self.chat.id)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.members = members.members
        rows = self.query_one("#group-rows", VerticalScroll)
        await rows.remove_children()
        owner = self.chat.owner == self.me and self.chat.kind == "group"
        for n, user in enumerate(self.members):
            dot = "●" if user.online else "○"
            tags = " (owner)" if user.login == self.chat.owner else ""
            tags += " (you)" if user.login == self.me else ""
            children: list[Widget] = [Label(f"{dot} {user.login}{tags}")]
            if owner and user.login != self.me:
                children.append(Button("Remove", id=f"remove-{n}", variant="error"))
            await rows.mount(Horizontal(*children, classes="group-row"))

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button == "cancel":
            self.dismiss(None)
        elif button == "leave":
            self._remove(self.me)
        elif button.startswith("remove-"):
            self._remove(self.members[int(button.removeprefix("remove-"))].login)

    @work(exclusive=True, group="group-dialog")
    async def _remove(self, login: str) -> None:
        try:
            await self.client.remove_member(self.chat.id, login)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        if login == self.me:
            self.app.notify(f"You left {self.chat.name}", timeout=4)
            self.dismiss(None)
            return
        self.show_note(f"{login} was removed from {self.chat.name}")
        self._load()


# --- join requests ---------------------------------------------------------------------


class JoinRequestsScreen(GroupDialog):
    """Pending join requests of the chats the user owns, with Approve and Reject."""

    TITLE_TEXT = "Join requests"

    def __init__(self, client: Client, chats: list[Chat]) -> None:
        super().__init__(client)
        self.chats = chats
        self.requests: list[JoinRequest] = []

    def body(self) -> ComposeResult:
        """The request list."""
        yield VerticalScroll(id="group-rows")
        with Horizontal(id="group-buttons"):
            yield Button("Close", id="cancel")

    def on_mount(self) -> None:
        """Load the requests."""
        self._load()

    @work(exclusive=True, group="group-dialog")
    async def _load(self) -> None:
        found: list[JoinRequest] = []
        try:
            for chat in self.chats:
                found.extend((await self.client.join_requests(chat.id)).requests)
        except MessengerError as exc:
            self.show_error(_describe(exc))
            return
        self.requests = found
        rows = self.query_one("#group-rows", VerticalScroll)
        await rows.remove_children()
        if not found:
            await rows.mount(Label("No one is waiting to join."))
        for n, request in enumerate(found):
            how = "with an invite link" if request.with_key else "without a link"
            await rows.mount(
                Horizontal(
                    Label(f"{request.login} → {request.chat_name} ({how})"),
                    Button("Approve", id=f"approve-{n}", variant="success"),
                    Button("Reject", id=f"reject-{n}", variant="error"),
                    classes="group-row",
                )
            )
        if found:
            # Enter approves the first request; Tab moves on to Reject and the next.
            self.query_one("#approve-0", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        if button == "cancel":
            self.dismiss(None)
            return
        verb, _, n = button.partition("-")
        if verb in ("approve", "reject") and n.isdigit():
            self._decide(self.requests[int(n)], verb == "approve")

    @work(exclusive=True, group="group-dialog")
    async def _decide(self, request: JoinRequest, approve: bool) -> None:
        if await decide(_messenger(self), request, approve):
            self._load()


async def decide(app: Host, request: JoinRequest, approve: bool) -> bool:
    """Approve or reject a join request; says how it went. True when it is decided."""
    client = app.client
    if client is None:
        return False
    try:
        if approve:
            await client.approve(request.chat_id, request.login)
        else:
            await client.reject(request.chat_id, request.login)
    except MessengerError as exc:
        app.notify(f"{request.login}: {_describe(exc)}", severity="error")
        return False
    verb = "is now in" if approve else "was turned away from"
    app.notify(f"{request.login} {verb} {request.chat_name}", timeout=4)
    bar = find_bar(app)
    if bar is not None:
        bar.forget(request)
    return True


# --- the join-request bar ------------------------------------------------------------


class JoinRequestBar(Guarded, Horizontal):
    """Above the messages while someone waits to join a chat the user owns."""

    DEFAULT_CSS = """
    JoinRequestBar {
        height: auto;
        background: $warning 20%;
        padding: 0 1;
    }
    JoinRequestBar > Label {
        width: 1fr;
        padding: 1 1 0 0;
    }
    JoinRequestBar > Button {
        margin-left: 1;
        min-width: 10;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="join-requests")
        self.requests: list[JoinRequest] = []

    def compose(self) -> ComposeResult:
        """Who asks, and what to do about it."""
        yield Label("", id="join-request-text")
        yield Button("Approve", id="join-approve", variant="success")
        yield Button("Reject", id="join-reject", variant="error")
        yield Button("All", id="join-all")

    def on_mount(self) -> None:
        """Hidden until someone asks."""
        self._redraw()

    def add(self, request: JoinRequest) -> None:
        """Someone asks to join (again: the newest request counts)."""
        self.forget(request, redraw=False)
        self.requests.append(request)
        self._redraw()

    def replace(self, requests: list[JoinRequest]) -> None:
        """The server's list of pending requests replaces ours."""
        self.requests = list(requests)
        self._redraw()

    def forget(self, request: JoinRequest, *, redraw: bool = True) -> None:
        """A request was decided."""
        self.settled(request.chat_id, request.login, redraw=redraw)

    def settled(self, chat_id: int, login: str, *, redraw: bool = True) -> None:
        """``login``'s request to join ``chat_id`` was decided (here or on another device)."""
        self.requests = [r for r in self.requests if (r.chat_id, r.login) != (chat_id, login)]
        if redraw:
            self._redraw()

    @property
    def current(self) -> JoinRequest | None:
        """The request the buttons act on (the newest)."""
        return self.requests[-1] if self.requests else None

    def _redraw(self) -> None:
        if not self.requests and self.has_focus_within:
            main = _messenger(self).main
            if main is not None:
                main.composer.focus()  # the buttons go away: back to typing
        self.display = bool(self.requests)
        request = self.current
        labels = self.query("#join-request-text")
        if request is None or not labels:
            return  # not composed yet: on_mount draws it
        more = len(self.requests) - 1
        text = f"⚑ {request.login} asks to join {request.chat_name}"
        if more:
            text += f"  (+{more} more)"
        labels.first(Label).update(text)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        app = _messenger(self)
        request = self.current
        if event.button.id == "join-all":
            app.push_screen(JoinRequestsScreen(*_owned(app)))
        elif request is not None and event.button.id in ("join-approve", "join-reject"):
            app.run_worker(
                decide(app, request, event.button.id == "join-approve"), group="join-decide"
            )


def find_bar(app: Host) -> JoinRequestBar | None:
    """The join-request bar on the main screen, if it is there."""
    main = app.main
    if main is None:
        return None
    found = main.query(JoinRequestBar)
    return found.first() if found else None


def bar_of(app: Host) -> JoinRequestBar:
    """The bar on the main screen, mounted above the messages on first use."""
    bar = find_bar(app)
    if bar is not None:
        return bar
    main = app.main
    assert main is not None and isinstance(main.composer.parent, Widget)
    bar = JoinRequestBar()
    main.composer.parent.mount(bar, before=main.view)
    return bar


def _owned(app: Host) -> tuple[Client, list[Chat]]:
    assert app.client is not None and app.store is not None
    me = app.store.me
    chats = [c for c in app.store.sorted_chats() if c.kind == "group" and c.owner == me]
    return app.client, chats


def _current_chat(app: Host) -> Chat | None:
    if app.main is None or app.store is None or app.main.current_chat is None:
        return None
    return app.store.chats.get(app.main.current_chat)


def _need_group(app: Host, owner: bool) -> Chat | None:
    chat = _current_chat(app)
    me = app.store.me if app.store is not None else ""
    if chat is None or chat.kind != "group":
        app.notify("Open a group chat first", severity="warning")
        return None
    if owner and chat.owner != me:
        app.notify(f"Only the owner of {chat.name} can do that", severity="warning")
        return None
    return chat


def show_new_chat(app: Host) -> None:
    """The "New chat" dialog."""
    if app.client is not None:
        app.push_screen(NewChatScreen(app.client))


def show_join(app: Host) -> None:
    """The "Join a chat" dialog."""
    if app.client is not None:
        app.push_screen(JoinScreen(app.client))


def show_invite(app: Host) -> None:
    """Invite someone to the open group chat (owner)."""
    chat = _need_group(app, owner=True)
    if chat is not None and app.client is not None and app.store is not None:
        logins = [x for x in app.store.logins() if x != app.store.me]
        app.push_screen(InviteScreen(app.client, chat, logins))


def show_links(app: Host) -> None:
    """Invite links of the open group chat (owner)."""
    chat = _need_group(app, owner=True)
    if chat is not None and app.client is not None:
        app.push_screen(LinksScreen(app.client, chat))


def show_members(app: Host) -> None:
    """Members of the open chat."""
    chat = _current_chat(app)
    if chat is not None and app.client is not None and app.store is not None:
        app.push_screen(MembersScreen(app.client, chat, app.store.me))


def show_requests(app: Host) -> None:
    """Pending join requests of every chat the user owns."""
    if app.client is not None and app.store is not None:
        app.push_screen(JoinRequestsScreen(*_owned(app)))


def group_actions(app: Host) -> list[Action]:
    """Command-palette entries for group chats."""
    return [
        ("New chat…", "Create a private group chat you own", lambda: show_new_chat(app)),
        ("Join a chat…", "By name (asks the owner) or with an invite link",
         lambda: show_join(app)),
        ("Invite to this chat…", "Add someone to the open group chat (owner)",
         lambda: show_invite(app)),
        ("Invite links of this chat…", "Create, copy or revoke invite links (owner)",
         lambda: show_links(app)),
        ("Members of this chat", "Who is in the open chat; remove someone or leave",
         lambda: show_members(app)),
        ("Join requests", "Approve or reject people asking to join your chats",
         lambda: show_requests(app)),
    ]  # fmt: skip

"""Command palette providers: every action of the app, and a chat/person switcher."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .. import commands as slash
from .host import Host
from .messages import OpenChat, OpenDirect

__all__ = ["ChatsProvider", "MessengerCommands"]

Action = tuple[str, str, Callable[[], object]]


def _app(provider: Provider) -> Host | None:
    app = provider.app
    return app if isinstance(app, Host) else None


def _chat_actions(app: Host) -> list[Action]:
    actions: list[Action] = []
    for chat in app.chats():
        label = f"@{chat.peer}" if chat.kind == "direct" and chat.peer else chat.name
        unread = f" ({chat.unread} unread)" if chat.unread else ""
        actions.append(
            (
                f"Go to {label}",
                f"Open the chat{unread}",
                partial(app.post_message, OpenChat(chat.id)),
            )
        )
    store = app.store
    if store is not None:
        for login in store.logins():
            if login != store.me and store.direct_chat(login) is None:
                actions.append(
                    (
                        f"Message @{login}",
                        "Start a private conversation",
                        partial(app.post_message, OpenDirect(login)),
                    )
                )
    return actions


def _app_actions(app: Host) -> list[Action]:
    def prefill(text: str) -> Callable[[], object]:
        def fill() -> None:

            if app.main is not None:
                composer = app.main.composer
                composer.load_text(text)
                composer.move_cursor(composer.document.end)
                composer.focus()

        return fill

    actions: list[Action] = [
        ("Help", "Every command and key, searchable (F1, /help)", app.action_help_screen),
        ("Status", "Connections, counts, chats, login history (F2)", app.action_status),
        ("Next chat", "Open the chat below in the list (Alt+Down)", app.action_next_chat),
        ("Previous chat", "Open the chat above in the list (Alt+Up)", app.action_previous_chat),
        ("Next chat with activity", "Jump to unread messages (Alt+A)", app.action_next_active),
        ("Switch chat", "Find a chat or a person (Ctrl+K)", app.action_switch_chat),
        ("Toggle people", "Who is online; contacts; private chats (Ctrl+O)",
         lambda: app.main.action_toggle_users() if app.main else None),
        ("Search messages", "Across chats, live as you type (Ctrl+F, / in the list)",
         lambda: app.main.action_search() if app.main else None),
        ("Mentions", "Messages that mention you, across chats (Alt+M)",
         lambda: app.main.action_mentions() if app.main else None),
        *_message_actions(app),
        *_mute_actions(app),
        ("Log out", "End this session and forget the saved token",
         lambda: app.run_command(slash.ParsedCommand("logout"), 0)),
        ("Quit", "Leave the app (the session stays saved) (Ctrl+Q)", app.exit),
    ]  # fmt: skip
    for spec in slash.COMMANDS.values():
        if spec.name in ("auth", "login"):
            continue
        text = f"/{spec.name} " if spec.args else f"/{spec.name}"
        actions.append((spec.usage, spec.help.capitalize(), prefill(text)))
    return actions


def _message_actions(app: Host) -> list[Action]:
    """Reply, edit, delete, react, seen by: on the selected message of the chat."""
    main = app.main
    if main is None or main.view.selected_message() is None:
        return []

    def act(name: str) -> Callable[[], object]:
        return lambda: main.view.action_act(name)

    return [
        ("Reply to the selected message", "Quote it in your answer (r)", act("reply")),
        ("Edit the selected message", "Your own; Esc cancels (e)", act("edit")),
        ("Delete the selected message", "Your own; asks first (d)", act("delete")),
        ("React to the selected message", "Pick an emoji; again takes it back (+)", act("react")),
    ]


def _mute_actions(app: Host) -> list[Action]:
    """Mute the open chat, only mentions through, or unmute."""
    store, main = app.store, app.main
    chat = store.chats.get(main.current_chat or 0) if store and main else None
    if chat is None:
        return []
    target = f"@{chat.peer}" if chat.kind == "direct" and chat.peer else chat.name

    def mute(mode: str) -> Callable[[], object]:
        parsed = slash.ParsedCommand("mute", {"target": target, "mode": mode})
        return lambda: app.run_command(parsed, chat.id)

    modes = [
        ("all", f"Mute {target}", "Nothing there notifies you; mentions still count"),
        ("mentions", f"Mute {target} but for mentions", "Only mentions of you notify"),
        ("off", f"Unmute {target}", "Every message notifies again"),
    ]
    return [(title, help_text, mute(mode)) for mode, title, help_text in modes if mode != chat.mute]


class _ActionsProvider(Provider):
    def actions(self, app: Host) -> list[Action]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        """Everything, before the user types."""
        app = _app(self)
        if app is None:
            return
        for title, help_text, callback in self.actions(app):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy matches of the query."""
        app = _app(self)
        if app is None:
            return
        matcher = self.matcher(query)
        for title, help_text, callback in self.actions(app):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class ChatsProvider(_ActionsProvider):
    """Chats and people (the Ctrl+K switcher)."""

    def actions(self, app: Host) -> list[Action]:
        """Open a chat, or message a person."""
        return _chat_actions(app)


class MessengerCommands(_ActionsProvider):
    """Every action of the app, every slash command, and the chats."""

    def actions(self, app: Host) -> list[Action]:
        """App actions, slash commands (they prefill the composer), chats."""
        from .screens.groups import group_actions

        actions = [
            *_app_actions(app), *app.trust.actions(), *group_actions(app), *app.threads.actions()
        ]  # fmt: skip
        return [*actions, *_chat_actions(app)]

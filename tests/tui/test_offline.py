"""The app without a server: cache-first start, keys, completion, history, the new-messages
badge, key remapping. Deterministic: nothing listens on the server port."""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen

from messenger_client.cache import Cache
from messenger_client.tui.app import MessengerApp, TuiOptions, load_options
from messenger_client.tui.timeline import utc
from messenger_protocol import Chat, Message, MessageCreated, User
from tests.tui.conftest import click, client_config, until

SERVER = "http://127.0.0.1:9"
T0 = 1_767_225_600.0
SIZE = (100, 30)


def offline_app(root: Path, messages: int = 5, **options: object) -> MessengerApp:
    """An app logged in (saved token) with a cache of a few chats and ``messages`` in general."""
    config = client_config(root, SERVER)
    config.tokens.save(SERVER, "alice", "token")
    cache = Cache.for_account(SERVER, "alice", root=config.dirs.data / "cache")
    cache.replace_chats([
        Chat(id=1, kind="general", name="general"),
        Chat(id=2, kind="group", name="team", unread=2),
        Chat(id=3, kind="direct", name="@bob", peer="bob"),
    ])  # fmt: skip
    cache.replace_users([User("bob", online=True), User("bella"), User("carol")])
    cache.save_messages(
        Message(id=i, chat_id=1, author="bob", text=f"line {i}", created_at=T0 + i)
        for i in range(1, messages + 1)
    )
    cache.close()
    return MessengerApp(config, TuiOptions(tz=utc(), bell=False, **options))  # type: ignore[arg-type]


def live(app: MessengerApp, message: Message) -> None:
    """Feed a live event to the app, as the stream would."""
    app.session.apply(MessageCreated(message))


async def test_the_first_frame_of_a_saved_session_shows_the_cached_chat_whole(
    tmp_path: Path,
) -> None:
    """Started from a saved session, the main screen's first frame already shows the cached
    messages, the chat list and the footer's keys (no empty frames before them)."""
    app = offline_app(tmp_path)
    display, frames = app._display, list[list[str]]()

    def recording(screen: Screen[object], update: object) -> None:
        display(screen, update)  # type: ignore[arg-type]
        main = app.main
        if update is not None and main is not None and screen is main and not frames:
            frames.append([strip.text for strip in main._compositor.render_strips()])

    app._display = recording  # type: ignore[method-assign,assignment]
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: frames, "the main screen's first frame")
    first = "\n".join(frames[0])
    assert "line 5" in first and "# general" in first
    assert "team" in first and "bob" in first, "the chat list"
    assert "f1 Help" in frames[0][-1], "the footer"


async def test_keys_switch_chats_and_j_k_move_in_the_list(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        main = app.main
        assert main is not None and main.current_chat == 1
        await pilot.press("alt+down")
        assert main.current_chat == 2
        await pilot.press("alt+3")
        assert main.current_chat == 3
        await pilot.press("alt+up", "alt+up")
        assert main.current_chat == 1
        main.chat_list.focus()
        await pilot.pause()
        await pilot.press("G", "enter")
        assert main.current_chat == 3
        main.chat_list.focus()
        await pilot.pause()
        await pilot.press("g", "j", "enter")
        assert main.current_chat == 2
        assert main.composer.has_focus


async def test_remapped_key_from_the_keymap_file(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('[keys]\n"chats.next" = "ctrl+n"\n[notifications]\nbell = false\n')
    options = load_options(path)
    assert options.keymap == {"chats.next": "ctrl+n"} and not options.bell
    app = offline_app(tmp_path, keymap=options.keymap)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        assert app.main is not None
        await pilot.press("ctrl+n")
        assert app.main.current_chat == 2
        await pilot.press("alt+down")  # the old key no longer does it
        assert app.main.current_chat == 2


async def test_tab_completes_commands_and_logins_and_up_recalls_history(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        assert app.main is not None
        composer = app.main.composer
        await pilot.press(*"/priv", "tab")
        assert composer.text == "/private "
        await pilot.press(*"ca", "tab")
        assert composer.text == "/private carol "
        composer.clear()
        await pilot.press(*"one", "ctrl+j", *"two")
        assert composer.text == "one\ntwo"
        composer.clear()
        await pilot.press(*"hi @be", "tab")
        assert composer.text == "hi @bella "
        await pilot.press("enter")
        await pilot.press(*"second", "enter")
        assert composer.text == ""
        await pilot.press("up")
        assert composer.text == "second"
        await pilot.press("up")
        assert composer.text == "hi @bella"
        await pilot.press("down", "down")
        assert composer.text == ""


async def test_new_messages_badge_while_scrolled_up_and_pinned_otherwise(tmp_path: Path) -> None:
    app = offline_app(tmp_path, messages=300)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        main = app.main
        assert main is not None
        view = main.view
        assert view.pinned
        live(app, Message(id=1000, chat_id=1, author="bob", text="while pinned", created_at=T0))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y and not main.unseen_badge.display
        await pilot.press("pageup", "pageup")
        assert not view.pinned
        for n in range(3):
            live(app, Message(id=1001 + n, chat_id=1, author="bob", text="new", created_at=T0))
        await until(pilot, lambda: main.unseen_badge.display, "the badge")
        assert "3 new messages" in str(main.unseen_badge.render())
        await click(pilot, "#unseen")
        await until(pilot, lambda: view.pinned and not main.unseen_badge.display)


async def test_click_selects_a_message_and_scrolling_up_loads_older_from_the_cache(
    tmp_path: Path,
) -> None:
    app = offline_app(tmp_path, messages=1000)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        main, store = app.main, app.store
        assert main is not None and store is not None
        timeline = store.timeline(1)
        assert len(timeline) == 200  # one page from the cache, not all 1000
        await pilot.click("#messages", offset=(5, main.view.size.height - 1))
        assert main.view.selected == 1000
        main.view.focus()
        await pilot.press("g")  # to the top: older pages load on the way
        await until(pilot, lambda: len(timeline) >= 400, "an older page")
        await pilot.press("g")
        await until(pilot, lambda: len(timeline) >= 600, "another page")
        assert [m.id for m in timeline] == list(range(1000 - len(timeline) + 1, 1001))


async def test_alt_digits_as_most_terminals_send_them_switch_chats(tmp_path: Path) -> None:
    # ESC 2 reaches Textual as "™" (the macOS Option+2 character): it must switch, not type.
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        main = app.main
        assert main is not None
        # the numbers are the chat list's: the user sees them before pressing
        await until(pilot, lambda: len(main.chat_list.chat_ids) == 3, "the numbered list")
        await pilot.press("trade_mark_sign")
        assert main.current_chat == 2 and main.composer.text == ""


async def test_a_toast_for_private_messages_and_mentions_only_when_not_in_view(
    tmp_path: Path,
) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_)
        assert app.main is not None and app.store is not None

        def toasts() -> list[str]:
            return [f"{n.title}: {n.message}" for n in app._notifications]

        live(app, Message(id=50, chat_id=1, author="bob", text="plain chatter", created_at=T0))
        live(app, Message(id=51, chat_id=1, author="bob", text="hey @alice", created_at=T0))
        live(app, Message(id=52, chat_id=3, author="bob", text="psst", created_at=T0))
        live(app, Message(id=53, chat_id=2, author="bob", text="team news", created_at=T0))
        # General is in view: no toast for the mention there; the DM gets one (toasts
        # come in the order of the messages, so none for general comes after it).
        await until(pilot, lambda: toasts(), "the private message's toast")
        assert toasts() == ["bob · private: psst"]
        assert app.store.chats[3].unread == 1 and app.store.chats[2].unread == 3
        await pilot.press("alt+2")
        live(app, Message(id=54, chat_id=1, author="bob", text="@alice look", created_at=T0))
        await until(pilot, lambda: len(toasts()) == 2, "the mention's toast")
        assert toasts()[-1] == "bob · general: @alice look"

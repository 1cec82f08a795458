"""The command layer: parsing every command, usage errors, times, invite links, completion."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from messenger_client.commands import (
    COMMANDS,
    ParsedCommand,
    UsageError,
    complete,
    parse,
    parse_invite,
    parse_when,
)

NOW = 1_700_000_000.0


def ok(line: str) -> ParsedCommand:
    parsed = parse(line)
    assert isinstance(parsed, ParsedCommand), f"{line!r}: {parsed}"
    return parsed


def bad(line: str) -> str:
    parsed = parse(line)
    assert isinstance(parsed, UsageError), f"{line!r} parsed as {parsed}"
    text = str(parsed)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("line", "name", "args"),
    [
        ("/auth alice secret1", "auth", {"login": "alice", "password": "secret1"}),
        ("/login alice secret1", "login", {"login": "alice", "password": "secret1"}),
        ("/exit", "exit", {}),
        ("/logout", "logout", {}),
        ("/send hello  world ", "send", {"text": "hello  world"}),
        ("/private bob hi there", "private", {"login": "bob", "text": "hi there"}),
        ("/private @bob hi", "private", {"login": "bob", "text": "hi"}),
        ("/unread", "unread", {}),
        ("/status", "status", {}),
        ("/history", "history", {"target": None, "n": None}),
        ("/history 50", "history", {"target": None, "n": 50}),
        ("/history team", "history", {"target": "team", "n": None}),
        ("/history @bob 5", "history", {"target": "@bob", "n": 5}),
        ("/history general 7", "history", {"target": "general", "n": 7}),
        ("/users", "users", {}),
        ("/create team", "create", {"chat": "team", "encrypted": None}),
        ("/send_chat team hi all", "send_chat", {"chat": "team", "text": "hi all"}),
        ("/invite bob team", "invite", {"login": "bob", "chat": "team"}),
        ("/link team", "link", {"chat": "team"}),
        ("/join team", "join", {"chat": "team", "key": None}),
        ("/join team k3y", "join", {"chat": "team", "key": "k3y"}),
        ("/approve team bob", "approve", {"chat": "team", "login": "bob"}),
        ("/reject team bob", "reject", {"chat": "team", "login": "bob"}),
        ("/comment 42 +1", "comment", {"message_id": 42, "text": "+1"}),
        ("/comment #42 nice", "comment", {"message_id": 42, "text": "nice"}),
        ("/thread 42", "thread", {"message_id": 42}),
        ("/scheduled", "scheduled", {}),
        ("/cancel 3", "cancel", {"scheduled_id": 3}),
        ("/complain bob", "complain", {"login": "bob", "reason": None}),
        ("/complain bob spams the chat", "complain", {"login": "bob", "reason": "spams the chat"}),
        ("/file notes.txt", "file", {"path": "notes.txt", "target": None}),
        ('/file "my notes.txt" @bob', "file", {"path": "my notes.txt", "target": "@bob"}),
        ("/download abc123", "download", {"file_id": "abc123", "path": None}),
        ("/download abc123 /tmp/x.bin", "download", {"file_id": "abc123", "path": "/tmp/x.bin"}),
        ("/files", "files", {"target": None}),
        ("/files team", "files", {"target": "team"}),
        ("/contacts", "contacts", {}),
        ("/add_contact bob", "add_contact", {"login": "bob"}),
        ("/del_contact bob", "del_contact", {"login": "bob"}),
        ("/help", "help", {"command": None}),
        ("/help /send", "help", {"command": "send"}),
        ("/SEND loud", "send", {"text": "loud"}),
        ("/edit 42 fixed  it", "edit", {"message_id": 42, "text": "fixed  it"}),
        ("/delete #42", "delete", {"message_id": 42}),
        ("/reply 42 me too", "reply", {"message_id": 42, "text": "me too"}),
        ("/react 42 👍", "react", {"message_id": 42, "emoji": "👍"}),
        ("/unreact 42 👍", "unreact", {"message_id": 42, "emoji": "👍"}),
        ("/pin 42", "pin", {"message_id": 42}),
        ("/unpin 42", "unpin", {"message_id": 42}),
        ("/pins", "pins", {"target": None}),
        ("/pins team", "pins", {"target": "team"}),
    ],
)
def test_every_command_parses(line: str, name: str, args: dict[str, object]) -> None:
    parsed = ok(line)
    assert parsed.name == name
    assert parsed.args == args


def test_the_table_has_every_spec_command() -> None:
    spec = [
        "auth",
        "login",
        "exit",
        "logout",
        "send",
        "private",
        "unread",
        "status",
        "history",
        "users",
        "create",
        "send_chat",
        "invite",
        "link",
        "join",
        "approve",
        "reject",
        "comment",
        "thread",
        "schedule",
        "scheduled",
        "cancel",
        "complain",
        "report",
        "file",
        "download",
        "files",
        "contacts",
        "add_contact",
        "del_contact",
        "help",
        # issue 12
        "edit",
        "edits",
        "delete",
        "reply",
        "react",
        "unreact",
        "pin",
        "unpin",
        "pins",
        "search",
        "mentions",
        "mute",
        # issue 14
        "encryption",
        "devices",
        "verify",
        "confirm",
        "mismatch",
    ]
    assert set(COMMANDS) == set(spec)
    for command in COMMANDS.values():
        assert command.usage.startswith(f"/{command.name}")
        assert command.help


def test_plain_text_goes_to_the_current_chat() -> None:
    assert ok("hello there") == ParsedCommand("say", {"text": "hello there"}, "hello there")
    assert ok("//not a command").args == {"text": "/not a command"}


def test_schedule_parses_when_into_unix_time() -> None:
    before = time.time()
    parsed = ok("/schedule +10m @bob see you")
    assert parsed.args["target"] == "@bob"
    assert parsed.args["text"] == "see you"
    assert before + 600 <= parsed.args["when"] <= time.time() + 600


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("/nope", "unknown command /nope"),
        ("/private bob", "usage: /private <login> <text>"),
        ("/private", "usage: /private <login> <text>"),
        ("/private b@d hi", "not a valid login"),
        ("/auth alice", "usage: /auth <login> <password>"),
        ("/users everyone", "too many arguments"),
        ("/thread abc", "not a number"),
        ("/comment 42", "usage: /comment <message-id> <text>"),
        ("/cancel", "usage: /cancel <scheduled-id>"),
        ("/schedule tomorrowish general hi", "not a time"),
        ("/schedule +10m general", "usage: /schedule <when> <target> <text>"),
        ("/create bad/name", "not a valid chat name"),
        ("/history team 5 6", "too many arguments"),
        ("/join", "usage: /join <chat> [key|link]"),
        ("/join team http://host/join/other?key=k3y", "that link is for other, not team"),
        ("/join team http://host/join/team", "no invite key in"),
        ("", "empty line"),
        ("/edit 42", "usage: /edit <message-id> <text>"),
        ("/react 42", "usage: /react <message-id> <emoji>"),
        ("/react 42 👍 🎉", "too many arguments"),
        ("/delete x", "not a number"),
    ],
)
def test_wrong_lines_give_one_line_usage(line: str, fragment: str) -> None:
    assert fragment in bad(line)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("+30s", 30), ("+10m", 600), ("+2h", 7200), ("+1d", 86400), ("+1h30m", 5400), ("+1w", 604800)],
)
def test_relative_when(text: str, seconds: int) -> None:
    assert parse_when(text, now=NOW) == NOW + seconds


def test_iso_when_is_local_time() -> None:
    future = datetime.fromtimestamp(NOW) + timedelta(days=2)
    text = future.replace(microsecond=0).isoformat()
    assert parse_when(text, now=NOW) == future.replace(microsecond=0).timestamp()
    assert parse_when("2100-01-01T00:00:00+00:00", now=NOW) == 4102444800.0


def test_clock_when_is_the_next_such_time() -> None:
    now_dt = datetime.fromtimestamp(NOW)
    later = now_dt + timedelta(minutes=5)
    at = parse_when(later.strftime("%H:%M"), now=NOW)
    assert 0 < at - NOW <= 300
    earlier = now_dt - timedelta(minutes=5)
    at = parse_when(earlier.strftime("%H:%M"), now=NOW)
    assert 86400 - 360 < at - NOW <= 86400


@pytest.mark.parametrize("text", ["+0m", "+10", "10m", "yesterday", "25:00", "2001-01-01T00:00"])
def test_bad_when(text: str) -> None:
    with pytest.raises(ValueError):
        parse_when(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team", ("team", None)),
        ("http://127.0.0.1:8000/join/team/k3y", ("team", "k3y")),
        ("messenger://join/team/k3y", ("team", "k3y")),
        ("http://host/api/v1/chats/join?name=team&key=k3y", ("team", "k3y")),
        ("https://host/invite?chat=team&key=abc", ("team", "abc")),
    ],
)
def test_invite_links(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_invite(text) == expected


def test_join_accepts_a_full_link() -> None:
    assert ok("/join http://127.0.0.1:8000/join/team/k3y").args == {"chat": "team", "key": "k3y"}


@pytest.mark.parametrize(
    "line",
    [
        "/join team k3y",
        "/join team http://127.0.0.1:8000/join/team?key=k3y",
        "/join http://127.0.0.1:8000/join/team?key=k3y",
        "/join Team https://chat.example/join/team?key=k3y",
    ],
)
def test_join_takes_a_chat_with_a_key_or_a_link(line: str) -> None:
    """Issue 9 item 3: /join <chat> <link-or-key> and /join <link> all give chat and key."""
    args = ok(line).args
    assert args["chat"].lower() == "team" and args["key"] == "k3y"


def test_complete_commands() -> None:
    assert complete("/he", [], []) == ["/help "]
    assert complete("/sche", [], []) == ["/schedule ", "/scheduled"]
    assert "/exit" in complete("/", [], [])
    assert complete("/zzz", [], []) == []


def test_complete_arguments_by_kind() -> None:
    logins, chats = ["alice", "bob", "bert"], ["general", "team", "@bob"]
    assert complete("/private b", logins, chats) == ["/private bert", "/private bob"]
    assert complete("/send_chat t", logins, chats) == ["/send_chat team"]
    assert complete("/invite bob ", logins, chats) == ["/invite bob team"]
    assert complete("/history ", logins, chats) == [
        "/history @alice",
        "/history @bert",
        "/history @bob",
        "/history general",
        "/history team",
    ]
    assert complete("/help pri", logins, chats) == ["/help private"]
    assert complete("hi @al", logins, chats) == ["hi @alice"]
    assert complete("/send hello @be", logins, chats) == ["/send hello @bert"]
    assert complete("/users ", logins, chats) == []

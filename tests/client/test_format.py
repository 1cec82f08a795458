"""How plain mode prints outputs: text lines and --json objects."""

from __future__ import annotations

import json
import time
from datetime import datetime

from messenger_client.commands import (
    ErrorOut,
    ExitOut,
    InfoOut,
    MessageOut,
    SessionOut,
    StatusOut,
    TableOut,
)
from messenger_client.events import ConnectionState
from messenger_client.outputs import Out, UserRow, UsersOut, at
from messenger_client.plain import format_json, format_lines, message_line
from messenger_protocol import (
    Attachment,
    Chat,
    Connection,
    LoginRecord,
    Message,
    OwnedChat,
    Status,
    User,
)

TODAY_1203 = datetime.now().replace(hour=12, minute=3, second=0, microsecond=0).timestamp()


def msg(**kw: object) -> Message:
    fields: dict[str, object] = {
        "id": 42,
        "chat_id": 1,
        "author": "alice",
        "text": "hello",
        "created_at": TODAY_1203,
    }
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def test_message_line_shows_id_chat_time_author_text() -> None:
    assert format_lines(MessageOut(msg(), "general")) == ["[#42 general 12:03] alice: hello"]


def test_comment_line_shows_its_root() -> None:
    comment = msg(id=57, author="bob", text="+1", thread_root=42)
    assert message_line(comment, "general") == "[#57 general 12:03 ↳#42] bob: +1"


def test_old_messages_show_the_date() -> None:
    old = msg(created_at=datetime(2020, 5, 17, 9, 30).timestamp())
    assert message_line(old, "@bob") == "[#42 @bob 2020-05-17 09:30] alice: hello"


def test_attachments_and_comment_counts() -> None:
    file = Attachment(id="f1", name="a.png", size=2048, mime="image/png", sha256="0" * 64)
    line = message_line(msg(text="", attachments=[file], comment_count=2), "team")
    assert line == "[#42 team 12:03] alice: [file f1: a.png, 2.0 KiB, image/png] (2 comments)"


def test_error_line_has_the_code_and_says_when_to_retry_once() -> None:
    """Issue 9 item 12: "try again in 40 s" was printed twice (server text + client suffix)."""
    text = "at most 20 messages per 1 h in the general chat; try again in 2 min 4 s"
    out = ErrorOut("rate_limited", text, retry_after=124.0)
    assert format_lines(out) == [f"error rate_limited: {text}"]
    text = "you are banned from sending until 14:05 UTC (in 1 min)"
    banned = ErrorOut("banned", text, until=at(1.0))
    assert format_lines(banned) == [
        "error banned: you are banned from sending until 14:05 UTC (in 1 min)"
    ]


def test_info_table_and_connection_lines() -> None:
    assert format_lines(InfoOut("joined team")) == ["* joined team"]
    table = TableOut("users", ("login", "presence"), (("alice", "online"), ("bo", "offline")))
    assert format_lines(table) == ["users: 2", "  alice  online", "  bo     offline"]
    assert format_lines(TableOut("contacts", ("login",), ())) == ["contacts: none"]
    state = ConnectionState("reconnecting", in_seconds=1.25, attempt=2)
    assert format_lines(state) == ["* reconnecting in 2 s (attempt 2)"]


def test_status_lines() -> None:
    now = time.time()
    team = Chat(id=5, kind="group", name="team", owner="alice", members=3)
    status = Status(
        user=User(login="alice"),
        connections=[Connection("s1", "127.0.0.1:5000", "plain", now, current=True)],
        private_sent=4,
        private_received=2,
        owned_chats=[OwnedChat(chat=team)],
        member_chats=[Chat(id=1, kind="general", name="general"), team],
        logins=[LoginRecord(at=now, address="127.0.0.1")],
    )
    lines = format_lines(StatusOut(status))
    assert lines[0] == "status of alice"
    text = "\n".join(lines)
    assert "127.0.0.1:5000 plain" in text and "(this one)" in text
    assert "private messages: 4 sent, 2 received" in text
    assert "owns team (3 members; no invite links)" in text
    assert "member of: general, team" in text


def test_json_status_says_every_nested_time_in_unix_and_iso() -> None:
    """Issue 9 item 14: the times nested inside ``/status`` (connections, logins, chats,
    the ban and the session's expiry) are Unix seconds and ISO 8601 in ``--json``."""
    team = Chat(id=5, kind="group", name="team", owner="alice", last_message_at=TODAY_1203)
    status = Status(
        user=User(login="alice", last_seen=TODAY_1203),
        connections=[Connection("s1", "127.0.0.1:5000", "plain", TODAY_1203, current=True)],
        private_sent=0,
        private_received=0,
        owned_chats=[OwnedChat(chat=team)],
        member_chats=[team],
        logins=[LoginRecord(at=TODAY_1203, address="127.0.0.1")],
        banned_until=TODAY_1203 + 3600,
        session_expires_at=TODAY_1203 + 60,
    )
    obj = json.loads(format_json(StatusOut(status)))["status"]
    when = {"unix": TODAY_1203, "iso": at(TODAY_1203).iso}
    assert obj["connections"][0]["connected_at"] == when
    assert obj["logins"][0]["at"] == when
    assert obj["user"]["last_seen"] == when
    assert obj["owned_chats"][0]["chat"]["last_message_at"] == when
    assert obj["member_chats"][0]["last_message_at"] == when
    assert obj["banned_until"] == {"unix": TODAY_1203 + 3600, "iso": at(TODAY_1203 + 3600).iso}
    assert obj["session_expires_at"]["iso"] == at(TODAY_1203 + 60).iso
    assert obj["private_sent"] == 0 and obj["member_chats"][0]["id"] == 5  # not times: as is


def test_json_message_object() -> None:
    """Issue 9 item 14: a message line carries the message and its time as Unix and ISO."""
    line = format_json(MessageOut(msg(), "general", live=True))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["kind"] == "message" and obj["chat"] == "general" and obj["live"] is True
    message = obj["message"]
    assert message["id"] == 42 and message["text"] == "hello"
    assert message["chat_id"] == 1 and message["author"] == "alice"
    assert message["created_at"] == {"unix": TODAY_1203, "iso": at(TODAY_1203).iso}
    assert obj["created"] == {"unix": TODAY_1203, "iso": at(TODAY_1203).iso}
    assert datetime.fromisoformat(obj["created"]["iso"]).timestamp() == TODAY_1203


def test_json_other_kinds() -> None:
    """Issue 9 item 14: every output is one typed object; the token is never printed."""

    def obj(out: Out | ConnectionState) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(format_json(out))
        return parsed

    error = obj(ErrorOut("rate_limited", "slow down", retry_after=5.0))
    assert error == {
        "kind": "error",
        "code": "rate_limited",
        "text": "slow down",
        "retry_after": 5.0,
        "until": None,
    }
    assert obj(InfoOut("hi")) == {"kind": "info", "text": "hi"}
    row = UserRow("bob", True, None, False, at(0.0))
    table = obj(UsersOut("users", ("login",), (("bob",),), users=(row,)))
    assert table["kind"] == "users" and table["rows"] == [["bob"]]
    assert table["users"] == [
        {"login": "bob", "online": True, "last_seen": None, "is_admin": False,
         "banned_until": {"unix": 0.0, "iso": "1970-01-01T00:00:00+00:00"}}
    ]  # fmt: skip
    session = SessionOut(
        login="bob", session_id="s", registered=True, is_admin=False, last_event_id=9,
        history_on_connect=20,
    )  # fmt: skip
    as_json = obj(session)
    assert as_json["kind"] == "session" and as_json["last_event_id"] == 9
    assert "token" not in as_json
    assert obj(ExitOut()) == {"kind": "exit"}
    assert obj(ConnectionState("offline", attempt=1, error="x"))["state"] == "offline"

"""``--json``: every line a typed object whose fields are the ones docs/api.md lists
(issue 9 item 14). The table in the doc is parsed, so doc and code cannot drift."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from messenger_client import Client
from messenger_client.commands import COMMANDS
from messenger_client.outputs import ALL_OUTPUTS
from messenger_protocol import GENERAL_CHAT_ID
from tests.client.test_integration import PASSWORD
from tests.support.plain import Plain, StartPlain

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def documented_kinds() -> dict[str, list[str]]:
    """``kind`` -> top-level fields, from the table under "`--json` output" in docs/api.md."""
    section = GUIDE.split("### `--json` output", 1)[1]
    kinds: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        kind_cell, fields_cell = line.split("|")[1:3]
        kind = kind_cell.strip().strip("`")
        # "(Time)", "(Message)" and "[{…}]" describe a field's shape: not fields themselves.
        top = re.sub(r"\([^)]*\)|\[[^\]]*\]", "", fields_cell)
        kinds[kind] = re.findall(r"`([a-z_]+)`", top)
    return kinds


def test_the_doc_lists_every_output_kind_with_exactly_its_fields() -> None:
    """Issue 9 item 14: each output type's fields are the documented ones, in order."""
    doc = documented_kinds()
    code = {
        str(cls.__struct_config__.tag): [f.name for f in msgspec.structs.fields(cls)]
        for cls in ALL_OUTPUTS
    }
    assert doc == code


def _times_agree(value: Any) -> None:
    """Every Time object's ISO 8601 string says the same moment as its Unix seconds."""
    if isinstance(value, dict):
        if value.keys() == {"unix", "iso"}:
            assert abs(datetime.fromisoformat(value["iso"]).timestamp() - value["unix"]) < 1
        for item in value.values():
            _times_agree(item)
    elif isinstance(value, list):
        for item in value:
            _times_agree(item)


async def _obj(proc: Plain, kind: str) -> dict[str, Any]:
    """The next line of this kind, parsed."""
    while True:
        line = await proc.expect(f'"kind":"{kind}"')
        obj: dict[str, Any] = json.loads(line)
        if obj["kind"] == kind:
            return obj


async def test_every_console_command_once_in_json_mode(
    plain: StartPlain, clients: Callable[[], Client], tmp_path: Path
) -> None:
    """Issue 9 item 14: every console command once with ``--json``: each line is an object
    of a documented kind with exactly the documented fields; none is bare prose (``info``)."""
    bob, carol, dave = clients(), clients(), clients()
    await bob.register("bob", PASSWORD)
    await carol.register("carol", PASSWORD)
    await dave.register("dave", PASSWORD)
    bobs = await bob.send(GENERAL_CHAT_ID, "hi before alice came")
    note = tmp_path / "note.txt"
    note.write_text("a small note\n")
    proc = await plain("--json")
    ran: list[str] = []

    def run(line: str) -> None:
        ran.append(line.split()[0].removeprefix("/"))
        proc.send(line)

    run("/help")
    run("/help private")
    run(f"/auth alice {PASSWORD}")
    await _obj(proc, "session")
    run(f"/login alice {PASSWORD}")
    await _obj(proc, "session")
    run("/send hello")
    hello = (await _obj(proc, "message"))["message"]
    run("/private bob hi bob")
    await _obj(proc, "current_chat")
    run("/unread")
    await _obj(proc, "unread")
    run("/status")
    run("/history general 5")
    run("/users")
    run("/create team")
    await _obj(proc, "chat")
    run("/send_chat team hi team")
    run("/invite bob team")
    await _obj(proc, "member")
    run("/link team")
    link = await _obj(proc, "link")
    run("/join team")
    await _obj(proc, "join")
    await carol.join("team", link["key"])
    await dave.join("team", None)
    await _obj(proc, "join_request")
    await _obj(proc, "join_request")
    run("/approve team carol")
    run("/reject team dave")
    run(f"/reply {hello['id']} answering myself")
    reply = (await _obj(proc, "message"))["message"]
    assert reply["reply_to"]["id"] == hello["id"]
    run(f"/edit {reply['id']} answered")
    await _obj(proc, "message_edited")
    run(f"/edits {reply['id']}")
    edits = await _obj(proc, "edits")
    assert [v["text"] for v in edits["versions"]] == ["answering myself", "answered"]
    run(f"/react {hello['id']} 👍")
    await _obj(proc, "reactions")
    run(f"/unreact {hello['id']} 👍")
    await _obj(proc, "reactions")
    run(f"/delete {reply['id']}")
    await _obj(proc, "message_deleted")
    run("/create pinboard")
    await _obj(proc, "chat")
    run("/send_chat pinboard pin me")
    pinned = (await _obj(proc, "message"))["message"]
    run(f"/pin {pinned['id']}")
    await _obj(proc, "pin")
    run("/pins pinboard")
    await _obj(proc, "pins")
    run(f"/unpin {pinned['id']}")
    await _obj(proc, "pin")
    run(f"/comment {hello['id']} a comment")
    run(f"/thread {hello['id']}")
    run("/schedule +1h general later")
    scheduled = await _obj(proc, "scheduled")
    run("/scheduled")
    run(f"/cancel {scheduled['id']}")
    run("/complain bob spam")
    await _obj(proc, "complaint")
    run(f"/report {bobs.id} --with-text spam")
    assert "text goes with it" in (await _obj(proc, "complaint"))["text"]
    run(f"/file {note} general")
    while not (posted := (await _obj(proc, "message"))["message"])["attachments"]:
        pass
    run(f"/download {posted['attachments'][0]['id']} {tmp_path / 'copy.txt'}")
    await _obj(proc, "download")
    run("/files general")
    run("/contacts")
    run("/add_contact bob")
    run("/del_contact bob")
    await _obj(proc, "contact")
    await _obj(proc, "contact")
    run("/search hello")
    await _obj(proc, "search")
    run("/mentions")
    await _obj(proc, "mentions")
    run("/mute team mentions")
    await _obj(proc, "mute")
    run("/encryption @bob")  # bob's client has no device keys: in the clear
    assert (await _obj(proc, "encryption"))["encrypted"] is False
    run("/devices")
    mine = await _obj(proc, "devices")
    assert [d["current"] for d in mine["devices"]] == [True]
    run("/verify bob")  # bob's client has no device keys
    assert "no unverified device" in (await _obj(proc, "error"))["text"]
    run("/confirm")
    assert "no verification" in (await _obj(proc, "error"))["text"]
    run("/mismatch bob")
    assert "no verification" in (await _obj(proc, "error"))["text"]
    run("/logout")
    await _obj(proc, "logout")
    run("/exit")
    assert await proc.finish() == 0
    assert sorted(set(ran)) == sorted(COMMANDS)  # every command ran

    doc = documented_kinds()
    objects = [json.loads(line) for line in proc.lines]
    assert [o for o in objects if o.get("kind") not in doc] == []
    for obj in objects:
        assert list(obj) == ["kind", *doc[obj["kind"]]], obj
        _times_agree(obj)
    kinds = {o["kind"] for o in objects}
    assert "info" not in kinds  # no line carries its data in prose only
    expected = {
        "help", "session", "message", "current_chat", "unread", "status", "users", "chat",
        "member", "link", "join", "join_request", "scheduled", "scheduled_list", "complaint",
        "download", "files", "contacts", "contact", "logout", "exit", "message_edited",
        "reactions", "message_deleted", "pin", "pins", "edits", "search", "mentions", "mute",
        "devices",
    }  # fmt: skip
    assert expected <= kinds, expected - kinds
    assert "token" not in "".join(proc.lines)

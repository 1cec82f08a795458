"""Full-text search against the real server on both stores (issue 12 item 1), through the
client library: what a user may see and nothing else, the query syntax, paging, snippets,
and bad queries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from messenger_client import Client
from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    ErrorCode,
    MessageCreated,
    MessageDeleted,
    SearchResults,
    Span,
    limits,
)
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call

PASSWORD = "password1"
T0 = 1_764_633_600.0  # 2025-12-02 00:00 UTC


async def _users(clients: Callable[[], Client], *logins: str) -> list[Client]:
    users = []
    for login in logins:
        client = clients()
        await client.register(login, PASSWORD)
        users.append(client)
    return users


def _texts(results: SearchResults) -> list[str]:
    return [h.message.text for h in results.hits]


async def test_outsider_never_finds_what_they_may_not_see(clients: Callable[[], Client]) -> None:
    """Issue 12 item 1: planted words in a group, a private conversation, the general chat
    and an outsider's own group; each user finds exactly the messages of their chats."""
    alice, bob, carol = await _users(clients, "alice", "bob", "carol")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    direct = await alice.open_direct("bob")
    attic = await carol.create_chat("attic")
    await alice.send(team.id, "zebrafalcon in the team")
    await bob.send(direct.id, "zebrafalcon between us")
    await alice.send(GENERAL_CHAT_ID, "zebrafalcon for everyone")
    await carol.send(attic.id, "zebrafalcon in the attic")
    await bob.comment((await bob.send(team.id, "a root")).id, "zebrafalcon in a comment")

    found = await bob.search("zebrafalcon")
    assert _texts(found) == [
        "zebrafalcon in a comment",
        "zebrafalcon for everyone",
        "zebrafalcon between us",
        "zebrafalcon in the team",
    ]
    assert [h.chat_name for h in found.hits] == ["team", "general", "@alice", "team"]
    assert _texts(await carol.search("zebrafalcon")) == [
        "zebrafalcon in the attic",
        "zebrafalcon for everyone",
    ]
    # naming a chat of others tells nothing about it: the same answer as no such chat
    for name in ("team", "nonesuch"):
        with pytest.raises(ApiError) as refused:
            await carol.search(f"zebrafalcon in:{name}")
        assert refused.value.code == ErrorCode.INVALID
        assert refused.value.message == f"in: you are in no chat called {name!r}"
    assert _texts(await carol.search("zebrafalcon from:bob")) == []
    # a member who leaves no longer finds the group's messages
    await bob.remove_member(team.id, "bob")
    assert _texts(await bob.search("zebrafalcon")) == [
        "zebrafalcon for everyone",
        "zebrafalcon between us",
    ]


async def test_operators_phrases_paging_and_snippets(
    clients: Callable[[], Client], tmp_path: Path
) -> None:
    """Issue 12 item 1: words, "phrases", in:, from:, has:file; newest first, paged by
    next_before; snippets are typed spans with the words asked for marked."""
    alice, bob = await _users(clients, "alice", "bob")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    direct = await alice.open_direct("bob")
    first = await alice.send(team.id, "Release notes are ready, deploy at noon")
    await bob.send(team.id, "the notes of the release are late")
    await bob.send(direct.id, "Deploy the release notes tonight?")
    assert _texts(await alice.search('"release notes"')) == [
        "Deploy the release notes tonight?",
        "Release notes are ready, deploy at noon",
    ]
    assert _texts(await alice.search("release notes")) == [
        "Deploy the release notes tonight?",
        "the notes of the release are late",
        "Release notes are ready, deploy at noon",
    ]
    assert _texts(await alice.search("RELEASE from:@bob in:team")) == [
        "the notes of the release are late"
    ]
    assert _texts(await alice.search("release in:@bob")) == ["Deploy the release notes tonight?"]
    assert _texts(await bob.search("release in:@alice")) == ["Deploy the release notes tonight?"]
    [hit] = (await alice.search("deploy noon")).hits
    assert hit.message.id == first.id and hit.chat_name == "team"
    assert hit.snippet == [
        Span(text="Release notes are ready, "),
        Span(text="deploy", match=True),
        Span(text=" at "),
        Span(text="noon", match=True),
    ]
    # a long text: the snippet is cut around the first match, and says so
    long = "filler " * 60 + "needle " + "tail " * 60
    await alice.send(team.id, long)
    [cut] = (await alice.search("needle")).hits
    text = "".join(s.text for s in cut.snippet)
    assert text.startswith("…") and text.endswith("…") and len(text) <= limits.SNIPPET_CHARS + 2
    assert [s.text for s in cut.snippet if s.match] == ["needle"]
    # paging: newest first, two at a time, every hit once
    pages: list[str] = []
    before = None
    while True:
        page = await alice.search("release", before=before, limit=2)
        pages += _texts(page)
        if page.next_before is None:
            assert page.has_more is False
            break
        assert page.has_more is True and len(page.hits) == 2
        before = page.next_before
    assert pages == _texts(await alice.search("release"))
    # has:file: only messages that carry a file
    (tmp_path / "notes.txt").write_text("the notes\n")
    uploaded = await alice.upload(tmp_path / "notes.txt")
    with_file = await alice.send(team.id, "the release notes file", attachments=[uploaded.id])
    [only] = (await alice.search("release has:file")).hits
    assert only.message.id == with_file.id and only.message.attachments[0].name == "notes.txt"
    # operators alone are a search too
    assert _texts(await alice.search("from:bob in:team")) == ["the notes of the release are late"]


async def test_edits_and_deletions_reach_the_index(clients: Callable[[], Client]) -> None:
    """Issue 12 item 1: an edited message is found by its new words only, a deleted one not
    at all (not even by an operator-only search that needs no words)."""
    alice, bob = await _users(clients, "alice", "bob")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    typo = await alice.send(team.id, "the quarterly reprot")
    doomed = await alice.send(team.id, "quarterly secret plans")
    await alice.edit(typo.id, "the quarterly report")
    assert _texts(await bob.search("reprot")) == []
    assert _texts(await bob.search("report")) == ["the quarterly report"]
    await alice.delete_message(doomed.id)
    assert _texts(await bob.search("quarterly")) == ["the quarterly report"]
    assert _texts(await bob.search("secret")) == []
    assert [h.message.id for h in (await bob.search("from:alice in:team")).hits] == [typo.id]


async def test_the_last_word_matches_as_a_prefix(clients: Callable[[], Client]) -> None:
    """Issue 12: live search finds a word while it is half typed: the last word of the
    query is a prefix (from three characters on), the words before it and a quoted one
    match whole, and nothing typed is an FTS5 or tsquery operator; an outsider's planted
    word stays out of reach."""
    alice, bob, carol = await _users(clients, "alice", "bob", "carol")
    team = await alice.create_chat("team")
    await alice.invite(team.id, "bob")
    attic = await carol.create_chat("attic")
    await alice.send(team.id, "the noomnn release")
    await bob.send(team.id, "noon plans")
    await carol.send(attic.id, "noomnn in the attic")
    assert _texts(await bob.search("noo")) == ["noon plans", "the noomnn release"]
    assert _texts(await bob.search("noomn")) == ["the noomnn release"]
    assert _texts(await bob.search("noomnn")) == ["the noomnn release"]
    assert _texts(await bob.search("noomx")) == []  # one letter past the word: nothing
    assert _texts(await carol.search("noo")) == ["noomnn in the attic"]
    [hit] = (await bob.search("the noo")).hits
    assert [s.text for s in hit.snippet if s.match] == ["the", "noomnn"]
    # the words before the last match whole, so does a quoted last word
    assert _texts(await bob.search("noo plans")) == []
    assert _texts(await bob.search("noon pla")) == ["noon plans"]
    assert _texts(await bob.search('"noo"')) == []
    assert _texts(await bob.search("noo in:team")) == []
    # the shortest prefix, crossed by one: two letters match only themselves
    assert limits.SEARCH_PREFIX_MIN == 3
    assert _texts(await bob.search("no")) == []
    # operators of FTS5 and tsquery are words or nothing, never operators
    for query in ("noon OR zzz", "noon | zzz", "noon|!zzz", "noon') | ('zz", "noo* zzz*"):
        assert _texts(await bob.search(query)) == [], query
    assert _texts(await bob.search("plans NOT noo")) == []  # "not" is a word here
    assert _texts(await bob.search("pla* noo")) == []  # "pla" a whole word: no "*" inside


async def test_dates_before_and_after(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Issue 12 item 1: before: is before that day began, after: after that day ended (UTC)."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock, args=["--message-ttl", "0"])
    async with Client(srv.url) as alice:
        await alice.register("alice", PASSWORD)
        for day in range(3):  # 2025-12-02, -03, -04 at noon
            srv.set_time(T0 + day * 86400 + 43200)
            await alice.send(GENERAL_CHAT_ID, f"standup day {day}")
        assert _texts(await alice.search("standup before:2025-12-03")) == ["standup day 0"]
        assert _texts(await alice.search("standup after:2025-12-03")) == ["standup day 2"]
        assert _texts(await alice.search("standup after:2025-12-02 before:2025-12-04")) == [
            "standup day 1"
        ]


async def test_a_disappeared_message_is_not_found_by_those_it_disappeared_for(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Issue 12 item 1: after the message TTL a reader who had the message no longer finds
    it; one who was offline still does, until it disappears for them too."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    srv = server_factory(clock_file=clock)
    async with Client(srv.url) as alice, Client(srv.url) as bob:
        token = (await alice.register("alice", PASSWORD)).token
        await bob.register("bob", PASSWORD)  # no stream: offline when it is posted
        async with SseReader(srv.url, token) as events:
            sent = await alice.send(GENERAL_CHAT_ID, "ephemeralword here")
            _, created = await events.next()
            assert isinstance(created, MessageCreated)
            assert _texts(await alice.search("ephemeralword")) == ["ephemeralword here"]
            srv.set_time(T0 + limits.MESSAGE_TTL_SECONDS)
            _, gone = await events.next()
            assert gone == MessageDeleted(chat_id=GENERAL_CHAT_ID, message_id=sent.id)
        assert _texts(await alice.search("ephemeralword")) == []
        [late] = (await bob.search("ephemeralword")).hits  # bob gets it now
        assert late.message.expires_at == T0 + 2 * limits.MESSAGE_TTL_SECONDS
        srv.set_time(T0 + 2 * limits.MESSAGE_TTL_SECONDS)
        assert _texts(await bob.search("ephemeralword")) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", 'nothing to search for: give a word, a "phrase" or an operator like in:'),
        ("...", 'nothing to search for: give a word, a "phrase" or an operator like in:'),
        ('"open', 'a quote is not closed: write "a phrase" between two quotes'),
        ("form:bob", "unknown operator form: (there are in:, from:, before:, after:, has:;"
         " quote it to search for it)"),
        ("in:", "in: needs a value, as in in:general"),
        ("x in:general in:general", "in: is given twice"),
        ("before:2025-13-01", "before: takes a date like 2026-12-01, not '2025-13-01'"),
        ("after:yesterday", "after: takes a date like 2026-12-01, not 'yesterday'"),
        ("has:pic", "has: takes file (has:file), not 'pic'"),
        ("from:nobody", "from: there is no user 'nobody'"),
        ("after:2025-12-02 before:2025-12-03", "after: must be a day before before:"
         " (nothing lies between them)"),
    ],
)  # fmt: skip
async def test_bad_queries_are_a_typed_400_with_one_line(
    server: ServerProcess, query: str, message: str
) -> None:
    """Issue 12 item 1: each bad query is ``400 invalid`` with a one-line message."""
    token = (await _register(server, "alice"))["token"]
    resp = await call(server.url, "GET", "/api/v1/search", token, params={"q": query})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid" and error["message"] == message and "\n" not in message


async def test_query_limits_crossed_by_one(server: ServerProcess) -> None:
    """Issue 12 item 1: 200 characters, 16 words/operators, 50 hits a page; one more is 400."""
    token = (await _register(server, "alice"))["token"]

    async def status(**params: object) -> int:
        resp = await call(server.url, "GET", "/api/v1/search", token, params=params)
        return resp.status_code

    longest = "a" * limits.SEARCH_QUERY_MAX
    assert await status(q=longest) == 200
    assert await status(q=longest + "a") == 400
    most = " ".join(f"w{n}" for n in range(limits.SEARCH_TERMS_MAX))
    assert await status(q=most) == 200
    assert await status(q=most + " one") == 400
    assert await status(q="x", limit=limits.SEARCH_PAGE_MAX) == 200
    assert await status(q="x", limit=limits.SEARCH_PAGE_MAX + 1) == 400
    assert await status(q="x", limit=0) == 400


async def _register(server: ServerProcess, login: str) -> dict[str, Any]:
    resp = await call(
        server.url, "POST", "/api/v1/auth/register", json={"login": login, "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body

"""Contract: every query interface method gives the same results on SQLite and PostgreSQL.

One scenario calls every method of :class:`Tx` and of the per-domain query
interfaces through a recorder; it runs once on each store and the two records
must be equal, call by call. A method missing from the scenario fails the test.
"""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import psycopg
import pytest

from messenger_protocol import parse_search
from messenger_server.storage import EventHandle, SqliteStore, Store, Tx
from messenger_server.storage.admin import AdminQueries, admin_queries
from messenger_server.storage.annotations import AnnotationQueries, annotation_queries
from messenger_server.storage.files import FileQueries, FileRecord, file_queries
from messenger_server.storage.migrations import MIGRATIONS, postgres_script, sqlite_script
from messenger_server.storage.moderation import ModerationQueries, moderation_queries
from messenger_server.storage.notify import NotifyQueries, notify_queries
from messenger_server.storage.postgres import PostgresStore
from messenger_server.storage.retention import RetentionQueries, retention_queries
from messenger_server.storage.scheduler import ScheduledQueries, scheduled_queries
from messenger_server.storage.search import SearchFilter, SearchQueries, search_queries
from tests.support.postgres import PgDatabase

T = TypeVar("T")

INTERFACES: list[tuple[str, type[Any]]] = [
    ("tx", Tx),
    ("files", FileQueries),
    ("moderation", ModerationQueries),
    ("admin", AdminQueries),
    ("scheduled", ScheduledQueries),
    ("retention", RetentionQueries),
    ("annotations", AnnotationQueries),
    ("search", SearchQueries),
    ("notify", NotifyQueries),
]

Log = list[tuple[str, Any]]


class _Recorder:
    """Calls through to ``target`` and appends ``(prefix.method, result)`` to the log."""

    def __init__(self, target: object, prefix: str, log: Log) -> None:
        self._target = target
        self._prefix = prefix
        self._log = log

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = method(*args, **kwargs)
            except Exception as exc:
                self._log.append((f"{self._prefix}.{name}", f"raised {type(exc).__name__}"))
                raise
            shown = result
            if name == "database_bytes":  # engines lay data out differently: only "some"
                shown = result > 0
            if isinstance(result, EventHandle):  # numbered at commit: compare what it holds
                shown = (result.name, result.payload, result.chat_id, result.user_id)
            self._log.append((f"{self._prefix}.{name}", shown))
            return result

        return call


def _sealed(ciphertext: str) -> str:
    """The stored JSON of an :class:`~messenger_protocol.Encrypted` body."""
    key = "A" * 43
    return (
        f'{{"algorithm":"m.megolm.v1.aes-sha2","sender_key":"{key}","device_id":"D1",'
        f'"session_id":"{key}","ciphertext":"{ciphertext}"}}'
    )


def _rec(target: T, prefix: str, log: Log) -> T:
    recorder: T = _Recorder(target, prefix, log)  # type: ignore[assignment]
    return recorder


def _queries(tx: Tx, log: Log) -> dict[str, Any]:
    return {
        "tx": _rec(tx, "tx", log),
        "files": _rec(file_queries(tx), "files", log),
        "moderation": _rec(moderation_queries(tx), "moderation", log),
        "admin": _rec(admin_queries(tx), "admin", log),
        "scheduled": _rec(scheduled_queries(tx), "scheduled", log),
        "retention": _rec(retention_queries(tx), "retention", log),
        "annotations": _rec(annotation_queries(tx), "annotations", log),
        "search": _rec(search_queries(tx), "search", log),
        "notify": _rec(notify_queries(tx), "notify", log),
    }


def _setup(tx: Tx, log: Log) -> None:
    q = _queries(tx, log)
    t: Tx = q["tx"]
    alice = t.insert_user("Alice", "h1", 10.0, True)
    bob = t.insert_user("bob", "h2", 11.0, False)
    carol = t.insert_user("carol", "h3", 12.0, False)
    assert alice is not None and bob is not None and carol is not None
    t.insert_user("ALICE", "h4", 13.0, False)  # taken, whatever the case
    t.user_by_login("alice")
    t.user_by_login("nobody")
    t.user_by_id(bob)
    t.users()
    t.set_admin(bob, True)
    t.set_admin(bob, False)
    t.set_last_seen(carol, 20.0)
    t.insert_session("s1", b"\x01" * 32, alice, "laptop", 21.0, "127.0.0.1:1")
    t.insert_session("s2", b"\x02" * 32, alice, "phone", 22.0, "127.0.0.1:2")
    t.insert_session("s3", b"\x03" * 32, bob, "", 23.0, "127.0.0.1:3")
    t.session_by_token(b"\x01" * 32)
    t.touch_session("s1", "127.0.0.1:9", 24.0)
    t.live_sessions(alice)
    t.end_sessions(alice, ["s2", "nope"], 25.0)
    t.end_sessions(bob, None, 25.0)
    t.session_by_token(b"\x03" * 32)
    t.expire_session("s1", 26.0)
    t.expire_session("s1", 27.0)  # ended already
    t.session_by_token(b"\x01" * 32)  # expired: still found, as expired
    t.session_by_token(b"\x02" * 32)  # logged out: not found
    t.insert_login(alice, 26.0, "127.0.0.1", "laptop", True)
    t.insert_login(alice, 27.0, "127.0.0.1", "laptop", False)
    t.recent_logins(alice, 5)
    group = t.insert_chat("group", "Team", alice, None, 30.0)
    assert group is not None
    t.insert_chat("group", "team", bob, None, 31.0)  # taken, whatever the case
    direct = t.insert_chat("direct", "", None, f"{alice}:{bob}", 32.0)
    assert direct is not None
    t.insert_chat("direct", "", None, f"{alice}:{bob}", 33.0)
    t.group_by_name("TEAM")
    t.direct_chat(f"{alice}:{bob}")
    t.add_member(group, alice, 34.0)
    t.add_member(group, bob, 34.0)
    t.add_member(group, bob, 35.0)
    t.add_member(group, carol, 35.0)
    t.add_member(direct, alice, 34.0)
    t.add_member(direct, bob, 34.0)
    _counted(t, group, 3)
    t.remove_member(group, carol)
    t.remove_member(group, carol)
    t.member_ids(group)
    t.members(group)
    t.member_count(group)
    _counted(t, group, 2)
    _counted(t, direct, 2)
    _counted(t, 1, 3)  # the general chat: every user
    t.remove_member(1, carol)  # the paths that end a membership (leave, kick, ban) all remove
    _counted(t, 1, 2)
    t.add_member(1, carol, 36.0)

    def joined_then_failed(inner: Tx) -> None:
        inner.add_member(direct, carol, 36.0)
        inner.remove_member(group, bob)
        raise ValueError("undone")

    with contextlib.suppress(ValueError):
        t.nested(joined_then_failed)
    _counted(t, direct, 2)
    _counted(t, group, 2)
    t.chat_ids_of(alice)
    ids = []
    for n, author in enumerate([alice, bob, alice, bob, bob]):
        m = t.insert_message(group, author, f"m{n}", 40.0 + n, f"c{n}", None, None)
        assert m is not None
        ids.append(m.id)
    t.insert_message(group, bob, "a retry", 45.5, "c1", None, None)  # bob's c1: stored once
    t.insert_message(direct, alice, "hi bob", 46.0, None, None, None)
    t.insert_message(direct, bob, "hi alice", 47.0, None, None, None)
    comment = t.insert_message(group, bob, "a comment", 48.0, None, ids[0], None)
    assert comment is not None
    t.count_comment(ids[0], 48.0)
    t.insert_message(group, carol, "another", 49.0, None, ids[0], None)
    t.count_comment(ids[0], 49.0)
    t.message(ids[1])
    t.message(999_999)
    t.message_author_id(ids[1])
    t.message_by_client_id(alice, "c2")
    t.message_by_client_id(alice, "c1")
    t.history(group, None, None, 3)
    t.history(group, ids[3], None, 2)
    t.history(group, None, ids[0], 2)
    t.set_last_read(group, alice, ids[1])
    t.set_last_read(group, alice, ids[0])  # never back
    t.last_read(group, alice)
    t.last_read(group, carol)
    t.member_chat(group, alice)
    t.member_chat(group, carol)
    t.unread_count(group, alice, ids[0])
    t.unread_messages(group, alice, 0, 2)
    t.comments(ids[0])
    t.thread_participants(ids[0])
    t.set_thread_read(alice, ids[0], comment.id)
    t.set_thread_read(alice, ids[0], 0)  # never back
    t.thread_last_read(alice, ids[0])
    t.thread_last_read(carol, ids[0])
    t.thread_unread(ids[0], alice, 0)
    t.private_counts(alice)
    chat = t.chat(group)
    assert chat is not None
    t.chat_view(chat, bob)
    direct_chat = t.chat(direct)
    assert direct_chat is not None
    t.chat_view(direct_chat, alice)
    views = t.chat_views_of(alice)
    assert [(v.id, v.members) for v in views] == [(1, 3), (group, 2), (direct, 2)]
    assert t.chat_view(chat, alice).members == 2
    t.touch_chat(group, ids[-1], 50.0)
    t.add_contact(alice, bob, 51.0)
    t.add_contact(alice, bob, 52.0)
    t.add_contact(alice, carol, 52.0)
    t.contacts(alice)
    t.remove_contact(alice, carol)
    t.remove_contact(alice, carol)
    t.insert_link("k1", group, alice, 53.0, 100.0, 2)
    t.insert_link("k2", group, alice, 54.0, None, None)
    t.use_link("k1")
    t.revoke_link("k2", 55.0)
    t.revoke_link("k2", 56.0)
    t.link("k1")
    t.link("nope")
    t.links(group)
    t.upsert_join_request(group, carol, 57.0, True)
    t.upsert_join_request(group, carol, 58.0, False)  # stays keyed
    t.join_request(group, carol)
    t.join_requests(group)
    t.decide_join_request(group, carol, "approved")
    t.decide_join_request(group, carol, "rejected")  # settled already: none left
    t.message_count()
    t.database_bytes()
    t.try_job_lock("retention")  # nobody else holds it
    t.try_job_lock("retention")  # held already by this unit: still ours

    def seen_then_failed(inner: Tx) -> None:
        inner.set_last_seen(carol, 99.0)
        raise ValueError("undone")

    with contextlib.suppress(ValueError):
        t.nested(seen_then_failed)
    t.nested(lambda inner: inner.user_by_id(carol))  # last seen still 20.0: undone

    f: FileQueries = q["files"]
    for n, owner in enumerate([alice, alice, bob]):
        f.insert_file(
            FileRecord(f"f{n}", owner, f"sha{n % 2}", 100 + n, "text/plain", f"n{n}.txt",
                       None, None, 60.0 + n)
        )  # fmt: skip
    f.file("f1")
    f.file("nope")
    f.used_bytes(alice)
    f.owns_sha256(alice, "sha1")
    f.owns_sha256(bob, "sha1")
    f.link(ids[2], group, ["f0", "f1"])
    f.attachments([ids[2], ids[3]])
    f.readable("f0", bob)
    f.readable("f0", carol)
    f.chat_files(group, 10)
    f.collect(61.5)
    f.sha256_in_use("sha0")
    f.hold_for_upload("sha1", "up1", 62.0, 2.0)
    f.hold_for_deletion(["sha0", "sha1", "sha9"], "del1", 62.5, 1.0)
    f.hold_for_upload("sha9", "up2", 63.0, 3.0)  # being deleted: refused
    f.hold_for_upload("sha9", "up3", 63.0, 63.0)  # that deletion hold is stale
    f.release_hold("del1")
    f.release_hold("up1")
    f.hold_for_deletion(["sha1", "sha9"], "del2", 64.0, 63.5)

    mod: ModerationQueries = q["moderation"]
    mod.add_audit(70.0, "Alice", "ban", "bob", "spam")
    mod.audit(10)
    mod.newest_audit_id()
    mod.ban(bob, "bob", 71.0, 100.0, "spam", "Alice")
    mod.cli_ban_targets(0)
    mod.active_ban(bob, 72.0)
    mod.active_ban(carol, 72.0)
    mod.running_bans(72.0)
    mod.lift_bans(bob, "bob", 73.0, "Alice")
    mod.active_ban(bob, 74.0)
    for _ in range(3):
        mod.count_post(alice, 75.0, 75.0)  # 1, 2, 3
    mod.count_post(bob, 75.0, 75.0)
    mod.count_post(alice, 76.0, 76.0)  # a new window starts at 1
    mod.count_post(alice, 76.0, 76.0)
    mod.ban(bob, "bob", 76.0, 10.0, "spam", "Alice")
    mod.count_post(bob, 76.0, 77.0)  # banned while counted
    mod.count_post(bob, 76.0, 86.0)  # the ban ended at 86
    mod.rate_window(alice)
    mod.rate_window(carol)
    mod.has_counted_complaint(alice, bob)
    first = mod.insert_complaint(alice, bob, "rude", ids[1], 77.0, True, "you said it")
    mod.insert_complaint(alice, bob, "again", None, 78.0, False)
    mod.insert_complaint(carol, bob, "rude", None, 79.0, True)
    mod.has_counted_complaint(alice, bob)
    mod.distinct_complainers(bob)
    mod.complaint(first)
    mod.open_complaints()
    mod.dismiss_complaint(first, "Alice", 80.0)
    mod.dismiss_complaint(first, "Alice", 81.0)
    t.add_login_failure("10.0.0.1", "alice", 83.0, 0.0)
    t.add_login_failure("10.0.0.1", "bob", 84.0, 0.0)
    t.add_login_failure("10.0.0.2", "alice", 85.0, 0.0)
    t.login_failures("10.0.0.1", None, 0.0, 10)
    t.login_failures("10.0.0.1", "alice", 0.0, 10)
    t.clear_login_failures("10.0.0.1", "alice")
    t.add_login_failure("10.0.0.1", "carol", 86.0, 83.5)  # prunes the old ones
    t.login_failures("10.0.0.1", None, 0.0, 1)

    adm: AdminQueries = q["admin"]
    adm.admin_users(82.0)
    adm.user_count()
    adm.messages_since(44.0)
    adm.open_complaint_count()
    adm.banned_user_count(82.0)
    adm.pending_scheduled_count()

    sch: ScheduledQueries = q["scheduled"]
    s1 = sch.insert(alice, group, "later", 200.0, 90.0)
    s2 = sch.insert(alice, group, "much later", 300.0, 91.0)
    sch.insert(bob, group, "bob's", 150.0, 92.0)
    sch.pending_count(alice)
    sch.get(s1)
    sch.owned(s1, bob)
    sch.pending(alice)
    sch.next_due()
    sch.due(250.0)
    sch.claim_due(250.0, 1)  # the soonest only (bob's)
    sch.owned_for_update(s1, alice)
    sch.move(s1, "sent", message_id=ids[4])
    sch.move(s1, "cancelled")  # not from sent
    sch.move(s2, "cancelled")
    sch.finished(alice, 10)

    ann: AnnotationQueries = q["annotations"]
    reply = t.insert_message(group, bob, "an answer", 87.0, None, None, None)
    assert reply is not None
    ann.set_reply_to(reply.id, ids[2])
    t.message(reply.id)  # carries the quote of ids[2]
    ann.replies_to(ids[2])
    ann.replies_to(ids[0])  # none
    ann.edit_text(ids[2], "m2 edited", 88.0)
    ann.edit_text(ids[2], "m2 again", 89.0)
    ann.versions(ids[2])
    # an encrypted message's edit keeps the ciphertext it replaces (issue 14)
    sealed = reply.id  # a message of its own, to leave the texts above as they are
    ann.edit_text(sealed, "", 89.2, _sealed("AAAA"))
    ann.edit_text(sealed, "", 89.4, _sealed("BBBB"))
    ann.versions(sealed)
    t.message(sealed)
    ann.versions(ids[1])
    t.message(ids[2])
    ann.add_reaction(ids[2], alice, "👍", 90.0)
    ann.add_reaction(ids[2], alice, "👍", 90.5)  # once per user
    ann.add_reaction(ids[2], bob, "👍", 91.0)
    ann.add_reaction(ids[2], bob, "🎉", 92.0)
    ann.add_reaction(ids[1], carol, "x", 93.0)
    ann.reaction_kinds(ids[2])
    ann.reactions([ids[1], ids[2], ids[0]])
    ann.remove_reaction(ids[2], bob, "🎉")
    ann.remove_reaction(ids[2], bob, "🎉")
    ann.pin(group, ids[2], alice, 94.0)
    ann.pin(group, ids[2], bob, 95.0)
    ann.pin(group, ids[1], alice, 96.0)
    ann.pins(group)
    ann.unpin(group, ids[1])
    ann.unpin(group, ids[1])
    f.unlink(ids[2])
    f.unlink(ids[2])
    f.drop_unlinked(["f0", "f1", "f2", "nope"])
    ann.tombstone(ids[2], 97.0)
    t.message(ids[2])
    t.message(reply.id)  # the quote says deleted
    ann.versions(ids[2])
    ann.reactions([ids[2]])
    ann.pins(group)
    srch: SearchQueries = q["search"]
    srch.search(alice, SearchFilter(parse_search("hi")), None, 10)
    srch.search(bob, SearchFilter(parse_search('"hi alice"')), None, 10)
    srch.search(carol, SearchFilter(parse_search("hi")), None, 10)  # not in the direct chat
    srch.search(bob, SearchFilter(parse_search("m1 m3")), None, 10)  # both words: none
    srch.search(bob, SearchFilter(parse_search("M3")), ids[4], 10)
    srch.search(bob, SearchFilter(parse_search("comment"), chat_id=group, author_id=bob), None, 5)
    srch.search(alice, SearchFilter(parse_search("has:file")), None, 10)
    srch.search(alice, SearchFilter(parse_search("after:1970-01-01")), ids[3], 2)
    srch.search(bob, SearchFilter(parse_search("comm")), None, 10)  # a prefix
    srch.search(bob, SearchFilter(parse_search("hi al")), None, 10)  # too short: whole
    srch.search(bob, SearchFilter(parse_search("hi'|!ali")), None, 10)  # no operators

    ntf: NotifyQueries = q["notify"]
    ntf.add_mentions(ids[1], group, [alice, carol])
    ntf.add_mentions(ids[1], group, [alice])  # once
    ntf.add_mentions(ids[3], group, [alice])
    ntf.mentions(alice, None, 10)
    ntf.mentions(alice, ids[3], 10)
    ntf.mentions(carol, None, 10)  # left the group: not listed
    t.chat_view(chat, alice)  # mentions after the cursor count
    ntf.set_mute(group, alice, "mentions")
    ntf.set_mention_all(group, False)
    ntf.mention_all(group)
    ntf.mention_all(999)
    t.chat_view(chat, alice)
    ntf.set_hide_receipts(bob, True)
    ntf.hide_receipts(bob)
    ntf.seen_by(group, ids[0], alice)
    ntf.comment_seen_by(group, ids[0], comment.id, bob)  # alice hides nothing
    ntf.set_hide_receipts(bob, False)
    ntf.seen_by(group, ids[0], alice)
    ntf.comment_seen_by(group, ids[0], comment.id, alice)  # the author is left out
    ntf.add_mentions(comment.id, group, [alice])
    t.chat_view(chat, alice)  # the comment counts up to alice's thread cursor only
    for user in (alice, bob, carol):  # /chats: every chat's view in one query
        every = [t.chat(c) for c in t.chat_ids_of(user)]
        assert t.chat_views_of(user) == [t.chat_view(c, user) for c in every if c is not None]
    ntf.mentioned(ids[1])
    ntf.remove_mentions(ids[1], [carol, bob])
    ntf.mentioned(ids[1])

    ret: RetentionQueries = q["retention"]
    ret.add_expiring(ids[3], group, 43.0, 143.0)
    ret.add_expiring(ids[3], group, 43.0, 143.0)
    ret.add_expiring(ids[4], group, 44.0, 144.0)
    ret.last_message_id()
    ret.set_online(alice, "n1", True, ids[3])  # a stream from after m3: m4 reached her
    ret.set_online(alice, "n1", True, ids[3])  # one open span
    ret.deliveries(alice, [ids[3], ids[4], ids[0]])  # m3 waits for her
    ret.set_online(alice, "n1", False, ids[4])
    ret.set_online(bob, "n2", True, ids[4])
    ret.set_online(bob, "n2", False, ids[4])  # no message while online: forgotten
    ret.set_online(carol, "n1", True, 0)
    ret.end_spans("n1", ids[4])
    ret.recipients(ids[3])
    ret.recipients(ids[4])
    ret.recipients(ids[0])
    ret.mark_delivered(alice, [ids[3]], 100.0)
    ret.recipients(ids[3])
    ret.mark_delivered(alice, None, 101.0)  # nothing else waits for her
    ret.deliveries(alice, [ids[3], ids[4]])
    ret.gone_unread(alice, group, 0, 145.0)
    ret.gone_unread_in(alice, [(group, 0), (group + 999, 0)], 145.0)
    ret.gone_unread_in(alice, [(group, ids[3])], 145.0)
    ret.gone_unread_in(alice, [(group, 0)], 10.0)  # posted after the cutoff, none late
    ret.next_due(100.0, 1000.0)
    ret.too_old(1000.0, 10)
    ret.due_deliveries(300.0, 10)
    ret.expire_delivery(ids[3], alice)
    ret.gone_unread_in(alice, [(group, 0)], 10.0)  # her copy of m3 expired: gone
    ret.base_due(150.0, 10)
    ret.waiting_users(ids[4])
    ret.expire_base(ids[4])
    ret.gone_for_everyone(ids[4])
    ret.delete_message(ids[4])
    ret.prune_spans()

    # the event log
    for n in range(5):
        t.append_event("message", b'{"n":%d}' % n, group if n % 2 else None,
                       None if n % 2 else alice, 110.0 + n, ids[n] if n % 2 else None)  # fmt: skip


def _counted(tx: Tx, chat_id: int, members: int) -> None:
    """The stored member count of a chat is what its member rows say (not recorded: the
    scenario compares the stores; this compares each store with its own rows)."""
    target = getattr(tx, "_target", tx)
    assert target.member_count(chat_id) == len(target.member_ids(chat_id)) == members


def _events(tx: Tx, log: Log) -> None:
    q = _queries(tx, log)
    t: Tx = q["tx"]
    t.event_bounds()
    t.events_after(alice_id(tx), 0, 10, 10)
    t.events_after(alice_id(tx), 2, 4, 1)
    t.event_max()
    t.events_range(0, 10, 10)  # every audience, with chat_id / user_id
    t.events_range(1, 3, 1)
    ann: AnnotationQueries = q["annotations"]
    carried = sorted({r.message_id for r in ann.logged(list(range(1, 50)))})
    logged = ann.logged(carried)
    ann.relog([(e.seq, b'{"n":"again"}') for e in logged[:1]])
    ann.unlog([e.seq for e in logged[1:]])
    ann.logged(carried)
    t.prune_events(2)
    t.event_bounds()
    t.event_max()  # the newest ever, not the newest kept
    t.events_range(0, 10, 10)


def alice_id(tx: Tx) -> int:
    user = tx.user_by_login("alice")
    assert user is not None
    return user.id


async def _run(store: Store) -> Log:
    log: Log = []
    await store.open()
    try:
        seqs: list[int] = []

        def setup(tx: Tx) -> None:
            _setup(tx, log)

        def numbered(tx: Tx) -> None:
            handle = tx.append_event("x", b"{}", None, alice_id(tx), 120.0)
            tx.after_commit(lambda: seqs.append(handle.seq))

        await store.write(setup)
        await store.write(numbered)
        await store.write(lambda tx: _events(tx, log))
        await store.read(lambda tx: _events(tx, log))
        log.append(("seqs after commit", seqs))
    finally:
        await store.close()
    return log


def _methods(interface: type[Any]) -> set[str]:
    """Public methods of a protocol, those of the protocols it combines included."""
    return {
        name
        for cls in interface.__mro__
        if cls not in (object, Protocol, Generic)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


async def test_every_query_gives_the_same_results_on_sqlite_and_postgresql(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    on_sqlite = await _run(SqliteStore(tmp_path / "contract.db"))
    on_postgres = await _run(PostgresStore(pg_database.new_store()))
    called = {name for name, _ in on_sqlite}
    missing = [
        f"{prefix}.{name}"
        for prefix, interface in INTERFACES
        for name in sorted(_methods(interface))
        # unnumbered_events differs by design (its own test below covers both stores)
        if f"{prefix}.{name}" not in called and name not in ("after_commit", "unnumbered_events")
    ]
    assert not missing, f"the contract scenario does not call {missing}"
    assert len(on_sqlite) == len(on_postgres)
    for n, (lite, pg) in enumerate(zip(on_sqlite, on_postgres, strict=True)):
        assert lite == pg, f"call {n} ({lite[0]}) differs"
    assert on_sqlite[-1] == ("seqs after commit", [6])


@pytest.mark.parametrize("failing_first", [False, True])
async def test_a_failing_unit_rolls_back_only_itself(any_store: Store, failing_first: bool) -> None:
    """In a group of one loop turn, before or after a good unit (SQLite's first unit of a
    transaction has no savepoint: the transaction is rolled back and the next unit
    begins another)."""
    store = any_store
    await store.open()
    try:
        results = await _together(store, lambda tx: 1 / 0, failing_first)
        if failing_first:
            results.reverse()
        assert isinstance(results[0], int) and isinstance(results[1], ZeroDivisionError)
        assert [u.login for u in await store.read(lambda tx: tx.users())] == ["alice"]
        assert await store.read(lambda tx: tx.event_bounds()) == (1, 1)  # no hole
    finally:
        await store.close()


async def _together(
    store: Store, bad: Callable[[Tx], object], failing_first: bool = False
) -> list[object]:
    import asyncio

    def good(tx: Tx) -> int | None:
        user = tx.insert_user("alice", "h", 1.0, False)
        tx.append_event("x", b"{}", None, user, 1.0)
        return user

    def failing(tx: Tx) -> object:
        tx.insert_user("bob", "h", 1.0, False)
        tx.append_event("x", b"{}", 1, None, 1.0)
        return bad(tx)

    units = [failing, good] if failing_first else [good, failing]
    return list(await asyncio.gather(*(store.write(u) for u in units), return_exceptions=True))


async def test_writes_of_one_loop_turn_share_one_postgresql_commit_in_order(
    pg_database: PgDatabase,
) -> None:
    import asyncio

    store = PostgresStore(pg_database.new_store())
    await store.open()
    try:
        user = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert user is not None
        before = store.commits
        seqs: list[int] = []

        def post(tx: Tx, n: int) -> int:
            tx.insert_message(1, user, f"m{n}", 2.0, None, None, None)
            handle = tx.append_event("message", b"{}", 1, None, 2.0)
            tx.after_commit(lambda: seqs.append(handle.seq))
            return n

        results = await asyncio.gather(
            *(store.write(lambda tx, n=n: post(tx, n)) for n in range(20))  # type: ignore[misc]
        )
        assert results == list(range(20))
        assert store.commits == before + 1  # one COMMIT for the turn
        assert seqs == list(range(1, 21))  # numbered in submission order, callbacks in order
        page, _ = await store.read(lambda tx: tx.history(1, None, None, 50))
        assert [m.text for m in page] == [f"m{n}" for n in range(20)]
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """An unopened store of each kind."""
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "one.db")
    database: PgDatabase = request.getfixturevalue("pg_database")
    return PostgresStore(database.new_store())


async def test_an_edit_finds_the_events_of_its_commit_that_carry_the_message(
    any_store: Store,
) -> None:
    """Issue 12 item 7: a unit that rewrites the logged events of a message (an edit) finds
    those an earlier unit of the same commit appended (a pin in the same loop turn): rows of
    the log on SQLite, not yet on PostgreSQL (:meth:`unnumbered_events`); the rewrite is
    what is logged, so a resume never replays the text edited away."""
    import asyncio

    store = any_store
    await store.open()
    try:

        def post(tx: Tx) -> int:
            author = tx.insert_user("alice", "h", 1.0, False)
            assert author is not None
            message = tx.insert_message(1, author, "4711", 2.0, None, None, None)
            assert message is not None
            return message.id

        mid = await store.write(post)

        def pin(tx: Tx) -> None:
            tx.append_event("pin_changed", b'{"text":"4711"}', 1, None, 3.0, mid)

        def edit(tx: Tx) -> list[bytes]:
            logged = annotation_queries(tx).logged([mid])
            annotation_queries(tx).relog([(e.seq, b'{"text":"on paper"}') for e in logged])
            pending = [h for h in tx.unnumbered_events() if h.message_id == mid]
            for handle in pending:
                handle.payload = b'{"text":"on paper"}'
            return [e.payload for e in logged] + [h.payload for h in pending]

        _, found = await asyncio.gather(store.write(pin), store.write(edit))
        assert found in ([b'{"text":"4711"}'], [b'{"text":"on paper"}'])  # seen, either way
        rows = await store.read(lambda tx: tx.events_range(0, tx.event_max(), 10))
        assert [r.payload for r in rows if r.name == "pin_changed"] == [b'{"text":"on paper"}']
    finally:
        await store.close()


async def test_posting_is_idempotent_and_counted_inside_the_unit(any_store: Store) -> None:
    """Issue 10 item 5: the (author, client_id) insert stores one message, and the
    general-chat rate count is an upsert the unit's rollback takes back."""
    store = any_store
    await store.open()
    try:
        author = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert author is not None

        def post(tx: Tx, text: str) -> int | None:
            message = tx.insert_message(1, author, text, 2.0, "c1", None, None)
            return None if message is None else message.id

        first = await store.write(lambda tx: post(tx, "first"))
        assert first is not None
        assert await store.write(lambda tx: post(tx, "again")) is None
        page, _ = await store.read(lambda tx: tx.history(1, None, None, 10))
        assert [m.text for m in page] == ["first"]

        def count(tx: Tx, start: float) -> int:
            counted, banned = moderation_queries(tx).count_post(author, start, start)
            assert not banned
            return counted

        assert [await store.write(lambda tx: count(tx, 3600.0)) for _ in range(3)] == [1, 2, 3]

        def refused(tx: Tx) -> None:
            assert count(tx, 3600.0) == 4
            raise ValueError("over the limit")

        with pytest.raises(ValueError):
            await store.write(refused)
        assert await store.read(lambda tx: moderation_queries(tx).rate_window(author)) == (
            3600.0,
            3,
        )
        assert await store.write(lambda tx: count(tx, 7200.0)) == 1  # a new window
    finally:
        await store.close()


async def test_two_nodes_store_one_message_per_client_id_and_count_exactly(
    pg_database: PgDatabase,
) -> None:
    """Issue 10 item 5: two PostgreSQL stores on one database (two nodes) posting the same
    client_id at once store it once without an error, and their rate counts add up.

    (The two nodes' write groups take turns under the store's advisory write lock, so
    they cannot deadlock on keys inserted in different orders; should PostgreSQL still
    pick a group as a deadlock victim, the writer reruns the whole group.)"""
    import asyncio

    url = pg_database.new_store()
    nodes = [PostgresStore(url), PostgresStore(url)]
    for node in nodes:
        await node.open()
    try:
        author = await nodes[0].write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert author is not None

        def post(tx: Tx, n: int) -> tuple[int | None, int]:
            message = tx.insert_message(1, author, f"from {n}", 2.0, "same", None, None)
            counted, _ = moderation_queries(tx).count_post(author, 0.0, 2.0)
            return (None if message is None else message.id), counted

        results = await asyncio.gather(
            *(nodes[n % 2].write(lambda tx, n=n: post(tx, n)) for n in range(40))  # type: ignore[misc]
        )
        assert sorted(c for _, c in results) == list(range(1, 41))
        stored = [m for m, _ in results if m is not None]
        assert len(stored) == 1
        page, _ = await nodes[1].read(lambda tx: tx.history(1, None, None, 50))
        assert [m.id for m in page] == stored
    finally:
        for node in nodes:
            await node.close()


async def test_a_singleton_job_runs_on_one_node_at_a_time(pg_database: PgDatabase) -> None:
    """Issue 10 item 5: while node A's pass holds the retention lock (its transaction still
    open), node B's pass is refused it (another job is not, nor the same job of another
    store); once A's transaction ends, B gets it. (Node A is a bare connection here: the
    write groups of two stores on one schema take turns, so B's group could not run while
    A's is open.)"""
    import psycopg

    from messenger_server.storage.postgres import JOB_LOCK_SPACE

    url = pg_database.new_store()
    b = PostgresStore(url)
    other = PostgresStore(pg_database.new_store())  # another store's schema in the database
    for store in (b, other):
        await store.open()
    try:
        with psycopg.connect(url) as node_a:  # a transaction, as a write group is
            node_a.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema() || ':' || %s))",
                (JOB_LOCK_SPACE, "retention"),
            )
            assert await b.write(lambda tx: tx.try_job_lock("retention")) is False
            assert await b.write(lambda tx: tx.try_job_lock("files")) is True
            assert await other.write(lambda tx: tx.try_job_lock("retention")) is True
            node_a.rollback()  # A's pass ends
            assert await b.write(lambda tx: tx.try_job_lock("retention")) is True
    finally:
        for store in (b, other):
            await store.close()


async def test_a_slow_postgresql_write_or_read_is_logged_with_where_its_time_went(
    pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator (or a test that timed out) learns which unit was slow and whether the
    time went waiting for the writer, the write lock, the unit or the commit."""
    from messenger_server.loglimit import LogLimiter
    from messenger_server.storage import postgres

    monkeypatch.setattr(postgres, "SLOW", -1.0)  # every write group and read counts as slow
    monkeypatch.setattr(postgres, "_slow_log_limit", LogLimiter())
    store = PostgresStore(pg_database.new_store())
    await store.open()
    try:

        def add_alice(tx: Tx) -> int | None:
            return tx.insert_user("alice", "h", 1.0, False)

        def logins(tx: Tx) -> list[str]:
            return [u.login for u in tx.users()]

        with caplog.at_level("WARNING", logger=postgres.__name__):
            await store.write(add_alice)
            assert await store.read(logins) == ["alice"]
    finally:
        await store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("slow write group of 1 unit(s)") and ".add_alice)" in line
        and "for the write lock" in line and "to commit" in line
        and "0.00 s in earlier attempts" in line  # no deadlock rerun: none counted
        for line in lines
    ), lines  # fmt: skip
    assert any(line.startswith("slow read: ") and ".logins took" in line for line in lines), lines


async def test_the_member_count_step_counts_the_members_already_there(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    """A database from before the stored member count gets each chat's count from its rows."""
    counted = next(n for n, s in enumerate(MIGRATIONS) if "member_count" in s.common)
    before = MIGRATIONS[:counted]
    rows = (
        "INSERT INTO users (id, login, password_hash, created_at) VALUES (1, 'a', 'h', 1.0),"
        " (2, 'b', 'h', 1.0), (3, 'c', 'h', 1.0);"
        " INSERT INTO chats (id, kind, name, created_at) VALUES (2, 'group', 'g', 1.0),"
        " (3, 'group', 'empty', 1.0);"
        " INSERT INTO members (chat_id, user_id, joined_at) VALUES (1, 1, 1.0), (1, 2, 1.0),"
        " (1, 3, 1.0), (2, 1, 1.0), (2, 3, 1.0);"
    )
    lite = SqliteStore(tmp_path / "old.db")
    with contextlib.closing(sqlite3.connect(lite.path, isolation_level=None)) as conn:
        for step in before:
            conn.executescript(f"BEGIN; {sqlite_script(step)} COMMIT;")
        conn.executescript(f"BEGIN; {rows} PRAGMA user_version = {len(before)}; COMMIT;")
    url = pg_database.new_store()
    with psycopg.connect(url) as pg:
        pg.execute(
            "CREATE TABLE schema_version (id smallint PRIMARY KEY CHECK (id = 1),"
            " version integer NOT NULL)"
        )
        for step in before:
            pg.execute(postgres_script(step).encode())
        pg.execute(rows.encode())
        pg.execute("INSERT INTO schema_version (id, version) VALUES (1, %s)", (len(before),))
    for store in (lite, PostgresStore(url)):
        await store.open()
        try:
            counts = await store.read(lambda tx: [tx.member_count(c) for c in (1, 2, 3)])
            assert counts == [3, 2, 0], store
        finally:
            await store.close()

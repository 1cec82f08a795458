"""Accounts: register, log in, tokens, several devices, users, contacts (F1, F14, F17)."""

from __future__ import annotations

from typing import Any

import pytest

from messenger_protocol import AddContact, ApiError, Credentials, ErrorCode, SessionEnded
from messenger_server.services import token_hash

from .conftest import PASSWORD, Harness, next_turn


async def test_register_logs_in_and_stores_only_a_hash(harness: Harness) -> None:
    session = await harness.app.accounts.register(
        Credentials(login="alice", password=PASSWORD, device="laptop"), "10.0.0.1"
    )
    assert session.user.login == "alice"
    assert len(session.token) >= 40
    actor = await harness.app.accounts.authenticate(session.token, "10.0.0.1:1234")
    assert actor.login == "alice" and actor.session_id == session.session_id
    conn = harness.app.store.tx.conn  # type: ignore[attr-defined]
    stored = conn.execute("SELECT token_sha256 FROM sessions").fetchall()
    assert stored == [(token_hash(session.token),)]
    hashed = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed


async def test_duplicate_login_is_a_conflict_case_insensitively(harness: Harness) -> None:
    await harness.user("alice")
    for login in ("alice", "ALICE"):
        with pytest.raises(ApiError) as err:
            await harness.app.accounts.register(Credentials(login=login, password="x" * 8), "ip")
        assert err.value.code is ErrorCode.CONFLICT


async def test_wrong_password_and_unknown_login_look_the_same(harness: Harness) -> None:
    await harness.user("alice")
    errors = []
    for login, password in (("alice", "wrong-password"), ("nobody", PASSWORD)):
        with pytest.raises(ApiError) as err:
            await harness.app.accounts.login(Credentials(login=login, password=password), "ip")
        errors.append(err.value)
    assert [e.code for e in errors] == [ErrorCode.UNAUTHORIZED] * 2
    assert errors[0].message == errors[1].message
    session = await harness.app.accounts.login(Credentials(login="alice", password=PASSWORD), "ip")
    assert session.user.login == "alice"


async def test_bad_token_is_unauthorized(harness: Harness) -> None:
    with pytest.raises(ApiError) as err:
        await harness.app.accounts.authenticate("not-a-token", "ip:1")
    assert err.value.code is ErrorCode.UNAUTHORIZED


async def test_logout_ends_only_that_session_and_tells_its_streams(harness: Harness) -> None:
    laptop = await harness.user("alice")
    phone = await harness.device("alice")
    laptop_stream = harness.stream(laptop)
    phone_stream = harness.stream(phone, "127.0.0.1:40001")
    await harness.app.accounts.logout(laptop)
    await next_turn()
    assert laptop_stream.closed and not phone_stream.closed
    ended = [e for _, e in phone_stream.take() if isinstance(e, SessionEnded)]
    assert [e.session_id for e in ended] == [laptop.session_id]
    # the phone keeps working; only it is listed as a connection now
    status = await harness.app.status.status(phone)
    assert {c.session_id for c in status.connections} == {phone.session_id}


async def test_logout_all_ends_every_session(harness: Harness) -> None:
    laptop = await harness.user("alice")
    phone = await harness.device("alice")
    sink = harness.stream(phone)
    await harness.app.accounts.logout_all(laptop)
    assert sink.closed
    rows = harness.app.store.tx.live_sessions(laptop.user_id)  # type: ignore[attr-defined]
    assert rows == []


async def test_tokens_survive_a_cache_miss(harness: Harness) -> None:
    session = await harness.app.accounts.register(
        Credentials(login="alice", password=PASSWORD), "ip"
    )
    harness.app.accounts._actors.clear()
    actor = await harness.app.accounts.authenticate(session.token, "ip:2")
    assert actor.login == "alice"
    await harness.app.accounts.logout(actor)
    harness.app.accounts._actors.clear()
    with pytest.raises(ApiError):
        await harness.app.accounts.authenticate(session.token, "ip:2")


async def test_users_with_presence(harness: Harness) -> None:
    alice = await harness.user("alice")
    await harness.user("bob")
    users = (await harness.app.accounts.users()).users
    assert [(u.login, u.online) for u in users] == [("alice", False), ("bob", False)]
    harness.stream(alice)
    assert (await harness.app.accounts.user("alice")).online is True
    with pytest.raises(ApiError) as err:
        await harness.app.accounts.user("ghost")
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_contacts_add_list_remove(harness: Harness) -> None:
    alice = await harness.user("alice")
    await harness.user("bob")
    await harness.user("carol")
    contacts = harness.app.contacts
    await contacts.add(alice, AddContact(login="carol"))
    await contacts.add(alice, AddContact(login="bob"))
    await contacts.add(alice, AddContact(login="bob"))  # twice is fine
    assert [c.login for c in (await contacts.contacts(alice)).contacts] == ["bob", "carol"]
    await contacts.remove(alice, "bob")
    assert [c.login for c in (await contacts.contacts(alice)).contacts] == ["carol"]
    for call in (contacts.add(alice, AddContact(login="ghost")), contacts.remove(alice, "bob")):
        with pytest.raises(ApiError) as err:
            await call
        assert err.value.code is ErrorCode.NOT_FOUND


async def test_requests_over_new_connections_do_not_rewrite_the_session(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: a session whose requests alternate between connections (new ports of the
    address it logged in from) is not written again; a new address is, without a port."""
    session = await harness.app.accounts.register(
        Credentials(login="alice", password=PASSWORD), "10.0.0.1"
    )
    store = harness.app.accounts.store
    writes: list[object] = []
    real_write = store.write

    async def counting_write(work: Any) -> Any:
        writes.append(work)
        return await real_write(work)

    monkeypatch.setattr(store, "write", counting_write)
    for port in (5000, 5001, 5000, 5002):
        await harness.app.accounts.authenticate(session.token, f"10.0.0.1:{port}")
    assert writes == []
    for port in (5000, 5001):
        await harness.app.accounts.authenticate(session.token, f"10.0.0.2:{port}")
    assert len(writes) == 1
    conn = harness.app.store.tx.conn  # type: ignore[attr-defined]
    assert conn.execute("SELECT last_address FROM sessions").fetchall() == [("10.0.0.2",)]

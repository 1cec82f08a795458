"""Read receipts' member limit, mention parsing and the typing window at the service level
(issue 12 items 2, 4, 5)."""

from __future__ import annotations

import pytest

from messenger_protocol import (
    ApiError,
    CreateChat,
    ErrorCode,
    InviteUser,
    MarkRead,
    SendMessage,
    limits,
)
from messenger_server.services.notify import MAX_MENTIONS, mentioned_logins

from .conftest import Harness


async def test_seen_by_is_given_up_to_50_members_and_refused_at_51(harness: Harness) -> None:
    """Issue 12 item 5: "seen by" for a chat of SEEN_BY_MAX_MEMBERS members; one more is
    ``400 invalid`` with the limit."""
    owner = await harness.user("owner")
    chats, messages, notify = harness.app.chats, harness.app.messages, harness.app.services.notify
    team = await chats.create(owner, CreateChat(name="team"))
    readers = [await harness.user(f"u{n}") for n in range(limits.SEEN_BY_MAX_MEMBERS - 1)]
    for reader in readers:
        await chats.invite(owner, team.id, InviteUser(login=reader.login))
    posted = await messages.post(owner, team.id, SendMessage(text="roll call"))
    await messages.mark_read(readers[0], team.id, MarkRead(up_to=posted.id))
    seen = await notify.seen_by(owner, posted.id)
    assert (seen.members, seen.seen_by) == (limits.SEEN_BY_MAX_MEMBERS, ["u0"])
    late = await harness.user("late")
    await chats.invite(owner, team.id, InviteUser(login=late.login))
    with pytest.raises(ApiError) as refused:
        await notify.seen_by(owner, posted.id)
    assert refused.value.code == ErrorCode.INVALID
    assert refused.value.limit == limits.SEEN_BY_MAX_MEMBERS


def test_mentions_are_words_that_start_with_at() -> None:
    """Issue 12 item 2: ``@login`` after a space or at the start; an e-mail address or a
    doubled ``@@`` is no mention; each login once, lower case; at most MAX_MENTIONS."""
    assert mentioned_logins("ping @carol, then @bob.") == ["carol", "bob."]
    assert mentioned_logins("@Bob hi @carol and @bob again") == ["bob", "carol"]
    assert mentioned_logins("mail x@dave.org or @@eve") == []
    assert mentioned_logins("(@all) please") == ["all"]
    many = " ".join(f"@u{n}" for n in range(MAX_MENTIONS + 1))
    assert len(mentioned_logins(many)) == MAX_MENTIONS

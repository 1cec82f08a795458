"""One client error root (issue 12, "the TUI's shape first"): ``except MessengerError``
catches both ways a call can fail."""

from __future__ import annotations

import pytest

from messenger_client import ApiError, Client, MessengerError, ServerUnavailable
from messenger_protocol import ErrorCode
from tests.support.server import ServerProcess, free_port


async def test_a_refusal_and_no_answer_are_both_messenger_errors(server: ServerProcess) -> None:
    """A wrong password (the server says no) and a server nobody runs (no answer) are
    both caught by ``except MessengerError``, and stay told apart by their types."""
    client = Client(server.url)
    try:
        with pytest.raises(MessengerError) as refused:
            await client.login("nobody", "wrong-password")
        assert isinstance(refused.value, ApiError)
        assert refused.value.code == ErrorCode.UNAUTHORIZED
    finally:
        await client.close()
    gone = Client(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(MessengerError) as unanswered:
            await gone.login("alice", "secret12")
        assert isinstance(unanswered.value, ServerUnavailable)
        assert not isinstance(unanswered.value, ApiError)
        assert isinstance(unanswered.value, ConnectionError), "older handlers still catch it"
    finally:
        await gone.close()

"""messenger client: the async library that bots, scripts, tests and the UIs use.

For example::

    from messenger_client import Client

    async with Client("http://127.0.0.1:8000") as client:
        session = await client.login("alice", "secret1")
        await client.send(GENERAL_CHAT_ID, "hello")
        async for item in client.events(session.last_event_id):
            ...
"""

import sys

from messenger_protocol import ApiError, MessengerError

# ``import httpx`` also loads httpx's own command-line tool when click, rich and pygments
# are all installed (in a development environment; a user's install has no click): the
# client never runs it, and it was half of a plain client's start-up. A missing module
# makes httpx fall back to a stub, as in a user's install.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from .api import DEFAULT_SERVER, Client, Progress, ServerUnavailable, new_client_id  # noqa: E402
from .events import ConnectionState, EventStream, StreamItem  # noqa: E402

__all__ = [
    "DEFAULT_SERVER",
    "ApiError",
    "Client",
    "ConnectionState",
    "EventStream",
    "MessengerError",
    "Progress",
    "ServerUnavailable",
    "StreamItem",
    "new_client_id",
]

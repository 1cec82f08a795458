"""Services: the domain, with no HTTP in it.

Methods take the acting user (:class:`Actor`) and protocol models, return protocol
models, and raise :class:`~messenger_protocol.ApiError`. Each service gets its
collaborators as constructor arguments (``messenger_server.app.build_services`` is
the one place that wires them): :class:`MessageService` takes the send checks
(moderation, rate limits), the file service (attachments) and :class:`Visibility`
(disappearing messages); :class:`AccountService` takes the login throttle.
:meth:`MessageService.post` is the one way to post (the scheduler uses it too).
"""

from .accounts import AccountService, token_hash
from .actor import Actor, forbidden, require_member, require_owner
from .chats import ChatService
from .contacts import ContactService
from .events import EventService, StreamInfo
from .messages import Attachments, Draft, MessageService, SendCheck
from .retention import Visibility
from .status import StatusService
from .throttle import LoginThrottle

__all__ = [
    "AccountService",
    "Actor",
    "Attachments",
    "ChatService",
    "ContactService",
    "Draft",
    "EventService",
    "LoginThrottle",
    "MessageService",
    "SendCheck",
    "StatusService",
    "StreamInfo",
    "Visibility",
    "forbidden",
    "require_member",
    "require_owner",
    "token_hash",
]

"""HTTP/1.1 transport on an asyncio protocol (llhttp parses); knows nothing of the API.

The application is one :data:`Handler`: a :class:`Request` in, a
:class:`Response` or :class:`StreamResponse` out. An
:class:`~messenger_protocol.ApiError` raised by the handler becomes a typed JSON
error; anything else becomes ``500 internal`` and is logged.
"""

from ._messages import (
    Body,
    Handler,
    Headers,
    Request,
    Response,
    ResponseStream,
    StreamResponse,
)
from ._proxy import ProxyHeaderError, ProxySource, TrustedProxies, parse_proxy_v2
from ._server import HttpLimits, HttpServer, LogLimiter
from ._wire import BadRequest, RequestHead, ServerParser, Signal

__all__ = [
    "BadRequest",
    "Body",
    "Handler",
    "Headers",
    "HttpLimits",
    "HttpServer",
    "LogLimiter",
    "ProxyHeaderError",
    "ProxySource",
    "Request",
    "RequestHead",
    "Response",
    "ResponseStream",
    "ServerParser",
    "Signal",
    "StreamResponse",
    "TrustedProxies",
    "parse_proxy_v2",
]

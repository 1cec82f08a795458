"""The client's real address behind a load balancer: PROXY protocol v2 and X-Forwarded-For.

Both are believed only from a peer in the trusted networks (``--trusted-proxies``):
anyone else could claim any address. The PROXY protocol header (HAProxy's
``send-proxy-v2``, https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt) comes
first on a connection, before any HTTP; ``X-Forwarded-For`` is read per request and
walked from the right, past trusted proxies, to the first address that is not one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "PROXY_V2_SIGNATURE",
    "ProxyHeaderError",
    "ProxySource",
    "TrustedProxies",
    "parse_proxy_v2",
    "proxy_v2_length",
]

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
"""The 12 bytes every v2 header starts with."""
PROXY_V2_MAX_BODY = 4096
"""Longest address block + TLVs accepted (HAProxy's own headers stay far below)."""

_TCP4, _TCP6 = 0x11, 0x21
_UNSPEC, _UNIX_STREAM, _UNIX_DGRAM = 0x00, 0x31, 0x32

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyHeaderError(ValueError):
    """A connection from a trusted proxy did not start with a valid v2 header."""


@dataclass(frozen=True, slots=True)
class ProxySource:
    """The client's address and port as the proxy saw them."""

    ip: str
    port: int


def proxy_v2_length(head: bytes) -> int:
    """The length of the rest of the header, from its first 16 bytes (raises if bad)."""
    if len(head) < 16 or not head.startswith(PROXY_V2_SIGNATURE):
        if head.startswith(b"PROXY "):
            raise ProxyHeaderError("PROXY protocol v1 is not supported (send v2)")
        raise ProxyHeaderError("the connection did not start with a PROXY protocol v2 header")
    version, command = head[12] >> 4, head[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY protocol version {version} is not supported (send v2)")
    if command not in (0, 1):
        raise ProxyHeaderError(f"unknown PROXY protocol command {command}")
    length = int.from_bytes(head[14:16], "big")
    if length > PROXY_V2_MAX_BODY:
        raise ProxyHeaderError(f"PROXY protocol header of {length} bytes is too long")
    return length


def parse_proxy_v2(head: bytes, body: bytes) -> ProxySource | None:
    """The client address of a v2 header (``head``: 16 bytes, ``body``: the rest).

    None when the header names no client: a ``LOCAL`` connection (the proxy's own health
    check) or an address family without one (UNSPEC, a Unix socket); the connection's
    own address stands then. TLVs after the addresses are passed over.
    """
    if len(body) != proxy_v2_length(head):
        raise ProxyHeaderError("PROXY protocol header cut short")
    if head[12] & 0x0F == 0:  # LOCAL
        return None
    family = head[13]
    if family == _TCP4:
        if len(body) < 12:
            raise ProxyHeaderError("PROXY protocol TCP/IPv4 addresses cut short")
        ip = str(ipaddress.IPv4Address(body[0:4]))
        return ProxySource(ip, int.from_bytes(body[8:10], "big"))
    if family == _TCP6:
        if len(body) < 36:
            raise ProxyHeaderError("PROXY protocol TCP/IPv6 addresses cut short")
        ip6 = ipaddress.IPv6Address(body[0:16])
        ip = str(ip6.ipv4_mapped or ip6)
        return ProxySource(ip, int.from_bytes(body[32:34], "big"))
    if family in (_UNSPEC, _UNIX_STREAM, _UNIX_DGRAM):
        return None
    raise ProxyHeaderError(f"PROXY protocol address family 0x{family:02x} is not TCP")


class TrustedProxies:
    """The networks whose PROXY headers and X-Forwarded-For are believed."""

    __slots__ = ("_networks",)

    def __init__(self, networks: Iterable[str | Network] = ()) -> None:
        self._networks = tuple(
            n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False) for n in networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, ip: object) -> bool:
        if not self._networks or not isinstance(ip, str):
            return False
        try:
            address = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def client_ip(self, peer_ip: str, forwarded_for: str | None) -> str | None:
        """The client's address by ``X-Forwarded-For`` when ``peer_ip`` is a trusted proxy:
        the rightmost address that is not one (None: the header tells nothing to believe)."""
        if forwarded_for is None or peer_ip not in self:
            return None
        found: str | None = None
        for item in reversed(forwarded_for.split(",")):
            candidate = item.strip()
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                return found  # garbage: believe nothing left of it
            found = candidate
            if candidate not in self:
                return candidate
        return found

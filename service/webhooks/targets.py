"""Where a webhook may be sent: public http(s) addresses only, checked when connecting.

An endpoint URL is checked twice. Before each attempt (`check_target`): scheme http or
https, and a host written as an IP address must be public. When connecting (`resolve`, for
every new connection of `service.webhooks.sender`): the host name is resolved anew and the
connection refused when any address it gets is not public, so a name that resolves to a
public address at configuration time and to 127.0.0.1 later (DNS rebinding) is refused at
the moment it matters; the sender connects to the addresses checked, caches no DNS answer
and follows no redirect. `allow_private_targets` lifts the address rule (tests, internal
receivers), never the scheme rule.

Not public: loopback, private (RFC 1918, fc00::/7), link-local (which holds the cloud
metadata address 169.254.169.254), shared (100.64/10), multicast, reserved, unspecified,
documentation ranges, IPv4-mapped IPv6 forms of those, and fd00:ec2::254 (AWS metadata).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254")})


class TargetRefused(OSError):
    """The endpoint's scheme or address is not one webhooks may be sent to."""


def address_allowed(address: str) -> bool:
    """True for a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_target(url: str, allow_private: bool) -> None:
    """Raise `TargetRefused` unless `url` is http(s) to a host name or a public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https endpoints are allowed")
    host = parts.hostname
    if not host:
        raise TargetRefused("the endpoint URL names no host")
    if allow_private:
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: its addresses are checked by `resolve` when connecting
    if not address_allowed(host):
        raise TargetRefused("the endpoint address is not public")


# getaddrinfo's signature as `loop.getaddrinfo` has it (tests pass a stand-in)
AddressInfo = list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]
GetAddrInfo = Callable[..., Awaitable[AddressInfo]]


async def resolve(host: str, port: int, allow_private: bool,
                  getaddrinfo: GetAddrInfo | None = None,
                  ) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """(family, socket address) for each address `host` resolves to, in order; raises
    `TargetRefused` when any of them is not public, unless `allow_private`."""
    lookup = getaddrinfo or asyncio.get_running_loop().getaddrinfo
    infos = await lookup(host, port, type=socket.SOCK_STREAM)
    addresses = [(family, address) for family, _, _, _, address in infos]
    if not allow_private:
        for _, address in addresses:
            if not address_allowed(address[0]):
                raise TargetRefused("the endpoint name resolves to a non-public address")
    return addresses

"""Where a webhook may be sent: public http(s) addresses only, checked when connecting.

An endpoint URL is checked twice. Before each attempt: scheme http or https, and a host
written as an IP address must be public. When connecting: `GuardedResolver` resolves the
host name and refuses the connection when any address it gets is not public, so a name
that resolves to a public address at configuration time and to 127.0.0.1 later (DNS
rebinding) is refused at the moment it matters. The HTTP client caches no DNS answer and
follows no redirect. `allow_private_targets` lifts the address rule (tests, internal
receivers), never the scheme rule.

Not public: loopback, private (RFC 1918, fc00::/7), link-local (which holds the cloud
metadata address 169.254.169.254), shared (100.64/10), multicast, reserved, unspecified,
documentation ranges, IPv4-mapped IPv6 forms of those, and fd00:ec2::254 (AWS metadata).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

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
        return  # a name: its addresses are checked by GuardedResolver when connecting
    if not address_allowed(host):
        raise TargetRefused("the endpoint address is not public")


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing names that resolve to any non-public address."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                if not address_allowed(result["host"]):
                    raise TargetRefused("the endpoint name resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()

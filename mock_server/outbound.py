"""Where the mock may send webhook deliveries and agent callbacks (the only requests it makes).

Tenants choose the URLs, so without a policy the mock is a proxy into whatever its host can reach.
Default: loopback and public addresses get real POSTs (receivers usually run on the developer's own
machine); private, link-local (cloud metadata included), multicast and reserved addresses do not, and
neither does this server itself (a delivery must not drive its own control API). With an allow-list
(``--outbound-allow``, host names, ``*.suffix`` patterns or CIDRs) only matching targets are reached.

The check runs where addresses are known: literal IPs before sending, names inside the HTTP client's
resolver, which drops every refused address before a connection is attempted, so a name that resolves
to a private address (or changes its answer between two lookups) is refused all the same.
"""

from __future__ import annotations

import ipaddress
import socket
from fnmatch import fnmatch
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


class Refused(OSError):
    """A target the policy does not allow; its message goes into the delivery record."""


class OutboundPolicy:
    def __init__(self, allow: list[str] | None = None, own_ports: set[int] | None = None) -> None:
        self.names = [a.lower() for a in allow or [] if not _is_network(a)]
        self.networks = [ipaddress.ip_network(a, strict=False) for a in allow or [] if _is_network(a)]
        self.allowlist = bool(allow)
        self.own_ports = own_ports if own_ports is not None else set()

    def check_name(self, host: str) -> None:
        """In allow-list mode a host name must be listed (or its address must be, checked later)."""
        if self.allowlist and not self.networks and not any(fnmatch(host.lower(), p) for p in self.names):
            raise Refused(f"{host} is not in the outbound allow-list (--outbound-allow)")

    def check_address(self, host: str, address: str, port: int) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if port in self.own_ports and (ip.is_loopback or ip.is_unspecified):
            raise Refused("the target is this avala-mock server itself")
        if self.allowlist:
            if any(fnmatch(host.lower(), p) for p in self.names) or any(ip in n for n in self.networks):
                return
            raise Refused(f"{address} is not in the outbound allow-list (--outbound-allow)")
        if ip.is_loopback:
            return
        kind = _kind(ip)
        if kind:
            raise Refused(f"{address} is a {kind} address; allow it with --outbound-allow")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


def _kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for attr, name in (("is_link_local", "link-local"), ("is_private", "private"), ("is_multicast", "multicast"),
                       ("is_unspecified", "unspecified"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return name
    return None


class PolicyResolver(AbstractResolver):
    """The default resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.policy.check_name(host)
        found = await self.inner.resolve(host, port, family)
        kept, reasons = [], []
        for result in found:
            try:
                self.policy.check_address(host, result["host"], port)
                kept.append(result)
            except Refused as exc:
                reasons.append(str(exc))
        if not kept:
            raise Refused(reasons[0] if reasons else f"{host} did not resolve")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def literal_address(host: str) -> Any:
    """``host`` as an IP address when it is one (the HTTP client does not resolve those), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None

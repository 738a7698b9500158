"""Target address policy of webhook URLs: which hosts a delivery may connect to.

Receivers are chosen by API users, so a URL must not turn the API host into a proxy towards its
own network (loopback services, the LAN, cloud metadata at 169.254.169.254). Private, loopback,
link-local, unique-local, multicast, reserved and unspecified addresses — IPv4 and IPv6,
including IPv4 embedded in IPv6 — are refused unless the install allows them
(``KALLGLOT_WEBHOOK_ALLOW_PRIVATE_TARGETS``). A host name is judged by every address it resolves
to: one refused address refuses the name. The check runs when an endpoint is created or its URL
changes, and again for every delivery, inside the HTTP client's resolver (see
:class:`VettingResolver`), so the connection goes only to the addresses that were vetted.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ERROR_CODE = "target_not_allowed"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetNotAllowed(OSError):
    """The target resolves to an address the policy refuses. An OSError so that aiohttp's
    connector wraps it (ClientConnectorError) like any other failure to reach the host."""

    def __init__(self, host: str, address: str | None = None) -> None:
        detail = host if address is None or address == host else f"{host} ({address})"
        super().__init__(f"webhook target {detail} is a private, loopback or reserved address")
        self.host = host
        self.address = address


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address a webhook may reach on an install that allows no private targets."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_v4(ip)
        if inner is not None and not is_public(inner):
            return False
        if ip.is_site_local:
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(host: str, address: str, allow_private: bool) -> None:
    """Raise TargetNotAllowed unless ``address`` (resolved from ``host``) may be reached."""
    if allow_private:
        return
    ip = ip_literal(address.split("%", 1)[0])
    if ip is None or not is_public(ip):
        raise TargetNotAllowed(host, address)


def check_url_target(url: str, allow_private: bool) -> None:
    """At create/update: refuse a URL whose host is, or now resolves to, a refused address.

    Blocking (DNS): call from a worker thread. A name that does not resolve yet is accepted;
    every delivery checks again before connecting.
    """
    if allow_private:
        return
    host = URL(url).raw_host or ""
    literal = ip_literal(host)
    if literal is not None:
        check_address(host, str(literal), allow_private)
        return
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return
    for info in infos:
        check_address(host, str(info[4][0]), allow_private)


class VettingResolver(AbstractResolver):
    """aiohttp resolver that vets every address it hands the connector.

    The connector connects only to what ``resolve`` returns, so there is no window between the
    check and the connection for a DNS answer to change (rebinding). IP literals never reach a
    resolver in aiohttp: the worker checks them itself before the request.
    """

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"], self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


def refusal_in(exc: BaseException | None) -> TargetNotAllowed | None:
    """The TargetNotAllowed behind an aiohttp client error, if that is what it is."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TargetNotAllowed):
            return current
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None

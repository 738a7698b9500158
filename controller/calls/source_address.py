"""Where a call really came from, when a trusted SIP proxy (the Kamailio front) relays it.

FreeSWITCH's ``sip_network_ip`` and ``sip_via_protocol`` describe the last hop. Behind the
Kamailio front (docs/kamailio.md) that is the front, so the front stamps the caller's address and
transport into ``X-Kallglot-Source-IP`` / ``X-Kallglot-Source-Proto`` (after removing any such
header the caller sent), and sofia hands every ``X-`` header to the channel as
``variable_sip_h_<name>``. Those headers are believed ONLY when the packet came from an address in
``KALLGLOT_SIP_TRUSTED_PROXIES``; from anyone else they are ignored, so a caller cannot pick the
address the per-organization allowlist sees.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

from controller.calls.channel import ChannelInfo

log = logging.getLogger("kallglot.calls.source")

TRUSTED_PROXIES_ENV = "KALLGLOT_SIP_TRUSTED_PROXIES"
SOURCE_IP_HEADER = "variable_sip_h_X-Kallglot-Source-IP"
SOURCE_PROTO_HEADER = "variable_sip_h_X-Kallglot-Source-Proto"
PROXIED_TRANSPORTS = ("udp", "tcp", "tls")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxiesError(ValueError):
    """``KALLGLOT_SIP_TRUSTED_PROXIES`` holds something that is not an IP or CIDR (names the entry)."""


def parse_trusted_proxies(raw: str) -> tuple[IpNetwork, ...]:
    """``"10.0.0.5, 10.0.1.0/28, fd00::5"`` → networks; empty → () (no proxy is trusted)."""
    networks: list[IpNetwork] = []
    for i, word in enumerate(w.strip() for w in raw.split(",")):
        if not word:
            continue
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise TrustedProxiesError(
                f"{TRUSTED_PROXIES_ENV}[{i}]: {word[:60]!r} is not an IP address or CIDR") from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _parse_cached(raw: str) -> tuple[IpNetwork, ...]:
    try:
        return parse_trusted_proxies(raw)
    except TrustedProxiesError as exc:
        # Fail closed: a typo must not make FreeSWITCH's own address a trusted proxy by accident;
        # with nobody trusted, calls through the front see the front's address (and fail the
        # allowlist) rather than a header anybody could have written.
        log.error("%s; trusting no proxy", exc)
        return ()


def trusted_proxies_from_env(env: Mapping[str, str] | None = None) -> tuple[IpNetwork, ...]:
    return _parse_cached((os.environ if env is None else env).get(TRUSTED_PROXIES_ENV, ""))


def _in_any(ip: str | None, networks: Iterable[IpNetwork]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


@dataclass(frozen=True)
class CallerSource:
    ip: str | None  # the caller's address: the header's when relayed by a trusted proxy
    transport: str | None  # udp | tcp | tls, the caller's own leg
    proxy: str | None = None  # the trusted proxy's address when it relayed the call


def caller_source(channel: ChannelInfo, trusted: Iterable[IpNetwork]) -> CallerSource:
    """The address and transport the caller used; the headers count only from a trusted proxy."""
    trusted = tuple(trusted)
    if not trusted or not _in_any(channel.network_ip, trusted):
        return CallerSource(channel.network_ip, channel.transport)
    raw_ip = (channel.headers.get(SOURCE_IP_HEADER) or "").strip()
    raw_proto = (channel.headers.get(SOURCE_PROTO_HEADER) or "").strip().lower()
    try:
        ip = str(ipaddress.ip_address(raw_ip.strip("[]")))
    except ValueError:
        # A trusted proxy that did not say who the caller is: nobody, so any allowlist refuses it.
        log.warning("call %s from trusted proxy %s without a valid X-Kallglot-Source-IP",
                    channel.call_uuid, channel.network_ip)
        return CallerSource(None, None, channel.network_ip)
    transport = raw_proto if raw_proto in PROXIED_TRANSPORTS else None
    return CallerSource(ip, transport, channel.network_ip)


def as_caller(channel: ChannelInfo, trusted: Iterable[IpNetwork]) -> ChannelInfo:
    """The channel as admission should judge it: the caller's address and transport in place of
    the proxy's (unchanged when the call did not come through a trusted proxy)."""
    source = caller_source(channel, trusted)
    if source.proxy is None:
        return channel
    return replace(channel, network_ip=source.ip, transport=source.transport)


def ip_allowed(ip: str | None, allowlist: Iterable[str]) -> bool:
    """DESIGN §3: an empty allowlist means no IP filtering; otherwise the address must be in it."""
    entries = list(allowlist)
    if not entries:
        return True
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            continue  # validated on input; a bad stored entry allows nobody
    return _in_any(ip, networks)

"""The caller's address behind the Kamailio front: X-Kallglot-Source-* count only from a trusted proxy."""

from __future__ import annotations

import logging

import pytest

from controller.calls.channel import ChannelInfo
from controller.calls.source_address import (
    SOURCE_IP_HEADER,
    SOURCE_PROTO_HEADER,
    TrustedProxiesError,
    as_caller,
    caller_source,
    ip_allowed,
    parse_trusted_proxies,
    trusted_proxies_from_env,
)

FRONT = "10.0.0.5"
TRUSTED = parse_trusted_proxies(f"{FRONT}, fd00::/64")


def channel(network_ip: str, transport: str = "udp", **headers: str) -> ChannelInfo:
    base = {
        "Unique-ID": "u1",
        "Call-Direction": "inbound",
        "variable_sip_req_user": "sess_1",
        "variable_sip_network_ip": network_ip,
        "variable_sip_via_protocol": transport,
    }
    return ChannelInfo.from_headers(base | headers)


def spoofed(network_ip: str) -> ChannelInfo:
    return channel(network_ip, **{SOURCE_IP_HEADER: "203.0.113.10", SOURCE_PROTO_HEADER: "tls"})


def test_header_from_trusted_front_is_the_caller() -> None:
    src = caller_source(spoofed(FRONT), TRUSTED)
    assert (src.ip, src.transport, src.proxy) == ("203.0.113.10", "tls", FRONT)
    judged = as_caller(spoofed(FRONT), TRUSTED)
    assert (judged.network_ip, judged.transport) == ("203.0.113.10", "tls")


def test_spoofed_header_from_untrusted_source_is_ignored() -> None:
    # A caller writing the header itself and calling FreeSWITCH directly gains nothing.
    src = caller_source(spoofed("198.51.100.7"), TRUSTED)
    assert (src.ip, src.transport, src.proxy) == ("198.51.100.7", "udp", None)
    assert as_caller(spoofed("198.51.100.7"), TRUSTED) == spoofed("198.51.100.7")
    # And with no trusted proxy configured, nobody's header counts.
    assert caller_source(spoofed(FRONT), ()).ip == FRONT


def test_allowlist_sees_the_right_address() -> None:
    allowlist = ["203.0.113.0/24"]
    # Through the front: the caller's address is checked, not the front's.
    assert ip_allowed(caller_source(spoofed(FRONT), TRUSTED).ip, allowlist)
    # Direct, with a forged header naming an allowed address: refused.
    assert not ip_allowed(caller_source(spoofed("198.51.100.7"), TRUSTED).ip, allowlist)
    # The front itself is not an allowed caller just because it relays.
    assert not ip_allowed(caller_source(channel(FRONT), TRUSTED).ip, allowlist)
    assert ip_allowed("198.51.100.7", [])  # empty list: no IP filtering (DESIGN §3)


def test_trusted_front_without_a_valid_header_is_nobody(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kallglot.calls.source")
    for bad in ({}, {SOURCE_IP_HEADER: "not-an-ip"}, {SOURCE_IP_HEADER: "203.0.113.10, 10.0.0.1"}):
        src = caller_source(channel(FRONT, **bad), TRUSTED)
        assert src.ip is None and src.proxy == FRONT
        assert not ip_allowed(src.ip, ["0.0.0.0/0"])
    assert "without a valid X-Kallglot-Source-IP" in caplog.text


def test_unknown_proto_is_no_transport_and_v6_front() -> None:
    src = caller_source(channel("fd00::9", **{SOURCE_IP_HEADER: "2001:db8::1", SOURCE_PROTO_HEADER: "ws"}),
                        TRUSTED)
    assert (src.ip, src.transport) == ("2001:db8::1", None)  # ws is never an allowed transport


def test_parse_names_the_bad_entry() -> None:
    assert parse_trusted_proxies("") == ()
    with pytest.raises(TrustedProxiesError, match=r"KALLGLOT_SIP_TRUSTED_PROXIES\[1\]"):
        parse_trusted_proxies("10.0.0.5,kamailio.local")


def test_bad_env_trusts_nobody(caplog: pytest.LogCaptureFixture) -> None:
    assert trusted_proxies_from_env({"KALLGLOT_SIP_TRUSTED_PROXIES": "10.0.0.0/8,oops"}) == ()
    assert trusted_proxies_from_env({"KALLGLOT_SIP_TRUSTED_PROXIES": "10.0.0.0/8"})[0].prefixlen == 8

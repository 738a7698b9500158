"""Admission behind the Kamailio front: the organization's allowlist, transport rules and a
provider's inbound addresses judge the caller's address the front stamped, and only when the
call came from KALLGLOT_SIP_TRUSTED_PROXIES; a forged header sent directly changes nothing."""

from __future__ import annotations

import json

import pytest

from controller.calls.admission import Admitted, Rejected, admit
from controller.calls.channel import ChannelInfo
from controller.calls.source_address import SOURCE_IP_HEADER, SOURCE_PROTO_HEADER
from controller.store import Store
from tests.calls.factories import make_number, make_org, make_session, sip_channel, sip_username

FRONT = "10.0.0.5"


@pytest.fixture(autouse=True)
def trusted_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALLGLOT_SIP_TRUSTED_PROXIES", f"{FRONT}/32")


def _with_source(ch: ChannelInfo, ip: str, proto: str = "tls") -> ChannelInfo:
    return ChannelInfo.from_headers({**ch.headers, SOURCE_IP_HEADER: ip, SOURCE_PROTO_HEADER: proto})


def _allowlist(store: Store, org: str, cidrs: list[str]) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE sip_settings SET ip_allowlist = ? WHERE org_id = ?", (json.dumps(cidrs), org))


def _call(store: Store, org: str, *, ip: str, transport: str = "udp", source: str | None = None,
          proto: str = "tls") -> Admitted | Rejected:
    ch = sip_channel(org, sip_username(store, org), make_session(store, org), ip=ip, transport=transport)
    return admit(store, ch if source is None else _with_source(ch, source, proto))


def test_allowlisted_caller_through_the_front_is_admitted(store: Store) -> None:
    org = make_org(store)
    _allowlist(store, org, ["203.0.113.0/24"])
    assert isinstance(_call(store, org, ip=FRONT, source="203.0.113.7"), Admitted)
    # The front's own address is not in the list: without the header the call is nobody's.
    refused = _call(store, org, ip=FRONT)
    assert isinstance(refused, Rejected) and refused.sip_code == 403


def test_caller_outside_the_allowlist_through_the_front_is_403(store: Store) -> None:
    org = make_org(store)
    _allowlist(store, org, ["203.0.113.0/24"])
    result = _call(store, org, ip=FRONT, source="198.51.100.9")
    assert isinstance(result, Rejected) and result.sip_code == 403
    assert "ip_allowlist" in result.reason


def test_forged_header_from_an_untrusted_source_is_ignored(store: Store) -> None:
    org = make_org(store)
    _allowlist(store, org, ["203.0.113.0/24"])
    # Straight to the node, claiming an allowed address: judged by the packet's address, refused.
    result = _call(store, org, ip="198.51.100.9", source="203.0.113.7")
    assert isinstance(result, Rejected) and result.sip_code == 403
    # An allowed direct caller is unaffected by whatever it writes in the header.
    assert isinstance(_call(store, org, ip="203.0.113.8", source="198.51.100.9"), Admitted)


def test_transport_rules_see_the_callers_own_transport(store: Store) -> None:
    org = make_org(store, transports=("tls",), require_tls=True)
    # Front -> node is UDP; the caller used TLS to the front.
    secure = _call(store, org, ip=FRONT, transport="udp", source="203.0.113.7", proto="tls")
    assert isinstance(secure, Admitted)
    plain = _call(store, org, ip=FRONT, transport="udp", source="203.0.113.7", proto="udp")
    assert isinstance(plain, Rejected) and plain.sip_code == 403
    # A direct caller cannot claim TLS with the header.
    forged = _call(store, org, ip="203.0.113.7", transport="udp", source="203.0.113.7", proto="tls")
    assert isinstance(forged, Rejected) and forged.sip_code == 403


def test_provider_trunk_through_the_front_is_recognised_by_its_address(store: Store) -> None:
    org = make_org(store)
    make_number(store, org, "+4930123456", ["203.0.113.0/24"])
    via_front = _with_source(sip_channel(None, None, "+4930123456", ip=FRONT), "203.0.113.9", "udp")
    assert isinstance(admit(store, via_front), Admitted)
    forged = _with_source(sip_channel(None, None, "+4930123456", ip="198.51.100.9"), "203.0.113.9", "udp")
    result = admit(store, forged)
    assert isinstance(result, Rejected) and result.sip_code == 403


def test_without_trusted_proxies_nothing_changes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALLGLOT_SIP_TRUSTED_PROXIES")
    org = make_org(store)
    _allowlist(store, org, ["203.0.113.0/24"])
    result = _call(store, org, ip=FRONT, source="203.0.113.7")
    assert isinstance(result, Rejected) and result.sip_code == 403
    assert isinstance(_call(store, org, ip="203.0.113.7"), Admitted)

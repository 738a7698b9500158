"""One organization's settings change never touches another organization's live call.

Seen on a real FreeSWITCH 1.10.12: organization A's first provider connection (an inbound
address) made the reload restart the shared sofia profile, and organization B's live call was
gone. Here B holds a call while A changes every kind of setting; after each change B's channel
is still up and B's session still active, and B's BYE is answered at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Edge

CONNECTION = {
    "provider": "twilio", "name": "Isolation trunk",
    "credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "f" * 32},
    "sip": {"host": "127.0.0.1:5999", "username": "acme-trunk", "password": "trunk-password"},
    "inbound_addresses": ["198.51.100.0/24"],
}


def _b_session(edge: Edge) -> str:
    doc = edge.stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}}, key=edge.other.key)
    return str(doc["id"])


def _b_status(edge: Edge, session_id: str) -> str:
    return str(edge.stack.api_ok("GET", f"/v1/sessions/{session_id}", key=edge.other.key)["status"])


def _channels_after(edge: Edge, seconds: float) -> int:
    """Live channels once ``seconds`` have passed: FreeSWITCH's channel list (its core database)
    shows a new or ended channel only ~200 ms later."""
    time.sleep(seconds)
    return edge.live_channels()


def _changes(edge: Edge) -> list[tuple[str, Callable[[], object]]]:
    acme = edge.acme.key
    state: dict[str, str] = {}

    def add_connection() -> object:
        doc = edge.stack.api_ok("POST", "/v1/connections", CONNECTION, key=acme)
        state["connection"] = str(doc["id"])
        return edge.stack.reload()

    def add_number() -> object:
        doc = edge.stack.api_ok("POST", "/v1/phone_numbers",
                                {"number": "+4930901899", "connection_id": state["connection"]}, key=acme)
        state["number"] = str(doc["id"])
        return edge.stack.reload()

    def release_number() -> object:
        edge.stack.api_ok("PATCH", f"/v1/phone_numbers/{state['number']}", {"status": "released"}, key=acme)
        return edge.stack.reload()

    def change_gateway() -> object:
        edge.stack.api_ok("PATCH", f"/v1/connections/{state['connection']}",
                          {"sip": {**CONNECTION["sip"], "password": "rotated-password"}}, key=acme)  # type: ignore[dict-item]
        return edge.stack.reload()

    def remove_connection() -> object:
        edge.stack.api_ok("DELETE", f"/v1/connections/{state['connection']}", key=acme)
        return edge.stack.reload()

    def new_credentials() -> object:
        creds = edge.stack.generate_credentials(key=acme)
        edge.acme.username, edge.acme.password = str(creds["username"]), str(creds["password"])
        return edge.stack.reload()

    return [
        ("TLS only", lambda: edge.configure(require_tls=True, allowed_transports=["tls"])),
        ("UDP only", lambda: edge.configure(allowed_transports=["udp"])),
        ("IP allowlist", lambda: edge.configure(ip_allowlist=["203.0.113.0/24"])),
        ("codecs", lambda: edge.configure(allowed_codecs=["PCMA"])),
        ("SRTP required", lambda: edge.configure(require_srtp=True)),
        ("SIP disabled", lambda: edge.configure(enabled=False)),
        ("SIP enabled", lambda: edge.configure(enabled=True)),
        ("new SIP credentials", new_credentials),
        ("provider connection with inbound addresses", add_connection),
        ("managed number", add_number),
        ("gateway password", change_gateway),
        ("managed number released", release_number),
        ("provider connection removed", remove_connection),
        ("baseline", lambda: edge.configure()),
    ]


def test_a_live_call_of_b_survives_every_settings_change_of_a(edge: Edge) -> None:
    b_session = _b_session(edge)
    call = edge.stack.place_call(b_session, **edge.other.credentials())
    assert call.code == 200, (call.code, call.reason)
    try:
        edge.wait_session_status(b_session, "active", key=edge.other.key)
        assert _channels_after(edge, 0.5) == 1
        for what, change in _changes(edge):
            outcome = change()
            commands = [c["command"] for c in outcome.get("commands", [])]  # type: ignore[union-attr]
            assert not [c for c in commands if c.endswith((" restart", " stop", " start"))], (what, commands)
            assert _channels_after(edge, 0.5) == 1, f"B's call is gone after A's change: {what}"
            assert _b_status(edge, b_session) == "active", what
    finally:
        edge.configure()
        call.hangup()
        assert call.wait_ended(10)
    edge.wait_session_status(b_session, "ended", key=edge.other.key)


@pytest.mark.parametrize(("allowed", "offer", "expected"), [
    (["PCMA", "PCMU"], ("PCMU", "PCMA"), "PCMA"),
    (["PCMU", "PCMA"], ("PCMA", "PCMU"), "PCMU"),
])
def test_the_organizations_codec_order_wins_over_the_callers(
        edge: Edge, allowed: list[str], offer: tuple[str, ...], expected: str) -> None:
    edge.configure(allowed_codecs=allowed)
    call = edge.stack.place_call(edge.new_session(), codecs=offer, **edge.acme.credentials())
    try:
        assert (call.code, call.codec.upper()) == (200, expected)
    finally:
        call.hangup()
        assert call.wait_ended(10)
        edge.configure()

"""Calls the edge refuses, through the whole stack: settings changed through the API, rendered
and reloaded into FreeSWITCH (the double), decided there or by the controller subprocess.

Each rejection comes with the neighbouring call that is let in, so a test cannot pass by
refusing everything."""

from __future__ import annotations

from tests.e2e.conftest import Edge


def _answered_then_hang_up(edge: Edge, out: object) -> None:
    assert out.code == 200, (out.code, out.reason, out.transport_error)  # type: ignore[attr-defined]
    out.hangup()  # type: ignore[attr-defined]
    assert out.wait_ended(10)  # type: ignore[attr-defined]


def test_wrong_password_is_challenged_then_forbidden(edge: Edge) -> None:
    edge.configure()
    sid = edge.new_session()
    out = edge.stack.place_call(sid, **edge.acme.credentials("not-the-password"))
    assert (out.challenged, out.code, out.reason) == (True, 403, "Forbidden")
    if edge.backend == "double":
        assert out.uuid is None  # refused by FreeSWITCH's digest check: no channel for the controller
    no_creds = edge.stack.place_call(sid)
    assert no_creds.code == 407
    assert "Proxy-Authenticate" in no_creds.headers
    _answered_then_hang_up(edge, edge.stack.place_call(sid, **edge.acme.credentials()))


def test_source_ip_outside_the_allowlist_is_forbidden(edge: Edge) -> None:
    # The callers dial from 127.0.0.1.
    outcome = edge.configure(ip_allowlist=["203.0.113.0/24"])
    assert "reloadacl" in [c["command"] for c in outcome["commands"]]  # type: ignore[union-attr]
    out = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
    assert (out.challenged, out.code) == (True, 403)
    if edge.backend == "double":
        assert out.uuid is None  # refused by the directory user's auth-acl, before any channel exists
    edge.configure(ip_allowlist=["203.0.113.0/24", "127.0.0.1/32"])
    _answered_then_hang_up(edge, edge.stack.place_call(edge.new_session(), **edge.acme.credentials()))


def test_udp_when_tls_is_required_is_forbidden(edge: Edge) -> None:
    edge.configure(require_tls=True, allowed_transports=["tls"])
    # UDP stays bound for the other organization, so the call reaches the controller, which refuses it.
    out = edge.stack.place_call(edge.new_session(), transport="udp", **edge.acme.credentials())
    assert out.code == 403
    if edge.backend == "double":
        assert out.hangup_cause == "CALL_REJECTED"
        assert out.uuid is not None  # past FreeSWITCH's auth: the controller refused it (`respond 403`)
    _answered_then_hang_up(edge, edge.stack.place_call(edge.new_session(), transport="tls",
                                                       **edge.acme.credentials()))


def test_srtp_required_without_crypto_is_not_acceptable(edge: Edge) -> None:
    edge.configure(require_srtp=True)
    out = edge.stack.place_call(edge.new_session(), crypto=False, **edge.acme.credentials())
    assert (out.code, out.reason) == (488, "Not Acceptable Here")
    secure = edge.stack.place_call(edge.new_session(), crypto=True, **edge.acme.credentials())
    assert secure.srtp
    _answered_then_hang_up(edge, secure)


def test_call_cap_reached_is_service_unavailable_with_the_limit(edge: Edge) -> None:
    edge.configure(max_concurrent_calls=1)
    first_session = edge.new_session()
    first = edge.stack.place_call(first_session, **edge.acme.credentials())
    assert first.code == 200
    try:
        over = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
        assert (over.code, over.reason) == (503, "Service Unavailable")
        assert over.headers.get("X-Call-Limit") == "1"
    finally:
        first.hangup()
        assert first.wait_ended(10)
    # The slot is free again once the controller has seen the first call end.
    edge.wait_session_status(first_session, "ended")
    _answered_then_hang_up(edge, edge.stack.place_call(edge.new_session(), **edge.acme.credentials()))

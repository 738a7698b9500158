"""Webhooks from a real call: the organization's endpoint hears session.created, session.started,
session.ended (every leg's SIP outcome and quality) and call.rejected, each signed, delivered by
the API process from the store's outbox that the API, the bridge and the controller write to.

The receiver is on loopback, so the API runs with KALLGLOT_WEBHOOK_ALLOW_PRIVATE_TARGETS=true for
this module only (restarted, then restored)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.demo.procs import wait_until
from controller.webhooks.signing import verify_signature
from tests.e2e.conftest import Edge
from tests.webhooks.receiver import Receiver

EVENTS = ["session.created", "session.started", "session.ended", "transcript.segment", "call.rejected"]


def _restart_api(edge: Edge, extra: dict[str, str]) -> None:
    old = next(s for s in reversed(edge.stack.services.services) if s.name == "api")
    old.stop()
    edge.stack.services.start("api", extra_env=extra)

    def healthy() -> bool:
        try:
            return edge.stack.api("GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_until("the API to serve again", healthy, 30)


@pytest.fixture
def loopback_webhooks(edge: Edge) -> Iterator[None]:
    _restart_api(edge, {"KALLGLOT_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
                        "KALLGLOT_WEBHOOK_POLL_INTERVAL_S": "0.2"})
    try:
        yield
    finally:
        _restart_api(edge, {})


def _events(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    out = []
    for req in list(receiver.requests):
        assert verify_signature(secret, req.headers["Kallglot-Signature"], req.body), req.headers
        doc = json.loads(req.body)
        sent_as = (req.headers["Kallglot-Event-Id"], req.headers["Kallglot-Event-Type"])
        assert sent_as == (doc["id"], doc["type"])
        out.append(doc)
    return out


def _wait_event(receiver: Receiver, secret: str, event_type: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _events(receiver, secret) if e["type"] == event_type]
        if found:
            return found[-1]
        time.sleep(0.1)
    got = [e["type"] for e in _events(receiver, secret)]
    raise AssertionError(f"no {event_type} within {timeout:g} s; received {got}")


def test_a_call_is_told_to_the_organizations_webhook(edge: Edge, loopback_webhooks: None) -> None:
    edge.configure()
    receiver = Receiver()
    endpoint = edge.stack.api_ok("POST", "/v1/webhook_endpoints",
                                 {"url": receiver.url, "enabled_events": EVENTS}, key=edge.acme.key)
    secret = str(endpoint["secret"])
    try:
        sid = edge.new_session()
        created = _wait_event(receiver, secret, "session.created")
        assert created["data"]["id"] == sid

        rtp = {"rtp": True} if edge.backend == "freeswitch" else {}
        call = edge.stack.place_call(sid, headers={"X-Kallglot-Role": "customer"}, **rtp,
                                     **edge.acme.credentials())
        assert call.code == 200, (call.code, call.reason)
        edge.wait_session_status(sid, "active")
        started = _wait_event(receiver, secret, "session.started")
        assert started["data"]["session_id"] == sid
        time.sleep(1.0)
        call.hangup()
        edge.wait_session_status(sid, "ended")
        ended = _wait_event(receiver, secret, "session.ended")
        assert ended["data"]["session_id"] == sid and ended["data"]["end_reason"] == "call_ended"
        [leg] = ended["data"]["legs"]
        assert leg["role"] == "customer" and leg["sip_code"] == 200
        assert leg["quality"] is not None, leg
        if edge.backend == "freeswitch":
            assert leg["quality"]["media_flowed"] and leg["quality"]["codec"] in ("PCMU", "PCMA"), leg
        # The same leg as the API shows it.
        assert edge.stack.api_ok("GET", f"/v1/sessions/{sid}", key=edge.acme.key)["legs"] == [leg]

        # The session is over: a new call to it is refused 410, and the organization hears of it.
        again = edge.stack.place_call(sid, **edge.acme.credentials())
        assert again.code == 410, (again.code, again.reason)
        rejected = _wait_event(receiver, secret, "call.rejected")
        assert rejected["data"]["sip_code"] == 410 and rejected["data"]["session_id"] == sid
        assert rejected["data"]["reason"]

        events = _events(receiver, secret)
        assert len({e["id"] for e in events}) == len(events), "an event was delivered twice"
        assert all(e["api_version"] == "v1" for e in events)
        # Each delivery attempt is in the organization's API log.
        logs = edge.stack.api_ok("GET", "/v1/api_logs?kind=webhook_delivery&limit=100", key=edge.acme.key)
        logged = {row["event_id"] for row in logs["data"]}
        assert {e["id"] for e in events} <= logged
    finally:
        edge.stack.api("DELETE", f"/v1/webhook_endpoints/{endpoint['id']}", key=edge.acme.key)
        receiver.stop()

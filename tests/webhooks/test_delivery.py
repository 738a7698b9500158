"""The delivery worker against a real receiver: signatures, headers, retries, timeouts, the
address policy at delivery time (no connection made), and the metrics."""

from __future__ import annotations

import json
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from prometheus_client import REGISTRY

from controller.domain.requests import SessionCreate
from controller.domain.sessions import create_session
from controller.store import Store
from controller.webhooks import endpoints
from controller.webhooks.requests import RotateSecret, WebhookEndpointUpdate
from controller.webhooks.signing import verify_signature
from tests.webhooks.conftest import (
    FAST,
    add_endpoint,
    all_finished,
    deliver_until,
    delivery_rows,
    fast_settings,
    new_org,
)
from tests.webhooks.receiver import ConnectionCounter, Receiver


def _sip_session(store: Store, org_id: str) -> str:
    store.conn.execute("UPDATE sip_settings SET enabled = 1 WHERE org_id = ?", (org_id,))
    return create_session(store, FAST, org_id, SessionCreate.model_validate({"routing": {"type": "sip"}})).id


def _metric(outcome: str) -> float:
    return REGISTRY.get_sample_value("kallglot_webhook_deliveries_total", {"outcome": outcome}) or 0.0


def _logs(store: Store) -> list[dict[str, object]]:
    return [dict(r) for r in store.query(
        "SELECT * FROM api_logs WHERE kind = 'webhook_delivery' ORDER BY attempt")]


def test_signed_delivery_with_headers_and_exact_body(store: Store, receiver: Receiver) -> None:
    org, _ = new_org(store)
    ep = add_endpoint(store, org, receiver.url)
    session_id = _sip_session(store, org)
    delivered_before = _metric("delivered")
    deliver_until(store, fast_settings(store), all_finished(store))

    (req,) = receiver.wait_for(1)
    assert verify_signature(ep.secret, req.headers["Kallglot-Signature"], req.body)
    assert not verify_signature("whsec_other", req.headers["Kallglot-Signature"], req.body)
    envelope = json.loads(req.body)
    assert envelope["type"] == "session.created" and envelope["api_version"] == "v1"
    assert envelope["id"].startswith("evt_") and req.headers["Kallglot-Event-Id"] == envelope["id"]
    assert req.headers["Kallglot-Event-Type"] == "session.created"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"].startswith("Kallglot-Webhooks/")
    assert envelope["data"]["id"] == session_id and envelope["data"]["object"] == "session"
    assert envelope["data"]["sip"]["uri"] == f"sip:{session_id}@sip.test.example"
    stored = store.query_one("SELECT body FROM webhook_events WHERE id = ?", (envelope["id"],))
    assert req.body == stored["body"].encode()  # byte-exact: what was queued is what is signed
    (row,) = delivery_rows(store)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_http_status"] == 200
    assert _metric("delivered") == delivered_before + 1


def test_retries_after_500s_with_the_same_event_id(store: Store) -> None:
    receiver = Receiver([500, 503])
    try:
        org, _ = new_org(store)
        ep = add_endpoint(store, org, receiver.url)
        _sip_session(store, org)
        retries_before = _metric("retry")
        deliver_until(store, fast_settings(store), all_finished(store))
        reqs = receiver.wait_for(3)
        assert receiver.answered == [500, 503, 200]
        assert len({r.headers["Kallglot-Event-Id"] for r in reqs}) == 1
        assert len({r.body for r in reqs}) == 1
        assert receiver.verified(ep.secret)
        (row,) = delivery_rows(store)
        assert row["status"] == "delivered" and row["attempts"] == 3
        logs = _logs(store)
        assert [(x["attempt"], x["status"], x["error_code"]) for x in logs] == [
            (1, 500, None), (2, 503, None), (3, 200, None)]
        assert all(x["endpoint_id"] == ep.id and x["event_type"] == "session.created" for x in logs)
        assert _metric("retry") == retries_before + 2
    finally:
        receiver.stop()


def test_timeouts_are_retried_and_the_schedule_ends_in_failed(store: Store) -> None:
    # 0.5 s timeout; the receiver takes 1 s twice, then answers 500 until the schedule (4 attempts) ends.
    receiver = Receiver([1.0, 1.0, 500, 500, 500])
    try:
        org, _ = new_org(store)
        add_endpoint(store, org, receiver.url)
        _sip_session(store, org)
        failed_before = _metric("failed")
        deliver_until(store, fast_settings(store), all_finished(store))
        (row,) = delivery_rows(store)
        assert row["status"] == "failed" and row["attempts"] == 4 and row["last_http_status"] == 500
        assert [(x["status"], x["error_code"]) for x in _logs(store)] == [
            (None, "timeout"), (None, "timeout"), (500, None), (500, None)]
        assert len({r.headers["Kallglot-Event-Id"] for r in receiver.wait_for(4)}) == 1
        assert _metric("failed") == failed_before + 1
    finally:
        receiver.stop()


def test_rotation_keeps_the_previous_secret_signing_in_its_grace(store: Store, receiver: Receiver) -> None:
    org, _ = new_org(store)
    old = add_endpoint(store, org, receiver.url)
    new = endpoints.rotate_secret(store, org, old.id, RotateSecret(expire_previous_in_s=3600))
    assert new.secret != old.secret
    _sip_session(store, org)
    deliver_until(store, fast_settings(store), all_finished(store))
    (req,) = receiver.wait_for(1)
    header = req.headers["Kallglot-Signature"]
    assert header.count("v1=") == 2
    assert verify_signature(new.secret, header, req.body) and verify_signature(old.secret, header, req.body)
    # Without a grace period, only the new secret signs.
    newest = endpoints.rotate_secret(store, org, old.id, RotateSecret())
    _sip_session(store, org)
    deliver_until(store, fast_settings(store), all_finished(store))
    header = receiver.wait_for(2)[1].headers["Kallglot-Signature"]
    assert header.count("v1=") == 1 and verify_signature(newest.secret, header, receiver.requests[1].body)


def test_disabled_endpoint_gets_nothing(store: Store, receiver: Receiver) -> None:
    org, _ = new_org(store)
    ep = add_endpoint(store, org, receiver.url)
    _sip_session(store, org)
    endpoints.update_endpoint(store, org, ep.id, WebhookEndpointUpdate(status="disabled"), allow_private=True)
    deliver_until(store, fast_settings(store), all_finished(store))
    (row,) = delivery_rows(store)
    assert row["status"] == "failed" and row["last_error"] == "endpoint_disabled" and row["attempts"] == 0
    assert receiver.requests == []


def _refused_everywhere(store: Store, url: str, counter: ConnectionCounter, **worker_kwargs: object) -> None:
    org, _ = new_org(store)
    add_endpoint(store, org, url)  # created while allowed (or before DNS changed)
    _sip_session(store, org)
    refused_before = _metric("refused")
    strict = fast_settings(store, webhook_allow_private_targets=False)
    deliver_until(store, strict, all_finished(store), **worker_kwargs)
    (row,) = delivery_rows(store)
    assert row["status"] == "failed" and row["attempts"] == 4 and row["last_error"] == "target_not_allowed"
    logs = _logs(store)
    assert [x["error_code"] for x in logs] == ["target_not_allowed"] * 4
    assert all(x["status"] is None for x in logs)
    assert _metric("refused") == refused_before + 4
    assert counter.accepted == 0  # no connection ever reached the target


def test_loopback_literal_is_refused_at_delivery(store: Store) -> None:
    counter = ConnectionCounter()
    try:
        _refused_everywhere(store, f"http://127.0.0.1:{counter.port}/", counter)
    finally:
        counter.stop()


def test_localhost_name_is_refused_at_delivery(store: Store) -> None:
    counter = ConnectionCounter()
    try:
        _refused_everywhere(store, f"http://localhost:{counter.port}/", counter)
    finally:
        counter.stop()


def test_ipv6_loopback_is_refused_at_delivery(store: Store) -> None:
    try:
        counter = ConnectionCounter("::1")
    except OSError:
        counter = ConnectionCounter()  # no IPv6 here: still no connection may be attempted
    try:
        _refused_everywhere(store, f"http://[::1]:{counter.port}/", counter)
    finally:
        counter.stop()


class RebindingResolver(AbstractResolver):
    """A DNS answer that changed after the endpoint was created: the name now points at loopback."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


def test_rebound_name_is_vetted_in_the_resolver(store: Store) -> None:
    counter = ConnectionCounter()
    try:
        org, _ = new_org(store)
        # Creation with the policy on: the name does not resolve yet, so it is accepted.
        from controller.webhooks.requests import WebhookEndpointCreate

        endpoints.create_endpoint(
            store, org,
            WebhookEndpointCreate(url=f"http://hooks.rebind.invalid:{counter.port}/",
                                  enabled_events=["session.created"]),
            allow_private=False,
        )
        _sip_session(store, org)
        strict = fast_settings(store, webhook_allow_private_targets=False)
        deliver_until(store, strict, all_finished(store), inner_resolver=RebindingResolver())
        (row,) = delivery_rows(store)
        assert row["last_error"] == "target_not_allowed" and counter.accepted == 0
    finally:
        counter.stop()


def test_loopback_delivery_works_when_the_install_allows_it(store: Store, receiver: Receiver) -> None:
    org, _ = new_org(store)
    ep = add_endpoint(store, org, receiver.url.replace("127.0.0.1", "localhost"))
    _sip_session(store, org)
    deliver_until(store, fast_settings(store), all_finished(store))
    assert receiver.verified(ep.secret) and len(receiver.wait_for(1)) == 1
    assert delivery_rows(store)[0]["status"] == "delivered"

"""Idempotency-Key on POSTs: replay, mismatch, conflict, expiry."""

from __future__ import annotations

import threading

from controller.domain import idempotency
from controller.domain.timeutil import now
from tests.api.server import ApiServer, start_api
from tests.api.test_sessions import RecordingCallControl, add_leg

TWILIO = {"account_sid": "AC" + "ab" * 16, "auth_token": "cd" * 16}


def _default_connection(api: ApiServer, org) -> None:
    body = {"provider": "twilio", "name": "t", "credentials": TWILIO, "is_default": True}
    assert api.call("POST", "/v1/connections", org, body=body).status_code == 201


def test_same_key_same_body_replays_the_response(api: ApiServer) -> None:
    org = api.org()
    _default_connection(api, org)
    h = {"Idempotency-Key": "order-1"}
    first = api.call(
        "POST", "/v1/sessions", org, body={"metadata": {"a": 1}, "mode": "assistive_translation"}, headers=h
    )
    # Same JSON, other key order and spacing: still the same request.
    second = api.call(
        "POST",
        "/v1/sessions",
        org,
        data=b'{ "mode": "assistive_translation", "metadata": {"a": 1} }',
        headers={**h, "Content-Type": "application/json"},
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert api.store.query_one("SELECT COUNT(*) FROM sessions")[0] == 1


def test_errors_are_replayed_too(api: ApiServer) -> None:
    org = api.org()
    h = {"Idempotency-Key": "no-default"}
    first = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert first.status_code == 422
    _default_connection(api, org)
    second = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert (second.status_code, second.json()) == (422, first.json())


def test_same_key_other_body_is_a_mismatch(api: ApiServer) -> None:
    org = api.org()
    _default_connection(api, org)
    h = {"Idempotency-Key": "k"}
    assert (
        api.call("POST", "/v1/sessions", org, body={"mode": "assistive_translation"}, headers=h).status_code
        == 201
    )
    resp = api.call("POST", "/v1/sessions", org, body={"mode": "bidirectional_translation"}, headers=h)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "idempotency_mismatch"
    # Another path with the same key is another request too.
    resp = api.call(
        "POST",
        "/v1/connections",
        org,
        body={"provider": "twilio", "name": "x", "credentials": TWILIO},
        headers=h,
    )
    assert resp.json()["error"]["code"] == "idempotency_mismatch"


def test_keys_are_per_organization(api: ApiServer) -> None:
    a, b = api.org("A"), api.org("B")
    for org in (a, b):
        _default_connection(api, org)
    h = {"Idempotency-Key": "shared"}
    sa = api.call("POST", "/v1/sessions", a, body={}, headers=h).json()
    sb = api.call("POST", "/v1/sessions", b, body={}, headers=h).json()
    assert sa["id"] != sb["id"]


def test_concurrent_request_with_the_same_key_conflicts(store) -> None:
    gate = threading.Event()
    cc = RecordingCallControl(gate=gate)
    api, server = start_api(store, call_control=cc)
    try:
        org = api.org()
        _default_connection(api, org)
        sess = api.call("POST", "/v1/sessions", org, body={}).json()
        add_leg(store, sess["id"], org.id, "uuid-1")
        h = {"Idempotency-Key": "end-1"}
        results: dict[str, object] = {}
        t = threading.Thread(
            target=lambda: results.setdefault(
                "first", api.call("POST", f"/v1/sessions/{sess['id']}/end", org, headers=h)
            )
        )
        t.start()
        assert cc.entered.wait(timeout=30)  # the first request is inside the ESL hangup now
        clash = api.call("POST", f"/v1/sessions/{sess['id']}/end", org, headers=h)
        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "idempotency_conflict"
        gate.set()
        t.join(timeout=30)
        first = results["first"]
        assert first.status_code == 200  # type: ignore[attr-defined]
        replay = api.call("POST", f"/v1/sessions/{sess['id']}/end", org, headers=h)
        assert replay.json() == first.json()  # type: ignore[attr-defined]
        assert cc.calls == [["uuid-1"]]  # the replay did not hang up again
    finally:
        gate.set()
        server.stop()


def test_expired_keys_run_again_and_are_purged(api: ApiServer) -> None:
    org = api.org()
    _default_connection(api, org)
    h = {"Idempotency-Key": "old"}
    first = api.call("POST", "/v1/sessions", org, body={}, headers=h).json()
    with api.store.transaction() as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - 86401")
    second = api.call("POST", "/v1/sessions", org, body={}, headers=h).json()
    assert second["id"] != first["id"]
    with api.store.transaction() as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - 86401")
    assert idempotency.purge_expired(api.store, at=now()) == 1


def test_bad_key_is_rejected(api: ApiServer) -> None:
    org = api.org()
    resp = api.call("POST", "/v1/sessions", org, body={}, headers={"Idempotency-Key": "x" * 300})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "Idempotency-Key"


def test_server_error_is_not_stored_so_a_retry_runs_again(api: ApiServer, monkeypatch) -> None:
    from controller.domain import sessions as sessions_domain

    org = api.org()
    _default_connection(api, org)
    real = sessions_domain.create_session

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sessions_domain, "create_session", broken)
    h = {"Idempotency-Key": "retry-me"}
    failed = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert failed.status_code == 500
    err = failed.json()["error"]
    assert (err["type"], err["code"]) == ("api_error", "internal_error")
    assert "disk on fire" not in failed.text  # internals never leak into responses
    monkeypatch.setattr(sessions_domain, "create_session", real)
    retried = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_a_key_left_running_by_a_dead_request_is_taken_over(api: ApiServer) -> None:
    org = api.org()
    _default_connection(api, org)
    fingerprint = idempotency.request_fingerprint("POST", "/v1/sessions", b"{}")
    with api.store.transaction() as conn:  # as if the API process was killed mid-request
        conn.execute(
            "INSERT INTO idempotency_keys (org_id, key, method, path, body_hash, state, created_at)"
            " VALUES (?, 'crashed', 'POST', '/v1/sessions', ?, 'running', ?)",
            (org.id, fingerprint, now() - idempotency.RUNNING_STALE_S + 30),
        )
    h = {"Idempotency-Key": "crashed"}
    assert (
        api.call("POST", "/v1/sessions", org, body={}, headers=h).status_code == 409
    )  # may still be running
    with api.store.transaction() as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - 60 WHERE key = 'crashed'")
    taken = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert taken.status_code == 201
    replay = api.call("POST", "/v1/sessions", org, body={}, headers=h)
    assert replay.json() == taken.json() and replay.headers["Idempotent-Replayed"] == "true"

"""Authentication, the error envelope and isolation between organizations."""

from __future__ import annotations

import hashlib

from controller.domain import api_keys
from tests.api.server import ApiServer


def _assert_envelope(resp, status: int, code: str, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"type", "code", "message", "param", "request_id"}
    assert err["code"] == code
    assert err["param"] == param
    assert err["request_id"].startswith("req_")
    assert resp.headers["X-Request-ID"] == err["request_id"]
    return err


def test_missing_and_invalid_keys(api: ApiServer) -> None:
    _assert_envelope(api.call("GET", "/v1/sessions"), 401, "authentication_required")
    _assert_envelope(
        api.call("GET", "/v1/sessions", headers={"Authorization": "Bearer sk_live_nope"}),
        401,
        "invalid_api_key",
    )
    _assert_envelope(
        api.call("GET", "/v1/sessions", headers={"Authorization": "Basic abc"}),
        401,
        "authentication_required",
    )


def test_bearer_and_x_api_key_both_work_and_revocation_takes_effect(api: ApiServer) -> None:
    org = api.org()
    assert api.call("GET", "/v1/sip", org).status_code == 200
    assert api.call("GET", "/v1/sip", headers={"X-API-Key": org.key}).status_code == 200
    key_row = api.store.query_one("SELECT * FROM api_keys WHERE org_id = ?", (org.id,))
    # Only the SHA-256 is stored, never the key itself.
    assert key_row["key_hash"] == hashlib.sha256(org.key.encode()).hexdigest()
    assert org.key not in str(tuple(key_row))
    api_keys.revoke_key(api.store, key_row["id"])
    _assert_envelope(api.call("GET", "/v1/sip", org), 401, "invalid_api_key")


def test_test_mode_keys_authenticate(api: ApiServer) -> None:
    org = api.org()
    created = api_keys.create_key(api.store, org.id, livemode=False)
    assert created.secret.startswith("sk_test_")
    assert api.call("GET", "/v1/sip", headers={"X-API-Key": created.secret}).status_code == 200


def test_unknown_route_and_wrong_method_use_the_envelope(api: ApiServer) -> None:
    org = api.org()
    _assert_envelope(api.call("GET", "/v1/nothing-here", org), 404, "route_not_found")
    _assert_envelope(api.call("GET", "/elsewhere"), 404, "route_not_found")
    _assert_envelope(api.call("PUT", "/v1/sessions", org), 405, "method_not_allowed")


def test_malformed_json_and_unknown_fields(api: ApiServer) -> None:
    org = api.org()
    resp = api.call(
        "POST", "/v1/sessions", org, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    _assert_envelope(resp, 400, "invalid_json")
    _assert_envelope(api.call("POST", "/v1/sessions", org, body=[1, 2]), 400, "invalid_json")
    err = _assert_envelope(
        api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip", "colour": "red"}}),
        400,
        "parameter_unknown",
        "routing.colour",
    )
    assert "routing.colour" in err["message"]
    _assert_envelope(
        api.call("POST", "/v1/sessions", org, body={"source_language": "english"}),
        400,
        "parameter_invalid",
        "source_language",
    )
    _assert_envelope(
        api.call("POST", "/v1/sessions", org, body={"source_language": "zz"}),
        400,
        "parameter_invalid",
        "source_language",
    )
    _assert_envelope(
        api.call("POST", "/v1/connections", org, body={"provider": "twilio"}),
        400,
        "parameter_missing",
        "name",
    )


def _setup_org_with_everything(api: ApiServer, name: str, number: str):
    org = api.org(name)
    api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    con = api.call(
        "POST",
        "/v1/connections",
        org,
        body={"provider": "telnyx", "name": "main", "credentials": {"api_key": "KEY0123456789abcdef"}},
    ).json()
    pn = api.call(
        "POST", "/v1/phone_numbers", org, body={"number": number, "connection_id": con["id"]}
    ).json()
    sess = api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"}}).json()
    return org, con, pn, sess


def test_org_b_cannot_read_or_use_org_a_resources(api: ApiServer) -> None:
    a, con, pn, sess = _setup_org_with_everything(api, "A", "+14155550100")
    b = api.org("B")
    for path in (
        f"/v1/connections/{con['id']}",
        f"/v1/phone_numbers/{pn['id']}",
        f"/v1/sessions/{sess['id']}",
        f"/v1/sessions/{sess['id']}/transcript",
    ):
        _assert_envelope(api.call("GET", path, b), 404, "resource_missing", "id")
    _assert_envelope(
        api.call("PATCH", f"/v1/connections/{con['id']}", b, body={"name": "x"}),
        404,
        "resource_missing",
        "id",
    )
    _assert_envelope(api.call("DELETE", f"/v1/connections/{con['id']}", b), 404, "resource_missing", "id")
    _assert_envelope(
        api.call("PATCH", f"/v1/phone_numbers/{pn['id']}", b, body={"status": "released"}),
        404,
        "resource_missing",
        "id",
    )
    _assert_envelope(api.call("POST", f"/v1/sessions/{sess['id']}/end", b), 404, "resource_missing", "id")
    # B cannot route through A's connection or number.
    _assert_envelope(
        api.call("POST", "/v1/sessions", b, body={"routing": {"connection_id": con["id"]}}),
        422,
        "connection_not_found",
        "routing.connection_id",
    )
    _assert_envelope(
        api.call("POST", "/v1/sessions", b, body={"routing": {"phone_number": "+14155550100"}}),
        422,
        "phone_number_not_found",
        "routing.phone_number",
    )
    # B cannot attach a number to A's connection.
    _assert_envelope(
        api.call("POST", "/v1/phone_numbers", b, body={"number": "+14155550199", "connection_id": con["id"]}),
        400,
        "connection_not_found",
        "connection_id",
    )
    # Lists show nothing of A's.
    assert api.call("GET", "/v1/sessions", b).json()["data"] == []
    assert api.call("GET", "/v1/connections", b).json()["data"] == []
    assert api.call("GET", "/v1/phone_numbers", b).json()["data"] == []
    # A's resources are untouched.
    assert api.call("GET", f"/v1/sessions/{sess['id']}", a).json()["status"] == "created"


def test_oversized_metadata_and_bodies_are_refused(api: ApiServer) -> None:
    org = api.org()
    big = {"metadata": {"notes": "x" * 9000}}
    _assert_envelope(api.call("POST", "/v1/sessions", org, body=big), 400, "parameter_invalid", "metadata")
    huge = b'{"metadata": {"notes": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    resp = api.call("POST", "/v1/sessions", org, data=huge, headers={"Content-Type": "application/json"})
    _assert_envelope(resp, 413, "request_too_large")
    assert api.store.query_one("SELECT COUNT(*) FROM sessions")[0] == 0


def test_store_locked_by_another_process_answers_503(tmp_path, monkeypatch) -> None:
    import sqlite3

    from controller.store import db as store_db
    from controller.store import open_store
    from tests.api.server import start_api

    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 0.2)
    store = open_store(tmp_path / "busy.db")
    api, server = start_api(store)
    other = sqlite3.connect(str(tmp_path / "busy.db"), isolation_level=None)
    try:
        org = api.org()
        other.execute("BEGIN EXCLUSIVE")  # like a controller holding the write lock
        resp = api.call("PATCH", "/v1/sip", org, body={"enabled": True})
        err = _assert_envelope(resp, 503, "store_busy")
        assert err["type"] == "api_error" and resp.headers["Retry-After"] == "1"
        other.execute("ROLLBACK")
        assert api.call("PATCH", "/v1/sip", org, body={"enabled": True}).status_code == 200
    finally:
        other.close()
        server.stop()
        store.close()

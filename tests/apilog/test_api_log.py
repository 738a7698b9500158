"""The API log: every authenticated request and every webhook attempt, per organization;
filters, pagination, retention; never bodies, query strings, secrets or keys."""

from __future__ import annotations

import time
from typing import Any

import pytest

from controller.api.janitor import sweep
from controller.apilog.record import ApiRequestEntry, record_request
from controller.store import Store
from tests.api.server import ApiServer, Org
from tests.webhooks.receiver import Receiver


def _logs(api: ApiServer, org: Org, query: str = "") -> list[dict[str, Any]]:
    resp = api.call("GET", f"/v1/api_logs{query}", org)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _wait_deliveries(store: Store, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = store.query_one("SELECT COUNT(*) AS n FROM api_logs WHERE kind = 'webhook_delivery'")
        if row["n"] >= count:
            return
        time.sleep(0.02)
    raise AssertionError("delivery attempts not logged")


def test_each_request_is_logged_with_status_and_request_id(open_api: ApiServer) -> None:
    org = open_api.org()
    created = open_api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"}})  # 422
    missing = open_api.call("GET", "/v1/sessions/sess_nope", org)  # 404
    bad = open_api.call("POST", "/v1/connections", org, data=b"{",
                        headers={"Content-Type": "application/json"})
    ok = open_api.call("GET", "/v1/sessions", org)
    nowhere = open_api.call("GET", "/v1/nowhere", org)
    open_api.call("GET", "/v1/sessions")  # no key: not an organization's request, not logged

    logs = _logs(open_api, org)
    assert [(x["method"], x["path"], x["status"], x["error_code"]) for x in logs] == [
        ("GET", "/v1/nowhere", 404, "route_not_found"),
        ("GET", "/v1/sessions", 200, None),
        ("POST", "/v1/connections", 400, "invalid_json"),
        ("GET", "/v1/sessions/sess_nope", 404, "resource_missing"),
        ("POST", "/v1/sessions", 422, "sip_not_enabled"),
    ]
    ids = [r.headers["X-Request-ID"] for r in (nowhere, ok, bad, missing, created)]
    assert [x["request_id"] for x in logs] == ids
    assert all(x["kind"] == "api_request" and x["duration_ms"] >= 0 for x in logs)
    assert all(x["id"].startswith("log_") and x["object"] == "api_log" for x in logs)
    # Another organization sees none of them.
    assert [x["path"] for x in _logs(open_api, open_api.org("Other"))] == []


def test_filters_and_pagination(open_api: ApiServer) -> None:
    org = open_api.org()
    for _ in range(3):
        open_api.call("GET", "/v1/sessions", org)
    open_api.call("GET", "/v1/sessions/sess_nope", org)
    open_api.call("POST", "/v1/connections", org, body={})
    mark = time.time()
    time.sleep(0.01)
    last = open_api.call("GET", "/v1/sip", org)

    assert len(_logs(open_api, org, "?status=4xx")) == 2
    assert [x["status"] for x in _logs(open_api, org, "?status=404")] == [404]
    assert [x["method"] for x in _logs(open_api, org, "?method=POST")] == ["POST"]
    assert [x["path"] for x in _logs(open_api, org, "?error_code=parameter_missing")] == ["/v1/connections"]
    one = _logs(open_api, org, f"?request_id={last.headers['X-Request-ID']}")
    assert [x["path"] for x in one] == ["/v1/sip"]
    since = _logs(open_api, org, f"?created[gte]={mark}&kind=api_request")
    assert [x["path"] for x in since][-1] == "/v1/sip"
    iso_mark = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mark - 3600)) + "Z"
    assert _logs(open_api, org, f"?created[lt]={iso_mark}") == []
    assert _logs(open_api, org, "?kind=webhook_delivery") == []

    # Pages: newest first, starting_after the last id seen. The log's own GETs are logged as well,
    # so pin the set with created[lt].
    until = time.time()
    time.sleep(0.01)
    everything = [x["id"] for x in _logs(open_api, org, f"?limit=100&created[lt]={until}")]
    assert len(everything) >= 6
    seen: list[str] = []
    cursor = ""
    while True:
        page = open_api.call("GET", f"/v1/api_logs?limit=2&created[lt]={until}{cursor}", org).json()
        assert len(page["data"]) <= 2
        seen += [x["id"] for x in page["data"]]
        if not page["has_more"]:
            break
        cursor = f"&starting_after={page['data'][-1]['id']}"
    assert seen == everything


@pytest.mark.parametrize(
    ("query", "param"),
    [("?kind=other", "kind"), ("?status=99", "status"), ("?status=6xx", "status"), ("?method=get", "method"),
     ("?created[gte]=yesterday", "created[gte]"), ("?created[lt]=2026-01-01T00:00:00", "created[lt]"),
     ("?created[gte]=nan", "created[gte]"), ("?limit=0", "limit"),
     ("?starting_after=log_nope", "starting_after")],
)
def test_bad_filters_name_the_parameter(open_api: ApiServer, query: str, param: str) -> None:
    resp = open_api.call("GET", f"/v1/api_logs{query}", open_api.org())
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


def test_delivery_attempts_are_logged(open_api: ApiServer, receiver: Receiver) -> None:
    org = open_api.org()
    receiver.script = [500]
    ep = open_api.call("POST", "/v1/webhook_endpoints", org,
                       body={"url": receiver.url, "enabled_events": ["session.created"]}).json()
    open_api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    open_api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"}})
    _wait_deliveries(open_api.store, 2)
    attempts = _logs(open_api, org, f"?kind=webhook_delivery&endpoint_id={ep['id']}")
    assert [(x["attempt"], x["status"], x["method"], x["path"]) for x in attempts] == [
        (2, 200, "POST", None), (1, 500, "POST", None)]
    event_id = receiver.requests[0].headers["Kallglot-Event-Id"]
    assert {x["event_id"] for x in attempts} == {event_id}
    assert {x["event_type"] for x in attempts} == {"session.created"}
    assert len(_logs(open_api, org, f"?event_id={event_id}&status=5xx")) == 1
    assert len(_logs(open_api, org, "?event_type=session.created")) == 2


def test_no_bodies_secrets_or_keys_in_the_log(open_api: ApiServer, receiver: Receiver) -> None:
    org = open_api.org()
    ep = open_api.call("POST", "/v1/webhook_endpoints", org,
                       body={"url": receiver.url + "?token=url-secret-123",
                             "enabled_events": ["session.created"]})
    rotated = open_api.call("POST", f"/v1/webhook_endpoints/{ep.json()['id']}/rotate_secret", org).json()
    password = open_api.call("POST", "/v1/sip/credentials", org).json()["password"]
    open_api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    open_api.call("POST", "/v1/sessions", org,
                  body={"routing": {"type": "sip"}, "metadata": {"m": "body-marker"}})
    open_api.call("GET", f"/v1/sessions?starting_after={org.key}", org)  # a key pasted into a query string
    open_api.call("GET", "/v1/sessions", headers={"Authorization": "Bearer sk_live_wrongkeywrongkey"})
    _wait_deliveries(open_api.store, 1)
    _logs(open_api, org)  # reading the log writes what the batch writer holds

    dump = "\n".join(repr(tuple(r)) for r in open_api.store.query("SELECT * FROM api_logs"))
    assert "/v1/sip/credentials" in dump and "/v1/webhook_endpoints" in dump
    for secret in (ep.json()["secret"], rotated["secret"], password, org.key, org.key[:12], "body-marker",
                   "url-secret-123", "sk_live_wrongkey", receiver.url):
        assert secret not in dump


def test_retention_purge_by_the_janitor(store: Store) -> None:
    from tests.webhooks.conftest import fast_settings, start_api_with

    api, running = start_api_with(store, fast_settings(store, api_log_retention_days=2))
    try:
        org = api.org()
        now = time.time()
        for age_days in (3, 1):
            entry = ApiRequestEntry(org.id, "GET", f"/v1/old{age_days}", 200, 1.0, "req_x", None)
            record_request(store, entry, at=now - age_days * 86400)
        running.run(sweep(api.app))
        paths = {r["path"] for r in store.query("SELECT path FROM api_logs")}
        assert "/v1/old1" in paths and "/v1/old3" not in paths
    finally:
        running.stop()

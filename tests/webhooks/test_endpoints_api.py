"""/v1/webhook_endpoints over HTTP: CRUD, validation naming the field, the secret shown only by
create and rotate_secret, and the address policy at creation (422 naming ``url``)."""

from __future__ import annotations

import socket

import pytest

from controller.store import Store
from tests.api.server import ApiServer
from tests.webhooks.receiver import Receiver

EVENTS = ["session.created", "transcript.segment"]


def test_crud_and_secret_visibility(open_api: ApiServer, receiver: Receiver) -> None:
    org = open_api.org()
    made = open_api.call("POST", "/v1/webhook_endpoints", org,
                         body={"url": receiver.url, "enabled_events": EVENTS, "description": "CRM"})
    assert made.status_code == 201, made.text
    ep = made.json()
    assert ep["id"].startswith("we_") and ep["object"] == "webhook_endpoint" and ep["status"] == "enabled"
    assert ep["secret"].startswith("whsec_") and len(ep["secret"]) > 40
    assert made.headers["Cache-Control"] == "no-store"
    secret = ep["secret"]

    got = open_api.call("GET", f"/v1/webhook_endpoints/{ep['id']}", org).json()
    assert "secret" not in got and got["enabled_events"] == EVENTS and got["description"] == "CRM"
    listed = open_api.call("GET", "/v1/webhook_endpoints?limit=1", org).json()
    assert [e["id"] for e in listed["data"]] == [ep["id"]] and listed["has_more"] is False
    assert secret not in open_api.call("GET", "/v1/webhook_endpoints", org).text

    patched = open_api.call("PATCH", f"/v1/webhook_endpoints/{ep['id']}", org,
                            body={"enabled_events": ["session.ended"], "description": None,
                                  "status": "disabled"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled_events"] == ["session.ended"] and patched.json()["description"] is None
    assert open_api.call("GET", "/v1/webhook_endpoints?status=enabled", org).json()["data"] == []

    rotated = open_api.call("POST", f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", org,
                            body={"expire_previous_in_s": 600})
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, None)
    assert rotated.json()["previous_secret_expires_at"] is not None
    bare = open_api.call("POST", f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", org)
    assert bare.status_code == 200 and bare.json()["previous_secret_expires_at"] is None

    # Another organization sees nothing.
    other = open_api.org("Other")
    assert open_api.call("GET", f"/v1/webhook_endpoints/{ep['id']}", other).status_code == 404

    deleted = open_api.call("DELETE", f"/v1/webhook_endpoints/{ep['id']}", org)
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert open_api.call("GET", f"/v1/webhook_endpoints/{ep['id']}", org).status_code == 404


def test_idempotency_key_is_not_honoured_where_the_secret_is_returned(open_api: ApiServer,
                                                                        receiver: Receiver) -> None:
    org = open_api.org()
    body = {"url": receiver.url, "enabled_events": EVENTS}
    headers = {"Idempotency-Key": "same"}
    a = open_api.call("POST", "/v1/webhook_endpoints", org, body=body, headers=headers).json()
    b = open_api.call("POST", "/v1/webhook_endpoints", org, body=body, headers=headers).json()
    assert a["id"] != b["id"]
    rows = open_api.store.query("SELECT response_body FROM idempotency_keys")
    assert all(a["secret"] not in (r["response_body"] or "") for r in rows)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"enabled_events": EVENTS}, "url", "parameter_missing"),
        ({"url": "ftp://example.com/", "enabled_events": EVENTS}, "url", "parameter_invalid"),
        ({"url": "https://user:pw@example.com/", "enabled_events": EVENTS}, "url", "parameter_invalid"),
        ({"url": "https://example.com\\@127.0.0.1/", "enabled_events": EVENTS}, "url", "parameter_invalid"),
        ({"url": "http://2130706433/", "enabled_events": EVENTS}, "url", "parameter_invalid"),
        ({"url": "/relative", "enabled_events": EVENTS}, "url", "parameter_invalid"),
        ({"url": "https://example.com/", "enabled_events": []}, "enabled_events", "parameter_invalid"),
        ({"url": "https://example.com/", "enabled_events": ["call.answered"]}, "enabled_events[0]",
         "parameter_invalid"),
        ({"url": "https://example.com/", "enabled_events": ["session.created", "session.created"]},
         "enabled_events", "parameter_invalid"),
        ({"url": "https://example.com/", "enabled_events": EVENTS, "secret": "mine"}, "secret",
         "parameter_unknown"),
    ],
)
def test_validation_names_the_field(strict_api: ApiServer, body: dict[str, object], param: str,
                                    code: str) -> None:
    resp = strict_api.call("POST", "/v1/webhook_endpoints", strict_api.org(), body=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param and resp.json()["error"]["code"] == code


def _loopback_names() -> list[str]:
    names = []
    for name in ("localhost", socket.gethostname()):
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            continue
        if addresses and all(a.startswith("127.") or a == "::1" for a in addresses):
            names.append(name)
    return names


REFUSED_HOSTS = [
    "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "10.1.2.3", "172.16.0.9",
    "192.168.1.1", "169.254.169.254", "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "224.0.0.1",
    "[ff02::1]", "240.0.0.1", "100.64.0.1", "[2002:7f00:1::]", "[64:ff9b::a00:1]", *_loopback_names(),
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_private_targets_are_refused_at_creation(strict_api: ApiServer, host: str) -> None:
    org = strict_api.org()
    resp = strict_api.call("POST", "/v1/webhook_endpoints", org,
                           body={"url": f"http://{host}:8080/hook", "enabled_events": EVENTS})
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "target_not_allowed" and err["param"] == "url"


def test_private_target_refused_on_update_too(strict_api: ApiServer, store: Store) -> None:
    org = strict_api.org()
    made = strict_api.call("POST", "/v1/webhook_endpoints", org,
                           body={"url": "https://93.184.215.14/hook", "enabled_events": EVENTS})
    assert made.status_code == 201, made.text
    resp = strict_api.call("PATCH", f"/v1/webhook_endpoints/{made.json()['id']}", org,
                           body={"url": "http://localhost/hook"})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "url"
    assert store.query_one("SELECT url FROM webhook_endpoints")["url"] == "https://93.184.215.14/hook"


def test_allowed_install_accepts_loopback(open_api: ApiServer, receiver: Receiver) -> None:
    resp = open_api.call("POST", "/v1/webhook_endpoints", open_api.org(),
                         body={"url": receiver.url.replace("127.0.0.1", "localhost"),
                               "enabled_events": EVENTS})
    assert resp.status_code == 201, resp.text

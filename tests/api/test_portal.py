"""Portal resources: connections, phone numbers, SIP settings and credentials."""

from __future__ import annotations

import hashlib
import json

from tests.api.server import SIP_DOMAIN, ApiServer, Org

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "00112233445566778899aabbccddcdef"


def _twilio(api: ApiServer, org: Org, **extra: object):
    body = {
        "provider": "twilio",
        "name": "Twilio EU",
        "credentials": {"account_sid": SID, "auth_token": TOKEN},
    }
    return api.call("POST", "/v1/connections", org, body={**body, **extra})


def _err(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


# ------------------------------------------------------------------------------- connections


def test_connection_secrets_are_write_only_and_masked(api: ApiServer) -> None:
    org = api.org()
    sip = {
        "host": "acme.pstn.twilio.com",
        "username": "trunkuser",
        "password": "s3cret-pass",
        "register": True,
    }
    resp = _twilio(api, org, sip=sip, inbound_addresses=["54.172.60.0/30", "2600:1f18::/32", "54.244.51.3"])
    assert resp.status_code == 201, resp.text
    con = resp.json()
    assert con["credentials"] == {"account_sid": SID, "auth_token": "••••cdef"}
    assert con["sip"] == {
        "host": "acme.pstn.twilio.com",
        "username": "trunkuser",
        "password": "••••",
        "register": True,
    }
    for listed in (
        api.call("GET", f"/v1/connections/{con['id']}", org).json(),
        api.call("GET", "/v1/connections", org).json()["data"][0],
    ):
        text = json.dumps(listed)
        assert TOKEN not in text and "s3cret-pass" not in text
    # Stored for the renderer, unmasked.
    row = api.store.query_one("SELECT credentials, sip FROM connections WHERE id = ?", (con["id"],))
    assert json.loads(row["credentials"])["auth_token"] == TOKEN
    assert json.loads(row["sip"])["password"] == "s3cret-pass"


def test_connection_credentials_validated_per_provider(api: ApiServer) -> None:
    org = api.org()
    bad_sid = {
        "provider": "twilio",
        "name": "t",
        "credentials": {"account_sid": "AB" + "0" * 32, "auth_token": TOKEN},
    }
    assert (
        _err(api.call("POST", "/v1/connections", org, body=bad_sid), 400)["param"]
        == "credentials.account_sid"
    )
    short = {"provider": "twilio", "name": "t", "credentials": {"account_sid": SID, "auth_token": "abc"}}
    assert (
        _err(api.call("POST", "/v1/connections", org, body=short), 400)["param"] == "credentials.auth_token"
    )
    telnyx_with_twilio = {
        "provider": "telnyx",
        "name": "t",
        "credentials": {"account_sid": SID, "auth_token": TOKEN},
    }
    assert _err(api.call("POST", "/v1/connections", org, body=telnyx_with_twilio), 400)["param"].startswith(
        "credentials."
    )
    telnyx = {"provider": "telnyx", "name": "t", "credentials": {"api_key": "NOTAKEY"}}
    assert _err(api.call("POST", "/v1/connections", org, body=telnyx), 400)["param"] == "credentials.api_key"
    ok = {"provider": "telnyx", "name": "t", "credentials": {"api_key": "KEY0188ABCDEF_123456"}}
    assert api.call("POST", "/v1/connections", org, body=ok).json()["credentials"] == {"api_key": "••••3456"}
    # PATCH validates against the connection's own provider.
    cid = _twilio(api, org).json()["id"]
    err = _err(
        api.call(
            "PATCH", f"/v1/connections/{cid}", org, body={"credentials": {"api_key": "KEY0188ABCDEF_1"}}
        ),
        400,
    )
    assert err["param"].startswith("credentials.")
    assert api.store.query_one("SELECT COUNT(*) FROM connections")[0] == 2  # nothing half-written


def test_inbound_addresses_error_names_the_entry(api: ApiServer) -> None:
    org = api.org()
    err = _err(_twilio(api, org, inbound_addresses=["10.0.0.1", "10.0.0.0/8", "not-an-ip"]), 400)
    assert err["param"] == "inbound_addresses[2]" and "not-an-ip" in err["message"]
    err = _err(_twilio(api, org, inbound_addresses=["10.0.0.1/8"]), 400)  # host bits set
    assert err["param"] == "inbound_addresses[0]"


def test_one_default_per_org(api: ApiServer) -> None:
    org = api.org()
    first = _twilio(api, org, is_default=True).json()
    second = _twilio(api, org, is_default=True).json()
    assert api.call("GET", f"/v1/connections/{first['id']}", org).json()["is_default"] is False
    assert second["is_default"] is True
    api.call("PATCH", f"/v1/connections/{first['id']}", org, body={"is_default": True})
    defaults = [c["id"] for c in api.call("GET", "/v1/connections", org).json()["data"] if c["is_default"]]
    assert defaults == [first["id"]]
    # Another org's default is independent.
    other = api.org("Other")
    assert _twilio(api, other, is_default=True).json()["is_default"] is True
    assert api.call("GET", f"/v1/connections/{first['id']}", org).json()["is_default"] is True


def test_patch_connection_and_remove_gateway(api: ApiServer) -> None:
    org = api.org()
    sip = {"host": "sip.telnyx.com:5061", "username": "u", "password": "p"}
    con = _twilio(api, org, sip=sip).json()
    assert con["sip"]["register"] is False
    patched = api.call(
        "PATCH", f"/v1/connections/{con['id']}", org, body={"name": "Renamed", "sip": None}
    ).json()
    assert (patched["name"], patched["sip"]) == ("Renamed", None)
    assert (
        _err(api.call("PATCH", f"/v1/connections/{con['id']}", org, body={"provider": "telnyx"}), 400)[
            "param"
        ]
        == "provider"
    )
    bad_host = {"sip": {"host": "bad host", "username": "u", "password": "p"}}
    assert (
        _err(api.call("PATCH", f"/v1/connections/{con['id']}", org, body=bad_host), 400)["param"]
        == "sip.host"
    )


def test_delete_refused_while_an_active_number_uses_it(api: ApiServer) -> None:
    org = api.org()
    con = _twilio(api, org, is_default=True).json()
    pn = api.call(
        "POST", "/v1/phone_numbers", org, body={"number": "+442071234567", "connection_id": con["id"]}
    ).json()
    err = _err(api.call("DELETE", f"/v1/connections/{con['id']}", org), 409)
    assert err["code"] == "connection_in_use"
    api.call("PATCH", f"/v1/phone_numbers/{pn['id']}", org, body={"status": "released"})
    deleted = api.call("DELETE", f"/v1/connections/{con['id']}", org).json()
    assert (deleted["status"], deleted["is_default"]) == ("deleted", False)
    assert _err(api.call("GET", f"/v1/connections/{con['id']}", org), 404)["code"] == "resource_missing"
    assert api.call("GET", "/v1/connections", org).json()["data"] == []
    # A new default can be set after the old one was deleted.
    assert _twilio(api, org, is_default=True).json()["is_default"] is True


# ------------------------------------------------------------------------------ phone numbers


def test_phone_numbers_validation_uniqueness_and_release(api: ApiServer) -> None:
    a, b = api.org("A"), api.org("B")
    con_a = _twilio(api, a).json()
    con_b = _twilio(api, b).json()
    for bad in ("4930123", "+0123", "+12345678901234567", "+1 415 555"):
        err = _err(
            api.call("POST", "/v1/phone_numbers", a, body={"number": bad, "connection_id": con_a["id"]}), 400
        )
        assert err["param"] == "number", bad
    pn = api.call(
        "POST", "/v1/phone_numbers", a, body={"number": "+14155550123", "connection_id": con_a["id"]}
    )
    assert pn.status_code == 201
    assert pn.json()["provider"] == "twilio" and pn.json()["status"] == "active"
    # Unique across the install, whoever asks.
    for org, con in ((a, con_a), (b, con_b)):
        err = _err(
            api.call(
                "POST", "/v1/phone_numbers", org, body={"number": "+14155550123", "connection_id": con["id"]}
            ),
            409,
        )
        assert (err["code"], err["param"]) == ("phone_number_taken", "number")
    err = _err(
        api.call("POST", "/v1/phone_numbers", a, body={"number": "+14155550124", "connection_id": "pcon_x"}),
        400,
    )
    assert (err["code"], err["param"]) == ("connection_not_found", "connection_id")
    # Released numbers can be claimed by another org.
    api.call("PATCH", f"/v1/phone_numbers/{pn.json()['id']}", a, body={"status": "released"})
    claimed = api.call(
        "POST", "/v1/phone_numbers", b, body={"number": "+14155550123", "connection_id": con_b["id"]}
    )
    assert claimed.status_code == 201, claimed.text
    assert api.call("GET", "/v1/phone_numbers", a).json()["data"] == []


def test_number_cannot_move_to_a_disabled_connection(api: ApiServer) -> None:
    org = api.org()
    con = _twilio(api, org).json()
    off = _twilio(api, org, status="disabled").json()
    pn = api.call(
        "POST", "/v1/phone_numbers", org, body={"number": "+14155550125", "connection_id": con["id"]}
    ).json()
    err = _err(
        api.call("PATCH", f"/v1/phone_numbers/{pn['id']}", org, body={"connection_id": off["id"]}), 400
    )
    assert err["param"] == "connection_id"


# ------------------------------------------------------------------------------ SIP settings


def test_sip_defaults_and_credentials_shown_once(api: ApiServer) -> None:
    org = api.org()
    sip = api.call("GET", "/v1/sip", org).json()
    assert sip["enabled"] is False and sip["credentials_set"] is False
    assert sip["domain"] == SIP_DOMAIN
    assert sip["allowed_transports"] == ["tls", "tcp", "udp"]
    assert sip["allowed_codecs"] == ["OPUS", "G722", "PCMU", "PCMA"]
    assert sip["session_defaults"] == {
        "mode": "bidirectional_translation",
        "region": "eu",
        "source_language": "auto",
        "target_language": "auto",
    }
    enabled = api.call("PATCH", "/v1/sip", org, body={"enabled": True}).json()
    assert enabled["enabled"] is True and enabled["credentials_set"] is False

    resp = api.call("POST", "/v1/sip/credentials", org)
    assert resp.status_code == 201
    assert resp.headers["Cache-Control"] == "no-store"
    creds = resp.json()
    assert set(creds) == {"object", "username", "domain", "password"}
    assert creds["username"] == sip["username"] and creds["domain"] == SIP_DOMAIN
    assert len(creds["password"]) >= 24
    expected = hashlib.md5(f"{creds['username']}:{SIP_DOMAIN}:{creds['password']}".encode()).hexdigest()
    row = api.store.query_one("SELECT * FROM sip_settings WHERE org_id = ?", (org.id,))
    assert row["a1_hash"] == expected
    assert creds["password"] not in json.dumps(dict(row))
    after = api.call("GET", "/v1/sip", org)
    assert after.json()["credentials_set"] is True and creds["password"] not in after.text
    # Regenerating replaces the password.
    again = api.call("POST", "/v1/sip/credentials", org, headers={"Idempotency-Key": "k1"}).json()
    assert again["password"] != creds["password"]
    assert api.store.query_one("SELECT a1_hash FROM sip_settings WHERE org_id = ?", (org.id,))[0] != expected
    # The password is never persisted for idempotent replay.
    assert api.store.query_one("SELECT COUNT(*) FROM idempotency_keys")[0] == 0


def test_sip_patch_validation(api: ApiServer) -> None:
    org = api.org()

    def patch(body: dict) -> dict:
        return _err(api.call("PATCH", "/v1/sip", org, body=body), 400)

    assert patch({"ip_allowlist": ["192.0.2.10", "300.1.1.1"]})["param"] == "ip_allowlist[1]"
    assert patch({"allowed_transports": []})["param"] == "allowed_transports"
    assert patch({"allowed_transports": ["tls", "ws"]})["param"] == "allowed_transports[1]"
    assert patch({"allowed_codecs": ["PCMU", "PCMU"]})["param"] == "allowed_codecs"
    assert patch({"allowed_codecs": ["G729"]})["param"] == "allowed_codecs[0]"
    assert patch({"max_concurrent_calls": 0})["param"] == "max_concurrent_calls"
    assert patch({"max_concurrent_calls": "5"})["param"] == "max_concurrent_calls"
    assert patch({"session_defaults": {"region": "mars"}})["param"] == "session_defaults.region"
    err = patch({"require_tls": True})
    assert err["param"] == "require_tls" and '["tls"]' in err["message"]
    assert patch({"require_tls": True, "allowed_transports": ["tls", "tcp"]})["param"] == "allowed_transports"
    assert api.call("GET", "/v1/sip", org).json()["require_tls"] is False  # nothing half-written

    ok = api.call(
        "PATCH",
        "/v1/sip",
        org,
        body={
            "require_tls": True,
            "allowed_transports": ["tls"],
            "require_srtp": True,
            "ip_allowlist": ["203.0.113.0/24", "2001:db8::1"],
            "allowed_codecs": ["PCMA", "OPUS"],
            "max_concurrent_calls": 3,
            "session_defaults": {"target_language": "de"},
        },
    ).json()
    assert ok["allowed_codecs"] == ["PCMA", "OPUS"]  # preference order kept
    assert ok["ip_allowlist"] == ["203.0.113.0/24", "2001:db8::1"]
    assert (ok["require_tls"], ok["require_srtp"], ok["max_concurrent_calls"]) == (True, True, 3)
    assert ok["session_defaults"]["target_language"] == "de" and ok["session_defaults"]["region"] == "eu"
    # While TLS is required, transports cannot widen.
    assert patch({"allowed_transports": ["tls", "udp"]})["param"] == "allowed_transports"


def test_listeners_hear_every_telephony_change(api: ApiServer) -> None:
    org = api.org()
    con = _twilio(api, org).json()
    pn = api.call(
        "POST", "/v1/phone_numbers", org, body={"number": "+14155550126", "connection_id": con["id"]}
    ).json()
    api.call("PATCH", f"/v1/phone_numbers/{pn['id']}", org, body={"status": "released"})
    api.call("PATCH", f"/v1/connections/{con['id']}", org, body={"name": "n"})
    api.call("DELETE", f"/v1/connections/{con['id']}", org)
    api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    api.call("POST", "/v1/sip/credentials", org)
    assert api.notified == [org.id] * 7
    # Failed changes notify nobody.
    api.call("PATCH", "/v1/sip", org, body={"max_concurrent_calls": 0})
    api.call("GET", "/v1/sip", org)
    assert len(api.notified) == 7


def test_numbers_and_connections_paginate_like_sessions(api: ApiServer) -> None:
    org = api.org()
    cons = [_twilio(api, org).json()["id"] for _ in range(3)]
    _twilio(api, org, status="disabled")
    nums = []
    for i in range(5):
        body = {"number": f"+1415555020{i}", "connection_id": cons[0]}
        nums.append(api.call("POST", "/v1/phone_numbers", org, body=body).json()["id"])
    api.call("PATCH", f"/v1/phone_numbers/{nums[1]}", org, body={"status": "released"})

    def walk(path: str) -> list[str]:
        seen, cursor = [], None
        while True:
            page = api.call(
                "GET",
                f"{path}{'&' if '?' in path else '?'}limit=2"
                + (f"&starting_after={cursor}" if cursor else ""),
                org,
            ).json()
            seen += [item["id"] for item in page["data"]]
            if not page["has_more"]:
                return seen
            cursor = page["data"][-1]["id"]

    assert walk("/v1/phone_numbers") == list(reversed(nums))
    assert walk("/v1/phone_numbers?status=active") == [n for n in reversed(nums) if n != nums[1]]
    assert walk("/v1/connections?status=active") == list(reversed(cons))
    assert len(walk("/v1/connections")) == 4
    for path in (
        "/v1/phone_numbers?limit=0",
        "/v1/connections?status=deleted",
        "/v1/connections?starting_after=pcon_x",
    ):
        assert api.call("GET", path, org).status_code == 400, path

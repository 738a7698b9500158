"""Sessions: telephony resolution (each step and each error), defaults, ending, transcript, listing."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from controller.api.janitor import sweep
from controller.domain import sessions as sessions_domain
from controller.domain.timeutil import now
from controller.store import Store
from tests.api.server import SIP_DOMAIN, ApiServer, Org, start_api

TWILIO = {"account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": "fedcba9876543210" * 2}


def _connection(api: ApiServer, org: Org, provider: str = "twilio", **extra: object) -> dict:
    creds = TWILIO if provider == "twilio" else {"api_key": "KEY01234567_abcdef"}
    body = {"provider": provider, "name": f"{provider} trunk", "credentials": creds, **extra}
    resp = api.call("POST", "/v1/connections", org, body=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _number(api: ApiServer, org: Org, number: str, connection_id: str) -> dict:
    resp = api.call("POST", "/v1/phone_numbers", org, body={"number": number, "connection_id": connection_id})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _session(api: ApiServer, org: Org, body: dict | None = None, status: int = 201) -> dict:
    resp = api.call("POST", "/v1/sessions", org, body=body if body is not None else {})
    assert resp.status_code == status, resp.text
    return resp.json()


def _routing_error(api: ApiServer, org: Org, body: dict, code: str, param: str) -> None:
    err = _session(api, org, body, status=422)["error"]
    assert (err["code"], err["param"]) == (code, param)


# ------------------------------------------------------------------------ resolution steps


def test_step1_connection_id_wins_and_carries_direction(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, "twilio", is_default=True)
    telnyx = _connection(api, org, "telnyx")
    s = _session(api, org, {"routing": {"connection_id": telnyx["id"], "direction": "outbound"}})
    assert (s["provider"], s["connection_id"], s["direction"], s["phone_number"], s["sip"]) == (
        "telnyx",
        telnyx["id"],
        "outbound",
        None,
        None,
    )
    assert s["id"].startswith("sess_") and s["object"] == "session" and s["status"] == "created"


def test_step2_sip_session_uses_defaults_and_allowed_transports(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, is_default=True)
    patch = {
        "enabled": True,
        "allowed_transports": ["tls", "tcp"],
        "session_defaults": {"mode": "assistive_translation", "region": "us", "source_language": "es"},
    }
    assert api.call("PATCH", "/v1/sip", org, body=patch).status_code == 200
    s = _session(api, org, {"routing": {"type": "sip"}, "metadata": {"crm": {"ticket": 42}}})
    assert s["provider"] == "sip"
    assert s["sip"] == {"uri": f"sip:{s['id']}@{SIP_DOMAIN}", "transports": ["tls", "tcp"]}
    assert (s["mode"], s["region"], s["source_language"], s["target_language"]) == (
        "assistive_translation",
        "us",
        "es",
        "auto",
    )
    assert s["metadata"] == {"crm": {"ticket": 42}}
    assert s["connection_id"] is None
    # Explicit values win over the SIP defaults.
    s2 = _session(
        api, org, {"routing": {"type": "sip"}, "mode": "bidirectional_translation", "target_language": "es"}
    )
    assert (s2["mode"], s2["source_language"], s2["target_language"]) == (
        "bidirectional_translation",
        "es",
        "es",
    )


def test_step3_managed_number_takes_its_connections_provider(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, "twilio", is_default=True)
    telnyx = _connection(api, org, "telnyx")
    _number(api, org, "+4930123456", telnyx["id"])
    s = _session(api, org, {"routing": {"phone_number": "+4930123456"}})
    assert (s["provider"], s["connection_id"], s["phone_number"]) == ("telnyx", telnyx["id"], "+4930123456")
    assert (s["mode"], s["region"], s["source_language"], s["target_language"]) == (
        "bidirectional_translation",
        "eu",
        "auto",
        "auto",
    )


def test_step4_default_connection(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, "telnyx")
    default = _connection(api, org, "twilio", is_default=True)
    s = _session(api, org, {"source_language": "en", "target_language": "en"})
    assert (s["provider"], s["connection_id"], s["phone_number"]) == ("twilio", default["id"], None)


def test_step5_no_default_provider(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, "twilio")  # not the default
    _routing_error(api, org, {}, "no_default_provider", "routing")
    # A disabled default does not count either.
    d = _connection(api, org, "telnyx", is_default=True, status="disabled")
    assert d["is_default"] is True
    _routing_error(api, org, {}, "no_default_provider", "routing")


def test_routing_errors(api: ApiServer) -> None:
    org = api.org()
    con = _connection(api, org, is_default=True)
    _routing_error(
        api, org, {"routing": {"connection_id": "pcon_nope"}}, "connection_not_found", "routing.connection_id"
    )
    api.call("PATCH", f"/v1/connections/{con['id']}", org, body={"status": "disabled"})
    _routing_error(
        api, org, {"routing": {"connection_id": con["id"]}}, "connection_not_found", "routing.connection_id"
    )
    _routing_error(api, org, {"routing": {"type": "sip"}}, "sip_not_enabled", "routing.type")
    _routing_error(
        api,
        org,
        {"routing": {"phone_number": "+15550001111"}},
        "phone_number_not_found",
        "routing.phone_number",
    )


def test_released_number_is_not_found(api: ApiServer) -> None:
    org = api.org()
    con = _connection(api, org)
    pn = _number(api, org, "+4930123457", con["id"])
    api.call("PATCH", f"/v1/phone_numbers/{pn['id']}", org, body={"status": "released"})
    _routing_error(
        api,
        org,
        {"routing": {"phone_number": "+4930123457"}},
        "phone_number_not_found",
        "routing.phone_number",
    )


def test_routing_takes_at_most_one_method(api: ApiServer) -> None:
    org = api.org()
    err = _session(api, org, {"routing": {"type": "sip", "phone_number": "+4930123457"}}, 400)["error"]
    assert err["param"] == "routing"
    err = _session(api, org, {"routing": {"type": "sip", "direction": "inbound"}}, 400)["error"]
    assert err["param"] == "routing.direction"


def test_unsupported_language_pair(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def check(source: str, target: str) -> str | None:
        asked.append((source, target))
        return "no en→xh translation model installed" if target == "xh" else None

    monkeypatch.setattr(sessions_domain, "_pair_check", check)
    monkeypatch.setattr(sessions_domain, "_pair_check_loaded", True)
    org = api.org()
    _connection(api, org, is_default=True)
    err = _session(api, org, {"source_language": "en", "target_language": "xh"}, 422)["error"]
    assert (err["code"], err["param"]) == ("language_pair_not_supported", "target_language")
    assert "xh" in err["message"]
    _session(api, org, {"source_language": "en", "target_language": "es"})
    _session(
        api, org, {"source_language": "auto", "target_language": "xh"}
    )  # detection: nothing to check yet
    assert asked == [("en", "xh"), ("en", "es")]
    assert api.store.query_one("SELECT COUNT(*) FROM sessions")[0] == 2


# ------------------------------------------------------------------------------ end, transcript


class RecordingCallControl:
    def __init__(self, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.entered = threading.Event()
        self.gate = gate

    def hangup(self, call_uuids: Sequence[str], cause: str = "NORMAL_CLEARING") -> list[str]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.calls.append(list(call_uuids))
        if self.fail:
            raise ConnectionRefusedError("ESL down")
        return list(call_uuids)

    def originate(self, session_id: str, leg_id: str, role: str, to: str, gateway: str) -> str:
        raise NotImplementedError


def add_leg(store: Store, session_id: str, org_id: str, uuid: str, ended: bool = False) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status, created_at,"
            " ended_at) VALUES (?,?,?,?, 'customer', 'inbound', 'streaming', ?, ?)",
            (f"leg_{uuid.replace('-', '')}", session_id, org_id, uuid, now(), now() if ended else None),
        )


@pytest.fixture
def with_call_control(store: Store):
    cc = RecordingCallControl()
    api, server = start_api(store, call_control=cc)
    yield api, server, cc
    server.stop()


def test_end_hangs_up_live_legs_and_is_idempotent(with_call_control) -> None:
    api, _server, cc = with_call_control
    org = api.org()
    _connection(api, org, is_default=True)
    s = _session(api, org)
    add_leg(api.store, s["id"], org.id, "uuid-live-1")
    add_leg(api.store, s["id"], org.id, "uuid-gone", ended=True)
    add_leg(api.store, s["id"], org.id, "uuid-live-2")
    resp = api.call("POST", f"/v1/sessions/{s['id']}/end", org)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["end_reason"]) == ("ended", "api")
    assert body["ended_at"] is not None
    assert cc.calls == [["uuid-live-1", "uuid-live-2"]]
    again = api.call("POST", f"/v1/sessions/{s['id']}/end", org).json()
    assert again["ended_at"] == body["ended_at"] and again["status"] == "ended"


def test_end_without_call_control_or_with_failing_esl_still_ends(api: ApiServer, store: Store) -> None:
    org = api.org()
    _connection(api, org, is_default=True)
    s = _session(api, org)
    add_leg(store, s["id"], org.id, "uuid-a")
    assert api.call("POST", f"/v1/sessions/{s['id']}/end", org).json()["status"] == "ended"

    failing = RecordingCallControl(fail=True)
    api2, server2 = start_api(store, call_control=failing)
    try:
        s2 = _session(api2, org)
        add_leg(store, s2["id"], org.id, "uuid-b")
        assert api2.call("POST", f"/v1/sessions/{s2['id']}/end", org).json()["status"] == "ended"
        assert failing.calls == [["uuid-b"]]
    finally:
        server2.stop()


def test_transcript_turns(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, is_default=True)
    s = _session(api, org, {"source_language": "es", "target_language": "en"})
    assert api.call("GET", f"/v1/sessions/{s['id']}/transcript", org).json() == {
        "object": "transcript",
        "session_id": s["id"],
        "turns": [],
    }
    with api.store.transaction() as conn:
        insert = (
            "INSERT INTO transcript_turns (session_id, sequence, speaker, language, text,"
            " translation_language, translation_text, started_at, ended_at, created_at, translation_path)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        conn.execute(
            insert,
            (s["id"], 2, "agent", "en", "How can I help?", "es", "¿Cómo puedo ayudar?",
             1700000005.0, 1700000006.0, 1700000006.5, "apertium"),
        )
        conn.execute(
            insert,
            (s["id"], 1, "customer", "es", "Hola", None, None, 1700000000.25, 1700000001.0, 1700000001.5,
             None),
        )
    turns = api.call("GET", f"/v1/sessions/{s['id']}/transcript", org).json()["turns"]
    assert turns == [
        {
            "sequence": 1,
            "speaker": "customer",
            "language": "es",
            "text": "Hola",
            "translation": None,
            "timestamp": "2023-11-14T22:13:20.250Z",
        },
        {
            "sequence": 2,
            "speaker": "agent",
            "language": "en",
            "text": "How can I help?",
            "translation": {"language": "es", "text": "¿Cómo puedo ayudar?", "path": "apertium"},
            "timestamp": "2023-11-14T22:13:25.000Z",
        },
    ]


# ---------------------------------------------------------------------------------- listing


def test_cursor_pagination_and_status_filter(api: ApiServer) -> None:
    org = api.org()
    _connection(api, org, is_default=True)
    ids = [_session(api, org)["id"] for _ in range(7)]
    api.call("POST", f"/v1/sessions/{ids[3]}/end", org)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        q = "/v1/sessions?limit=3" + (f"&starting_after={cursor}" if cursor else "")
        page = api.call("GET", q, org).json()
        assert page["object"] == "list"
        seen += [s["id"] for s in page["data"]]
        pages += 1
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first, each exactly once
    default = api.call("GET", "/v1/sessions", org).json()
    assert len(default["data"]) == 7 and default["has_more"] is False
    ended = api.call("GET", "/v1/sessions?status=ended", org).json()["data"]
    assert [s["id"] for s in ended] == [ids[3]]
    for bad, param in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("status=gone", "status"),
        ("starting_after=sess_nope", "starting_after"),
    ):
        resp = api.call("GET", f"/v1/sessions?{bad}", org)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param, bad


# ---------------------------------------------------------------------------------- janitor


def test_janitor_ends_sessions_idle_for_30_minutes(with_call_control) -> None:
    api, server, cc = with_call_control
    org = api.org()
    _connection(api, org, is_default=True)
    fresh = _session(api, org)["id"]
    stale = _session(api, org)["id"]
    heard = _session(api, org)["id"]
    t = now()
    with api.store.transaction() as conn:
        conn.execute("UPDATE sessions SET created_at = ? WHERE id IN (?, ?)", (t - 3600, stale, heard))
        # Audio 10 minutes ago keeps a session alive even though it was created an hour ago.
        conn.execute(
            "UPDATE sessions SET last_audio_at = ?, status = 'active' WHERE id = ?", (t - 600, heard)
        )
    add_leg(api.store, stale, org.id, "uuid-stale")
    ended = server.run(sweep(api.app, at=t))
    assert ended == [stale]
    assert cc.calls == [["uuid-stale"]]
    got = api.call("GET", f"/v1/sessions/{stale}", org).json()
    assert (got["status"], got["end_reason"]) == ("ended", "inactivity")
    for sid in (fresh, heard):
        assert api.call("GET", f"/v1/sessions/{sid}", org).json()["status"] != "ended"
    # 31 minutes after the last audio, the active one goes too.
    assert server.run(sweep(api.app, at=t + 21 * 60 + 1)) == [heard]
    assert server.run(sweep(api.app, at=t + 21 * 60 + 1)) == []


def test_create_session_in_joins_the_callers_transaction(api: ApiServer) -> None:
    """The call controller creates sessions for managed-number calls inside its admission transaction."""
    from controller.domain.requests import Routing, SessionCreate

    org = api.org()
    con = _connection(api, org, "telnyx")
    _number(api, org, "+4930123458", con["id"])
    body = SessionCreate(routing=Routing(phone_number="+4930123458", direction="inbound"))
    with pytest.raises(RuntimeError), api.store.transaction() as conn:
        made = sessions_domain.create_session_in(conn, org.id, body)
        assert made.provider == "telnyx" and made.direction == "inbound"
        raise RuntimeError("admission refused the call")
    assert api.store.query_one("SELECT COUNT(*) FROM sessions")[0] == 0  # rolled back with the caller
    with api.store.transaction() as conn:
        made = sessions_domain.create_session_in(conn, org.id, body)
    assert sessions_domain.get_session(api.store, org.id, made.id).phone_number == "+4930123458"

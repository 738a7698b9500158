"""POST /v1/sessions/{id}/dial on a real API server (127.0.0.1) with a recording CallControl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
import requests

from controller.api.server import create_app
from controller.calls.admission import Admitted, Rejected, admit
from controller.calls.channel import ChannelInfo
from controller.calls.esl_control import EslCallControl
from controller.domain import api_keys, organizations
from controller.ids import new_id
from controller.settings import Settings
from controller.store import Store
from tests.api.server import RunningServer
from tests.calls.factories import live_leg_count, make_session
from tests.fsdouble.fsstrings import separate_string


@dataclass
class RecordingCallControl:
    fail: bool = False
    originated: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def hangup(self, call_uuids: Sequence[str], cause: str = "NORMAL_CLEARING") -> list[str]:
        return list(call_uuids)

    def originate(self, session_id: str, leg_id: str, role: str, to: str, gateway: str) -> str:
        if self.fail:
            raise RuntimeError("-ERR no such gateway.")
        self.originated.append((session_id, leg_id, role, to, gateway))
        return "uuid"


@dataclass
class Api:
    base: str
    key: str
    org: str
    control: RecordingCallControl

    def dial(self, session_id: str, body: object, key: str | None = None) -> requests.Response:
        return requests.post(f"{self.base}/v1/sessions/{session_id}/dial", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {key or self.key}"})


def _connection(store: Store, org: str, *, sip: bool = True) -> str:
    cid = new_id("pcon")
    now = time.time()
    sip_json = json.dumps({"host": "sip.provider.example", "username": "u", "password": "p",
                           "register": False}) if sip else None
    store.conn.execute(
        "INSERT INTO connections (id, org_id, provider, name, credentials, sip, status, created_at,"
        " updated_at) VALUES (?, ?, 'telnyx', 'trunk', '{}', ?, 'active', ?, ?)",
        (cid, org, sip_json, now, now))
    return cid


def _cap(store: Store, org: str, cap: int) -> None:
    store.conn.execute("UPDATE sip_settings SET max_concurrent_calls = ? WHERE org_id = ?", (cap, org))


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    control = RecordingCallControl()
    app = create_app(Settings(sip_domain="sip.test.example", db_path=store.path), store, call_control=control)
    server = RunningServer(app)
    org = organizations.create_organization(store, "Acme")
    key = api_keys.create_key(store, org.id).secret
    yield Api(f"http://127.0.0.1:{server.port}", key, org.id, control)
    server.stop()


def test_dial_reserves_a_leg_and_originates_through_the_sessions_gateway(store: Store, api: Api) -> None:
    cid = _connection(store, api.org)
    sid = make_session(store, api.org, connection_id=cid, phone_number="+4930111")
    resp = api.dial(sid, {"to": "+4930123456"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "dialing" and body["role"] == "customer" and body["gateway"] == cid
    assert api.control.originated == [(sid, body["id"], "customer", "+4930123456", cid)]
    leg = store.query_one("SELECT * FROM call_legs WHERE id = ?", (body["id"],))
    assert leg is not None and leg["status"] == "dialing" and leg["direction"] == "outbound"
    assert leg["call_uuid"] == body["call_uuid"] and leg["ended_at"] is None
    second = api.dial(sid, {"to": "+4930999", "role": "agent"})
    assert second.status_code == 202 and second.json()["role"] == "agent"
    third = api.dial(sid, {"to": "+4930888"})
    assert third.status_code == 409 and third.json()["error"]["code"] == "session_full"


def test_originated_leg_is_admitted_on_arrival_as_its_reserved_leg(store: Store, api: Api) -> None:
    cid = _connection(store, api.org)
    sid = make_session(store, api.org, connection_id=cid)
    body = api.dial(sid, {"to": "+4930123456", "role": "agent"}).json()
    channel = ChannelInfo.from_headers({
        "Unique-ID": body["call_uuid"], "Call-Direction": "outbound",
        "Caller-Destination-Number": "+4930123456", "variable_kallglot_session_id": sid,
        "variable_kallglot_leg_id": body["id"], "variable_kallglot_role": "agent",
    })
    result = admit(store, channel)
    assert isinstance(result, Admitted)
    assert (result.leg_id, result.session_id, result.role) == (body["id"], sid, "agent")
    assert live_leg_count(store) == 1
    # The same variables on an inbound call (a caller cannot set them, but be strict) are ignored.
    forged = ChannelInfo.from_headers({**dict(channel.headers), "Call-Direction": "inbound"})
    assert isinstance(admit(store, forged), Rejected)


def test_dial_errors_name_the_problem(store: Store, api: Api) -> None:
    cid = _connection(store, api.org)
    sid = make_session(store, api.org, connection_id=cid)
    bad = api.dial(sid, {"to": "030 1234"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "to"
    extra = api.dial(sid, {"to": "+4930123", "pin": "1"})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "pin"
    role = api.dial(sid, {"to": "+4930123", "role": "boss"})
    assert role.status_code == 400 and role.json()["error"]["param"] == "role"
    missing = api.dial("sess_01NOSUCH0000000000000000000", {"to": "+4930123"})
    assert missing.status_code == 404
    no_gw = make_session(store, api.org)  # a SIP session, and the org has no default connection
    resp = api.dial(no_gw, {"to": "+4930123"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "no_outbound_connection"
    ended = make_session(store, api.org, connection_id=cid, status="ended")
    assert api.dial(ended, {"to": "+4930123"}).json()["error"]["code"] == "session_ended"


def test_other_orgs_session_is_404(store: Store, api: Api) -> None:
    other = organizations.create_organization(store, "Other")
    cid = _connection(store, other.id)
    sid = make_session(store, other.id, connection_id=cid)
    assert api.dial(sid, {"to": "+4930123456"}).status_code == 404
    assert api.control.originated == []


def test_dial_at_the_cap_is_429_and_failed_originate_frees_the_slot(store: Store, api: Api) -> None:
    cid = _connection(store, api.org)
    _cap(store, api.org, 1)
    s1 = make_session(store, api.org, connection_id=cid)
    s2 = make_session(store, api.org, connection_id=cid)
    api.control.fail = True
    failed = api.dial(s1, {"to": "+4930123456"})
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "originate_failed"
    assert live_leg_count(store) == 0
    api.control.fail = False
    assert api.dial(s1, {"to": "+4930123456"}).status_code == 202
    capped = api.dial(s2, {"to": "+4930123456"})
    assert capped.status_code == 429 and capped.json()["error"]["code"] == "call_limit_reached"


def test_dial_string_carries_the_leg_variables_and_refuses_injection() -> None:
    control = EslCallControl(Settings(controller_address="controller:8084"), None)  # type: ignore[arg-type]
    dial = control.dial_string("sess_A1", "leg_B2", "0b6f-11", "agent", "+4930123", "pcon_C3")
    assert dial == ("{origination_uuid=0b6f-11,kallglot_session_id=sess_A1,kallglot_leg_id=leg_B2,"
                    "kallglot_role=agent,originate_timeout=60}sofia/gateway/pcon_C3/+4930123 "
                    "kallglot_attach XML kallglot")
    # As originate_function splits it (switch_separate_string, 10 slots): the call URL, then the
    # extension, dialplan and context the answered leg runs (the controller's socket is there).
    argv = separate_string(dial, 10)
    assert argv[1:] == ["kallglot_attach", "XML", "kallglot"] and argv[0] == dial.split(" ")[0]
    with_id = control.dial_string("sess_A1", "leg_B2", "0b6f-11", "agent", "+4930123", "pcon_C3",
                                  "+4930999")
    assert "originate_timeout=60,origination_caller_id_number=+4930999}" in with_id
    with pytest.raises(ValueError):
        control.dial_string("sess_A1", "leg_B2", "0b6f", "agent", "+4930", "pcon_C3", "+49,x=1")
    for args in (("sess_A1", "leg_B2", "0b6f", "agent", "+49 30", "pcon_C3"),
                 ("sess_A1}", "leg_B2", "0b6f", "agent", "+4930", "pcon_C3"),
                 ("sess_A1", "leg_B2", "0b6f", "agent", "+4930", "gw,x=1")):
        with pytest.raises(ValueError):
            control.dial_string(*args)

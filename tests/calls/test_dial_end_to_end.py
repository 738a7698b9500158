"""POST /v1/sessions/{id}/dial through EslCallControl to FreeSWITCH (played by the test), and the
originated leg arriving on the real controller's socket as the reserved leg."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import requests

from controller.api.server import create_app
from controller.calls.esl_control import EslCallControl
from controller.domain import api_keys, organizations
from controller.ids import new_id
from controller.settings import Settings
from controller.store import open_store
from tests.api.server import RunningServer
from tests.calls.controller_proc import ControllerProcess
from tests.calls.factories import live_leg_count, make_session
from tests.calls.wire_fs import ScriptedInboundEsl, WireCall


def test_dial_places_a_leg_that_the_controller_admits_answers_and_streams(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = open_store(db)
    esl = ScriptedInboundEsl()
    ctl = ControllerProcess(db, esl.port)
    settings = Settings(sip_domain="sip.test.example", db_path=db, esl_port=esl.port,
                        controller_address=f"{ctl.address[0]}:{ctl.address[1]}")
    app = create_app(settings, store, call_control=EslCallControl(settings, store, originate_timeout_s=5))
    server = RunningServer(app)
    try:
        org = organizations.create_organization(store, "Acme")
        key = api_keys.create_key(store, org.id).secret
        cid = new_id("pcon")
        store.conn.execute(
            "INSERT INTO connections (id, org_id, provider, name, credentials, sip, status, created_at,"
            " updated_at) VALUES (?, ?, 'twilio', 't', '{}', ?, 'active', 0, 0)",
            (cid, org.id, json.dumps({"host": "sip.example", "username": "u", "password": "p"})))
        store.conn.execute(
            "INSERT INTO phone_numbers (id, org_id, number, connection_id, status, created_at, updated_at)"
            " VALUES (?, ?, '+4930999000', ?, 'active', 0, 0)", (new_id("pn"), org.id, cid))
        sid = make_session(store, org.id, connection_id=cid)
        resp = requests.post(f"http://127.0.0.1:{server.port}/v1/sessions/{sid}/dial",
                             json={"to": "+4930123456", "role": "agent"},
                             headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert resp.status_code == 202, resp.text
        leg = resp.json()
        originate = next(r for r in esl.requests if r.startswith("bgapi originate "))
        found = re.match(r"bgapi originate \{([^}]*)\}sofia/gateway/(\S+)/(\S+) "
                         r"kallglot_attach XML kallglot$", originate)
        assert found is not None, originate
        variables = dict(v.split("=", 1) for v in found.group(1).split(","))
        assert found.group(2, 3) == (cid, "+4930123456")
        # The provider sees one of the organization's own numbers on that trunk as the caller.
        assert variables["origination_caller_id_number"] == "+4930999000"

        # The callee answers: the outbound channel runs kallglot_attach (socket to the controller).
        call = WireCall(ctl.address, {
            "Call-Direction": "outbound", "Caller-Destination-Number": "+4930123456",
            **{f"variable_{k}": v for k, v in variables.items()}}, call_uuid=variables["origination_uuid"])
        start = call.wait_command("api uuid_audio_stream")
        assert f"/v1/media/{sid}/{leg['id']} " in start.line
        assert json.loads(start.line.split(" ")[-1])["role"] == "agent"
        row = store.query_one("SELECT status, call_uuid FROM call_legs WHERE id = ?", (leg["id"],))
        assert row is not None and row["status"] in ("answered", "streaming")
        assert row["call_uuid"] == leg["call_uuid"] == call.uuid
        call.hangup()
        call.wait_closed()
        deadline = time.monotonic() + 10
        while live_leg_count(store) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live_leg_count(store) == 0
    finally:
        server.stop()
        ctl.stop()
        esl.close()
        store.close()

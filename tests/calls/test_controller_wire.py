"""The real ``kallglot controller`` subprocess over real ESL sockets, FreeSWITCH played by the test."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.store import Store, open_store
from tests.calls.controller_proc import ControllerProcess
from tests.calls.factories import live_leg_count, make_org, make_session, sip_username
from tests.calls.wire_fs import ScriptedInboundEsl, WireCall


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    path = tmp_path / "k.db"
    store = open_store(path)
    yield path, store
    store.close()


@pytest.fixture
def esl() -> Iterator[ScriptedInboundEsl]:
    server = ScriptedInboundEsl()
    yield server
    server.close()


def _vars(store: Store, org: str, dest: str, transport: str = "udp") -> dict[str, str]:
    user = sip_username(store, org)
    return {"Caller-Destination-Number": dest, "variable_sip_req_user": dest,
            "variable_sip_auth_username": user, "variable_sip_authorized": "true",
            "variable_kallglot_org_id": org, "variable_sip_via_protocol": transport,
            "variable_sip_network_ip": "127.0.0.1", "Caller-Caller-ID-Number": user}


def test_call_is_admitted_answered_streamed_played_and_ended(db: tuple[Path, Store],
                                                              esl: ScriptedInboundEsl) -> None:
    path, store = db
    org = make_org(store, codecs=("PCMU", "PCMA"))
    sid = make_session(store, org)
    ctl = ControllerProcess(path, esl.port)
    try:
        call = WireCall(ctl.address, _vars(store, org, sid))
        start = call.wait_command("api uuid_audio_stream")
        lines = call.command_lines()
        assert lines[:5] == [
            "connect", "myevents",
            "event plain CUSTOM mod_audio_stream::connect mod_audio_stream::play mod_audio_stream::error "
            "mod_audio_stream::disconnect mod_audio_stream::json",
            "linger", "sendmsg set absolute_codec_string=PCMU,PCMA"]
        # kallglot_session_id / _leg_id / _role on the channel (adoption after a controller loss)
        assert lines[5].startswith(f"api uuid_setvar_multi {call.uuid} kallglot_session_id={sid};")
        assert lines[6:8] == ["sendmsg answer", start.line]
        leg = store.query_one("SELECT * FROM call_legs WHERE call_uuid = ?", (call.uuid,))
        assert leg is not None
        words = start.line.split(" ")
        assert words[1:7] == ["uuid_audio_stream", call.uuid, "start",
                              f"ws://127.0.0.1:9/v1/media/{sid}/{leg['id']}", "mono", "16k"]
        assert json.loads(words[7])["leg_id"] == leg["id"]
        files = [f"/fs-temp/{call.uuid}_{i}.tmp.r16" for i in range(2)]
        for f in files:
            call.custom("mod_audio_stream::play", {"audioDataType": "raw", "sampleRate": 16000, "file": f})
        call.wait_command(f"api uuid_broadcast {call.uuid} {files[0]} aleg")
        call.finish_playback()
        call.wait_command(f"api uuid_broadcast {call.uuid} {files[1]} aleg")
        call.finish_playback()
        assert call.played == files
        call.hangup("NORMAL_CLEARING")
        call.wait_closed()
        assert call.exited
        wait_until(lambda: live_leg_count(store) == 0, "leg ended")
        row = store.query_one("SELECT status, sip_code, hangup_cause FROM call_legs WHERE call_uuid = ?",
                              (call.uuid,))
        assert row is not None and tuple(row) == ("ended", 200, "NORMAL_CLEARING")
        session = store.query_one("SELECT status FROM sessions WHERE id = ?", (sid,))
        assert session is not None and session["status"] == "ended"
        admissions = ctl.json_logs("call_admission")
        assert [(a["outcome"], a["sip_code"], a["session_id"]) for a in admissions] == [
            ("admitted", 200, sid)]
    finally:
        assert ctl.stop() == 0


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("disabled", 403), ("transport", 403), ("foreign", 404), ("ended", 410), ("busy", 486),
        ("cap", 503),
    ],
)
def test_each_rejection_reaches_the_wire_with_its_code(db: tuple[Path, Store], esl: ScriptedInboundEsl,
                                                       setup: str, code: int) -> None:
    path, store = db
    org = make_org(store, cap=1, enabled=setup != "disabled", transports=("tls",) if setup == "transport"
                   else ("tls", "tcp", "udp"))
    sid = make_session(store, org, status="ended" if setup == "ended" else "created")
    if setup == "foreign":
        sid = make_session(store, make_org(store))
    ctl = ControllerProcess(path, esl.port)
    holders: list[WireCall] = []
    try:
        if setup in ("busy", "cap"):
            held = sid if setup == "busy" else make_session(store, org)
            for _ in range(2 if setup == "busy" else 1):
                holders.append(WireCall(ctl.address, _vars(store, org, held)))
                holders[-1].wait_command("api uuid_audio_stream")
            if setup == "busy":
                sid = held
        call = WireCall(ctl.address, _vars(store, org, sid))
        call.wait_command(f"sendmsg respond {code}")
        call.wait_closed()
        lines = call.command_lines()
        expected_set = ["sendmsg set sip_rh_X-Call-Limit=1"] if code == 503 else []
        assert lines[4:] == [*expected_set, f"sendmsg respond {code}", "exit"]
        assert call.hangup_cause is not None
        for h in holders:
            h.hangup()
            h.wait_closed()
        wait_until(lambda: live_leg_count(store) == 0, "all legs ended")
    finally:
        assert ctl.stop() == 0


def test_srtp_required_and_no_crypto_is_488_at_answer(db: tuple[Path, Store],
                                                      esl: ScriptedInboundEsl) -> None:
    path, store = db
    org = make_org(store, require_srtp=True, codecs=("PCMU",))
    ctl = ControllerProcess(path, esl.port)
    try:
        call = WireCall(ctl.address, _vars(store, org, make_session(store, org)), offer_crypto=False)
        call.wait_closed()
        lines = call.command_lines()
        assert lines[4:6] == ["sendmsg set rtp_secure_media=mandatory",
                              "sendmsg set absolute_codec_string=PCMU"]
        assert lines[-2:] == ["sendmsg answer", "exit"]
        wait_until(lambda: live_leg_count(store) == 0, "leg ended")
        row = store.query_one("SELECT sip_code FROM call_legs WHERE call_uuid = ?", (call.uuid,))
        assert row is not None and row["sip_code"] == 488
    finally:
        ctl.stop()


def test_kill_9_then_restart_reconciles_the_leaked_slots(db: tuple[Path, Store],
                                                        esl: ScriptedInboundEsl) -> None:
    path, store = db
    org = make_org(store, cap=2)
    sessions = [make_session(store, org) for _ in range(2)]
    ctl = ControllerProcess(path, esl.port)
    calls = [WireCall(ctl.address, _vars(store, org, s)) for s in sessions]
    for c in calls:
        c.wait_command("api uuid_audio_stream")
        esl.live_uuids.add(c.uuid)
    ctl.kill9()
    # FreeSWITCH hung the first call up while no controller was there; the second is still up.
    esl.live_uuids.discard(calls[0].uuid)
    assert live_leg_count(store) == 2
    time.sleep(0.6)  # past KALLGLOT_RECONCILE_GRACE_S=0.5 for these legs
    restarted = ControllerProcess(path, esl.port)
    try:
        wait_until(lambda: live_leg_count(store) == 1, "reconciliation on start")
        row = store.query_one("SELECT hangup_cause FROM call_legs WHERE call_uuid = ?", (calls[0].uuid,))
        assert row is not None and row["hangup_cause"] == "LOST_CHANNEL"
        live = store.query_one("SELECT ended_at FROM call_legs WHERE call_uuid = ?", (calls[1].uuid,))
        assert live is not None and live["ended_at"] is None
        assert "api show calls as json" in esl.requests
    finally:
        restarted.stop()


def test_freeswitch_restart_reconnects_the_inbound_esl_and_reconciles(db: tuple[Path, Store],
                                                                      esl: ScriptedInboundEsl) -> None:
    """The inbound connection drops (FreeSWITCH restarting, its calls gone); the controller
    reconnects with backoff and reconciles at once, not only at the next periodic pass (30 s)."""
    path, store = db
    org = make_org(store)
    ctl = ControllerProcess(path, esl.port)
    try:
        call = WireCall(ctl.address, _vars(store, org, make_session(store, org)))
        call.wait_command("api uuid_audio_stream")
        esl.live_uuids.add(call.uuid)
        wait_until(lambda: esl.requests.count("api show calls as json") >= 1, "first reconciliation")
        time.sleep(0.6)  # the leg is now past KALLGLOT_RECONCILE_GRACE_S=0.5
        esl.live_uuids.clear()  # the restarted FreeSWITCH has no calls
        esl.restart(down_s=1.2)  # refused for a while: the controller backs off and retries
        wait_until(lambda: live_leg_count(store) == 0, "reconciliation after the reconnect")
        row = store.query_one("SELECT hangup_cause FROM call_legs WHERE call_uuid = ?", (call.uuid,))
        assert row is not None and row["hangup_cause"] == "LOST_CHANNEL"
        assert sum(1 for r in esl.requests if r.startswith("auth ")) >= 2
        assert len(ctl.json_logs("esl_connected")) >= 2
        assert ctl.json_logs("esl_connect_failed")  # refused while "FreeSWITCH" was down
    finally:
        ctl.stop()


def test_50_simultaneous_calls_against_cap_5(db: tuple[Path, Store], esl: ScriptedInboundEsl) -> None:
    path, store = db
    org = make_org(store, cap=5)
    sessions = [make_session(store, org) for _ in range(50)]
    ctl = ControllerProcess(path, esl.port)
    try:
        calls = [WireCall(ctl.address, _vars(store, org, s)) for s in sessions]

        def settled(c: WireCall) -> bool:
            lines = c.command_lines()
            return any(x.startswith(("sendmsg respond", "api uuid_audio_stream")) for x in lines)

        wait_until(lambda: all(settled(c) for c in calls), "every call answered or rejected", timeout=60)
        answered = [c for c in calls if any(x.startswith("api uuid_audio_stream") for x in c.command_lines())]
        rejected = [c for c in calls if "sendmsg respond 503" in c.command_lines()]
        assert len(answered) == 5 and len(rejected) == 45
        for c in rejected:
            c.wait_closed()
            assert "sendmsg set sip_rh_X-Call-Limit=5" in c.command_lines()
        assert live_leg_count(store) == 5
        for c in answered:
            c.hangup()
        for c in answered:
            c.wait_closed()
        wait_until(lambda: live_leg_count(store) == 0, "all legs ended")
        outcomes = [(a["outcome"], a["sip_code"]) for a in ctl.json_logs("call_admission")]
        assert sorted(outcomes) == sorted([("admitted", 200)] * 5 + [("rejected", 503)] * 45)
    finally:
        assert ctl.stop() == 0


def test_sigterm_hands_live_calls_over_without_ending_them(db: tuple[Path, Store],
                                                            esl: ScriptedInboundEsl) -> None:
    path, store = db
    org = make_org(store)
    ctl = ControllerProcess(path, esl.port)
    call = WireCall(ctl.address, _vars(store, org, make_session(store, org)))
    call.wait_command("api uuid_audio_stream")
    assert ctl.stop() == 0
    call.wait_closed()
    # No hangup was sent: the socket just closed (FreeSWITCH parks the call for the next
    # controller), and the leg still holds its call slot.
    assert not [line for line in call.command_lines() if "hangup" in line or "uuid_kill" in line]
    assert call.command_lines()[-1] == "exit"
    assert live_leg_count(store) == 1
    assert ctl.json_logs("call_ended") == []
    handed = ctl.json_logs("call_handed_over")
    assert len(handed) == 1 and handed[0]["call_uuid"] == call.uuid

"""Call quality per leg: FreeSWITCH's RTP statistics on CHANNEL_HANGUP_COMPLETE, stored with the
leg, shown in the session resource and in ``session.ended``; RTP timeouts (MEDIA_TIMEOUT)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.calls.quality import quality_from_event
from controller.domain.sessions import get_session
from controller.esl.protocol import FrameParser, decode_event_plain
from controller.ids import new_id
from controller.store import Store, open_store
from tests.calls.factories import make_org, make_session
from tests.calls.stack import CallStack, set_sip_password
from tests.calls.test_integration_fsdouble import wait_until
from tests.fsdouble.fixtures import fs_records

PASSWORD = "correct-horse-9"


def _hangup_complete(name: str):
    for raw in fs_records(name):
        for frame in FrameParser().feed(raw):
            if frame.content_type == "text/event-plain":
                event = decode_event_plain(frame.body)
                if event.name == "CHANNEL_HANGUP_COMPLETE":
                    return event
    raise AssertionError(f"no CHANNEL_HANGUP_COMPLETE in {name}")


def test_quality_is_read_from_a_real_hangup_complete() -> None:
    """Variable names and formats as FreeSWITCH 1.10.12 sent them (captured call, 75 packets in)."""
    event = _hangup_complete("ws-hangup-while-streaming")
    quality = quality_from_event(event.get, event.get("Hangup-Cause"))
    assert quality is not None
    assert quality.mos == 4.5 and quality.r_factor == 100.0
    assert quality.packets_received == 75 and quality.media_flowed
    assert quality.flaws == 0 and quality.packet_loss_pct == 0.0
    assert quality.jitter_min_ms == pytest.approx(0.50 ** 0.5, abs=0.01)
    assert quality.jitter_max_ms == pytest.approx(377.60 ** 0.5, abs=0.01)
    assert not quality.rtp_timeout


def test_a_call_refused_before_media_has_no_quality() -> None:
    event = _hangup_complete("reject-403")
    assert quality_from_event(event.get, event.get("Hangup-Cause")) is None


@pytest.fixture
def store_db(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    db = tmp_path / "k.db"
    store = open_store(db)
    yield store, db
    store.close()


def _subscribe_all(store: Store, org_id: str) -> str:
    """A webhook endpoint row for ``org_id`` wanting every event (the outbox then keeps them)."""
    endpoint_id = new_id("we")
    now = time.time()
    store.conn.execute(
        "INSERT INTO webhook_endpoints (id, org_id, url, enabled_events, secret, created_at, updated_at)"
        " VALUES (?, ?, 'https://hooks.example.com/k', ?, 'whsec_test', ?, ?)",
        (endpoint_id, org_id, json.dumps(["session.ended", "call.rejected"]), now, now),
    )
    return endpoint_id


def _events(store: Store, event_type: str) -> list[dict]:
    rows = store.query("SELECT body FROM webhook_events WHERE type = ? ORDER BY created_at", (event_type,))
    return [json.loads(r["body"]) for r in rows]


def test_lossy_call_lands_in_the_session_resource_and_session_ended(
        tmp_path: Path, store_db: tuple[Store, Path]) -> None:
    store, db = store_db
    org = make_org(store, codecs=("PCMU",))
    user = set_sip_password(store, org, PASSWORD)
    _subscribe_all(store, org)
    sid = make_session(store, org)
    stack = CallStack(tmp_path, db, store)
    try:
        call = stack.call(sid, user, PASSWORD, codecs=("PCMU",), rtp_loss_pct=10.0, rtp_jitter_ms=12.0)
        assert call.code == 200
        time.sleep(5.5)  # ≈275 packets: FreeSWITCH's loss rate is refreshed every 5 s
        call.hangup()
        assert call.wait_ended(5)
        wait_until(lambda: get_session(store, org, sid).status == "ended", "the session to end")
    finally:
        stack.stop()
    leg = get_session(store, org, sid).to_json("sip.test.example")["legs"][0]
    quality = leg["quality"]
    assert leg["sip_code"] == 200 and leg["hangup_cause"] == "NORMAL_CLEARING"
    assert quality["codec"] == "PCMU" and quality["media_flowed"] and not quality["rtp_timeout"]
    assert 240 <= quality["packets_received"] <= 300
    assert quality["flaws"] == pytest.approx(0.3 * quality["packets_received"] / 0.9, rel=0.05)
    assert quality["packet_loss_pct"] == pytest.approx(11.0, abs=1.5)  # lost / received
    assert quality["jitter_max_ms"] == pytest.approx(12.0, abs=0.01)
    assert 3.0 < quality["mos"] < 4.0
    [ended] = _events(store, "session.ended")
    assert ended["data"]["session_id"] == sid and ended["data"]["end_reason"] == "call_ended"
    assert ended["data"]["legs"] == [leg]  # the same leg, quality included, as the API shows it
    assert ended["data"]["duration_s"] >= 5.5


def test_rtp_timeout_ends_the_call_and_is_recorded(tmp_path: Path, store_db: tuple[Store, Path]) -> None:
    """A caller that never sends RTP is hung up by FreeSWITCH after KALLGLOT_MEDIA_TIMEOUT_S."""
    store, db = store_db
    org = make_org(store, codecs=("PCMU",))
    user = set_sip_password(store, org, PASSWORD)
    sid = make_session(store, org)
    stack = CallStack(tmp_path, db, store, extra_env={"KALLGLOT_MEDIA_TIMEOUT_S": "1"})
    try:
        call = stack.call(sid, user, PASSWORD, codecs=("PCMU",), rtp_stops_after_s=0)
        assert call.code == 200
        assert call.wait_ended(10), "FreeSWITCH should have hung up the silent call"
        assert call.bye_from_switch
        wait_until(lambda: get_session(store, org, sid).status == "ended", "the session to end")
    finally:
        stack.stop()
    leg = get_session(store, org, sid).to_json("sip.test.example")["legs"][0]
    assert leg["hangup_cause"] == "MEDIA_TIMEOUT"
    assert leg["quality"]["rtp_timeout"] and not leg["quality"]["media_flowed"]
    assert leg["quality"]["packets_received"] == 0


def test_call_rejected_is_queued_for_the_organization(tmp_path: Path, store_db: tuple[Store, Path]) -> None:
    store, db = store_db
    org = make_org(store, cap=0)
    user = set_sip_password(store, org, PASSWORD)
    _subscribe_all(store, org)
    sid = make_session(store, org)
    stack = CallStack(tmp_path, db, store)
    try:
        call = stack.call(sid, user, PASSWORD)
        assert call.code in (486, 503)
        wait_until(lambda: bool(_events(store, "call.rejected")), "call.rejected")
    finally:
        stack.stop()
    [event] = _events(store, "call.rejected")
    assert event["data"]["sip_code"] == call.code
    assert event["data"]["session_id"] == sid and event["data"]["call_uuid"] == call.uuid
    assert event["data"]["reason"]
    assert _events(store, "session.ended") == []  # nothing connected: the session stays open

"""End to end: the real ``kallglot controller`` against the FreeSWITCH double (tests/fsdouble),
configured from the project's rendered FreeSWITCH config, with a websocket bridge."""

from __future__ import annotations

import io
import random
import struct
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controller.store import Store, open_store
from tests.calls.factories import live_leg_count, make_org, make_session
from tests.calls.stack import CallStack, TestBridge, set_sip_password

PASSWORD = "correct-horse-9"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def square_wav(amplitude: int, seconds: float = 3.0, rate: int = 8000) -> bytes:
    period = rate // 100  # 100 Hz
    samples = [amplitude if (i % period) < period // 2 else -amplitude for i in range(int(seconds * rate))]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


@pytest.fixture
def store_db(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    db = tmp_path / "k.db"
    store = open_store(db)
    yield store, db
    store.close()


@pytest.fixture
def stacks(tmp_path: Path, store_db: tuple[Store, Path]) -> Iterator[list[CallStack]]:
    started: list[CallStack] = []
    yield started
    for s in started:
        s.stop()


def _start(tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack], **kw: object) -> CallStack:
    store, db = store_db
    stack = CallStack(tmp_path, db, store, **kw)  # type: ignore[arg-type]
    stacks.append(stack)
    return stack


def test_every_sip_outcome_end_to_end(tmp_path: Path, store_db: tuple[Store, Path],
                                      stacks: list[CallStack]) -> None:
    store, _ = store_db
    main = make_org(store, cap=1, codecs=("PCMU", "PCMA"))
    tls_only = make_org(store, transports=("tls",))
    strict = make_org(store, require_tls=True)
    srtp = make_org(store, require_srtp=True, codecs=("PCMU",))
    opus = make_org(store, codecs=("OPUS",))
    other = make_org(store)
    disabled = make_org(store, enabled=False)
    users = {org: set_sip_password(store, org, PASSWORD)
             for org in (main, tls_only, strict, srtp, opus, other, disabled)}
    s_main = make_session(store, main)
    s_ended = make_session(store, main, status="ended")
    s_other = make_session(store, other)
    stack = _start(tmp_path, store_db, stacks)

    def call(org: str, dest: str, **spec: object) -> object:
        return stack.call(dest, users[org], PASSWORD, **spec)

    ok = call(main, s_main, codecs=("PCMU",))
    assert ok.code == 200 and ok.codec == "PCMU"  # type: ignore[attr-defined]
    second = call(main, s_main, codecs=("PCMA",), headers={"X-Kallglot-Role": "agent"})
    assert second.code == 200  # type: ignore[attr-defined]
    outcomes = {
        "wrong password": (stack.call(s_main, users[main], "wrong"), 403),
        "sip disabled (no directory user)": (call(disabled, make_session(store, disabled)), 403),
        "transport not allowed": (call(tls_only, make_session(store, tls_only), transport="udp"), 403),
        "tls required": (call(strict, make_session(store, strict), transport="tcp"), 403),
        "another org's session": (call(main, s_other), 404),
        "ended session": (call(main, s_ended), 410),
        "third leg": (call(main, s_main), 486),
        "cap": (call(main, make_session(store, main)), 503),
        "srtp without crypto": (call(srtp, make_session(store, srtp), crypto=False), 488),
        "no allowed codec": (call(opus, make_session(store, opus), codecs=("PCMU",)), 488),
    }
    for what, (outcome, code) in outcomes.items():
        assert outcome.code == code, f"{what}: {outcome}"  # type: ignore[attr-defined]
    assert outcomes["cap"][0].headers.get("X-Call-Limit") == "1"  # type: ignore[attr-defined]
    srtp_ok = call(srtp, make_session(store, srtp), crypto=True, codecs=("PCMU",))
    assert srtp_ok.code == 200 and srtp_ok.srtp  # type: ignore[attr-defined]
    for c in (ok, second, srtp_ok):
        c.hangup()  # type: ignore[attr-defined]
        assert c.wait_ended(10)  # type: ignore[attr-defined]
    wait_until(lambda: live_leg_count(store) == 0, "every leg ended")
    legs = store.query("SELECT sip_code, hangup_cause FROM call_legs ORDER BY created_at")
    codes = sorted(r["sip_code"] for r in legs)
    assert codes == [200, 200, 200, 488, 488]
    session = store.query_one("SELECT status FROM sessions WHERE id = ?", (s_main,))
    assert session is not None and session["status"] == "ended"


def test_50_simultaneous_calls_vs_cap_5(tmp_path: Path, store_db: tuple[Store, Path],
                                        stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store, cap=5)
    user = set_sip_password(store, org, PASSWORD)
    sessions = [make_session(store, org) for _ in range(50)]
    stack = _start(tmp_path, store_db, stacks)
    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(lambda s: stack.call(s, user, PASSWORD, timeout=60), sessions))
    answered = [o for o in outcomes if o.code == 200]
    busy = [o for o in outcomes if o.code == 503]
    assert len(answered) == 5 and len(busy) == 45, sorted(o.code for o in outcomes)
    assert all(o.headers.get("X-Call-Limit") == "5" for o in busy)
    assert live_leg_count(store) == 5
    for o in answered:
        o.hangup()
    wait_until(lambda: live_leg_count(store) == 0, "slots released")
    # Slots are free again.
    again = stack.call(make_session(store, org), user, PASSWORD)
    assert again.code == 200
    again.hangup()


def test_kill_9_parks_the_calls_and_the_restarted_controller_adopts_them(
        tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store, cap=2)
    user = set_sip_password(store, org, PASSWORD)
    stack = _start(tmp_path, store_db, stacks, extra_env={"KALLGLOT_RECONCILE_GRACE_S": "0.2"})
    first = stack.call(make_session(store, org), user, PASSWORD)
    second = stack.call(make_session(store, org), user, PASSWORD)
    assert first.code == second.code == 200
    port = stack.controller.address[1]
    stack.controller.kill9()
    # With its socket gone, the dialplan parks both calls (kallglot_after_socket): nobody is
    # cut off, and the legs keep their call slots.
    assert not first.wait_ended(2) and not second.wait_ended(0.1)
    assert live_leg_count(store) == 2
    stack.controller = stack.start_controller(port=port)
    # The new controller adopts both calls and ends them normally when the callers hang up.
    wait_until(lambda: len(stack.controller.json_logs("call_adopted")) == 2, "adoption after restart")
    first.hangup()
    second.hangup()
    wait_until(lambda: live_leg_count(store) == 0, "legs ended by the adopting controller")
    rows = store.query("SELECT hangup_cause FROM call_legs")
    assert [r["hangup_cause"] for r in rows] == ["NORMAL_CLEARING", "NORMAL_CLEARING"]
    # The slots are usable again.
    third = stack.call(make_session(store, org), user, PASSWORD)
    fourth = stack.call(make_session(store, org), user, PASSWORD)
    assert third.code == fourth.code == 200
    third.hangup()
    fourth.hangup()


def test_a_call_whose_channel_died_with_the_controller_is_reconciled(
        tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store, cap=1)
    user = set_sip_password(store, org, PASSWORD)
    stack = _start(tmp_path, store_db, stacks, extra_env={"KALLGLOT_RECONCILE_GRACE_S": "0.2"})
    call = stack.call(make_session(store, org), user, PASSWORD)
    assert call.code == 200
    port = stack.controller.address[1]
    stack.controller.kill9()
    call.hangup()  # the caller hangs up while no controller is there to record it
    assert call.wait_ended(10)
    assert live_leg_count(store) == 1  # held until reconciliation
    stack.controller = stack.start_controller(port=port)
    wait_until(lambda: live_leg_count(store) == 0, "reconciliation after restart")
    rows = store.query("SELECT hangup_cause FROM call_legs")
    assert [r["hangup_cause"] for r in rows] == ["LOST_CHANNEL"]
    again = stack.call(make_session(store, org), user, PASSWORD)
    assert again.code == 200
    again.hangup()


def test_two_leg_session_streams_each_leg_and_plays_bridge_audio_on_the_right_leg(
        tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store, codecs=("PCMU",))
    user = set_sip_password(store, org, PASSWORD)
    sid = make_session(store, org)
    bridge = TestBridge()
    try:
        stack = _start(tmp_path, store_db, stacks, bridge_url=bridge.url)
        customer = stack.call(sid, user, PASSWORD, audio=square_wav(8000))
        agent = stack.call(sid, user, PASSWORD, audio=square_wav(500))
        assert customer.code == agent.code == 200
        legs = {r["role"]: r["id"] for r in store.query("SELECT id, role FROM call_legs")}
        wait_until(lambda: all(bridge.legs.get(legs[r]) and bridge.legs[legs[r]].frames > 25
                               for r in ("customer", "agent")), "audio from both legs")
        c_leg, a_leg = bridge.legs[legs["customer"]], bridge.legs[legs["agent"]]
        assert c_leg.metadata is not None and a_leg.metadata is not None
        assert (c_leg.metadata["role"], a_leg.metadata["role"]) == ("customer", "agent")
        assert c_leg.metadata["session_id"] == a_leg.metadata["session_id"] == sid
        assert a_leg.metadata["peer_leg_id"] == legs["customer"]
        assert c_leg.path == f"/v1/media/{sid}/{legs['customer']}"
        # Each leg's own audio reaches its own websocket (loud customer, quiet agent).
        assert c_leg.rms() > 4 * a_leg.rms() > 0

        # Translated speech for the agent goes on the agent's websocket and plays on the agent only.
        speech = struct.pack("<1600h", *([1200, -1200] * 800))  # 0.1 s at 16 kHz
        bridge.send_audio(legs["agent"], speech)
        bridge.send_audio(legs["agent"], speech[::-1])
        wait_until(lambda: len(stack.fs.played_audio(agent.uuid)) == 2
                   and stack.fs.played_audio(agent.uuid)[1].ended is not None, "playback on the agent leg")
        played = stack.fs.played_audio(agent.uuid)
        assert played[0].audio == speech and played[1].audio == speech[::-1]
        assert played[0].ended is not None and played[0].ended <= played[1].started  # no overlap
        assert stack.fs.played_audio(customer.uuid) == []
        customer.hangup()
        agent.hangup()
        wait_until(lambda: live_leg_count(store) == 0, "legs ended")
    finally:
        bridge.stop()


def test_barge_in_stops_playback_and_drops_the_queue(tmp_path: Path, store_db: tuple[Store, Path],
                                                     stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store)
    user = set_sip_password(store, org, PASSWORD)
    sid = make_session(store, org)
    bridge = TestBridge()
    try:
        stack = _start(tmp_path, store_db, stacks, bridge_url=bridge.url)
        call = stack.call(sid, user, PASSWORD)
        assert call.code == 200
        leg_id = store.query("SELECT id FROM call_legs")[0]["id"]
        wait_until(lambda: leg_id in bridge.legs and bridge.legs[leg_id].ws is not None, "stream up")
        long_speech = b"\x10\x00" * 16000 * 5  # 5 s
        for _ in range(3):
            bridge.send_audio(leg_id, long_speech)
        wait_until(lambda: len(stack.fs.played_audio(call.uuid)) == 1, "first file playing")
        bridge.send_text(leg_id, '{"type":"kallglot.barge_in"}')
        wait_until(lambda: stack.fs.played_audio(call.uuid)[0].ended is not None, "playback broken")
        played = stack.fs.played_audio(call.uuid)
        assert played[0].interrupted
        time.sleep(0.3)
        assert len(stack.fs.played_audio(call.uuid)) == 1  # the queued two were dropped
        call.hangup()
    finally:
        bridge.stop()


def test_barge_in_right_after_a_file_is_announced_does_not_stall_playback(
        tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack]) -> None:
    """The barge-in lands while FreeSWITCH has the broadcast queued but not started: a
    `uuid_break all` then would flush it (no EXECUTE_COMPLETE ever) and stall the leg's playback."""
    store, _ = store_db
    org = make_org(store)
    user = set_sip_password(store, org, PASSWORD)
    sid = make_session(store, org)
    bridge = TestBridge()
    try:
        stack = _start(tmp_path, store_db, stacks, bridge_url=bridge.url)
        call = stack.call(sid, user, PASSWORD)
        assert call.code == 200
        leg_id = store.query("SELECT id FROM call_legs")[0]["id"]
        wait_until(lambda: leg_id in bridge.legs and bridge.legs[leg_id].ws is not None, "stream up")
        bridge.send_audio(leg_id, b"\x10\x00" * 16000 * 3)
        bridge.send_text(leg_id, '{"type":"kallglot.barge_in"}')
        wait_until(lambda: any(line.startswith("uuid_break") for line in stack.fs.api_log), "uuid_break")
        later = b"\x20\x00" * 8000  # 0.5 s
        bridge.send_audio(leg_id, later)
        wait_until(lambda: len(stack.fs.played_audio(call.uuid)) == 2, "the next file plays")
        played = stack.fs.played_audio(call.uuid)
        assert played[0].interrupted and played[1].audio == later
        call.hangup()
    finally:
        bridge.stop()


def test_refused_bridge_keeps_the_call_up_with_bounded_retries(tmp_path: Path, store_db: tuple[Store, Path],
                                                               stacks: list[CallStack]) -> None:
    store, _ = store_db
    org = make_org(store)
    user = set_sip_password(store, org, PASSWORD)
    stack = _start(tmp_path, store_db, stacks, extra_env={"KALLGLOT_STREAM_RETRIES": "2"})
    call = stack.call(make_session(store, org), user, PASSWORD)
    assert call.code == 200
    wait_until(lambda: len(stack.controller.json_logs("stream_failed")) == 3, "three failed attempts")
    time.sleep(0.5)
    failures = stack.controller.json_logs("stream_failed")
    assert [f["retrying"] for f in failures] == [True, True, False]
    starts = [line for line in stack.fs.api_log if line.startswith(f"uuid_audio_stream {call.uuid} start")]
    assert len(starts) == 3
    assert not call.ended and live_leg_count(store) == 1
    call.hangup()
    wait_until(lambda: live_leg_count(store) == 0, "leg ended")


def test_provider_call_to_a_managed_number_joins_its_session(tmp_path: Path, store_db: tuple[Store, Path],
                                                             stacks: list[CallStack]) -> None:
    from tests.calls.factories import make_number

    store, _ = store_db
    org = make_org(store)
    set_sip_password(store, org, PASSWORD)
    cid = make_number(store, org, "+4930123456", ["127.0.0.1/32"])
    sid = make_session(store, org, phone_number="+4930123456", connection_id=cid)
    stack = _start(tmp_path, store_db, stacks)
    call = stack.fs.place_call("+4930123456", source_ip="127.0.0.1", domain="127.0.0.1")
    assert call.code == 200, call
    row = store.query_one("SELECT session_id, role FROM call_legs WHERE call_uuid = ?", (call.uuid,))
    assert row is not None and row["session_id"] == sid and row["role"] == "customer"
    call.hangup()
    wait_until(lambda: live_leg_count(store) == 0, "leg ended")


def test_2000_sequential_calls_with_random_hangups_leave_no_slot_in_use(
        tmp_path: Path, store_db: tuple[Store, Path], stacks: list[CallStack]) -> None:
    """Calls through the real controller and the double, each ended a random way (caller BYE,
    FreeSWITCH-side kill, or left up until a later call): the cap holds throughout and every
    slot comes back."""
    store, _ = store_db
    cap = 3
    org = make_org(store, cap=cap)
    user = set_sip_password(store, org, PASSWORD)
    stack = _start(tmp_path, store_db, stacks)
    rng = random.Random(20261121)
    up: list = []
    codes: dict[int | None, int] = {}
    for i in range(2000):
        outcome = stack.call(make_session(store, org), user, PASSWORD, timeout=30)
        codes[outcome.code] = codes.get(outcome.code, 0) + 1
        if outcome.code == 200:
            up.append(outcome)
        elif outcome.code == 503:
            assert outcome.headers.get("X-Call-Limit") == str(cap)
            assert len(up) >= cap  # refused only when the cap is really reached
        else:
            raise AssertionError(f"unexpected SIP {outcome.code}")
        # End zero, one or all of the calls that are up, each by a random side.
        for call in rng.sample(up, k=rng.choice([0, 1, len(up)])):
            if rng.random() < 0.5:
                call.hangup()  # the caller's BYE
            else:
                stack.fs.api_sync(f"uuid_kill {call.uuid}")  # ended inside FreeSWITCH
            assert call.wait_ended(10)
            up.remove(call)
        if i % 100 == 99:
            wait_until(lambda: live_leg_count(store) == len(up), "the store to follow the hangups", 10)
    for call in up:
        call.hangup()
    wait_until(lambda: live_leg_count(store) == 0, "every slot released")
    assert codes[200] > 500 and codes.get(503, 0) > 0, codes

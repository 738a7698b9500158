"""EslCallControl (the API's CallControl) over a real inbound ESL socket."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.calls.esl_control import CallControlError, EslCallControl
from controller.calls.legs import reserve_outbound_leg
from controller.settings import Settings
from controller.store import Store
from tests.calls.factories import live_leg_count, make_org, make_session
from tests.calls.wire_fs import ScriptedInboundEsl


@pytest.fixture
def esl() -> Iterator[ScriptedInboundEsl]:
    server = ScriptedInboundEsl(password="s3cret")
    yield server
    server.close()


def _control(store: Store, port: int, password: str = "s3cret") -> EslCallControl:
    settings = Settings(esl_port=port, esl_password=password, controller_address="10.0.0.5:8084")
    return EslCallControl(settings, store, timeout=5.0, originate_timeout_s=5)


def test_hangup_kills_the_live_channels_and_reports_which(store: Store, esl: ScriptedInboundEsl) -> None:
    esl.live_uuids |= {"a-1", "b-2"}
    done = _control(store, esl.port).hangup(["a-1", "gone-3", "b-2", "bad uuid;"])
    assert done == ["a-1", "b-2"]
    assert "api uuid_kill a-1 NORMAL_CLEARING" in esl.requests
    assert not any("bad" in r for r in esl.requests)


def test_wrong_password_is_a_clear_error_without_the_password(store: Store, esl: ScriptedInboundEsl) -> None:
    esl.live_uuids.add("a-1")
    with pytest.raises(Exception) as info:
        _control(store, esl.port, password="nope-xyz").hangup(["a-1"])
    assert "nope-xyz" not in str(info.value)


def _wait(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_originate_sends_the_dial_string_and_keeps_the_leg_on_success(store: Store,
                                                                     esl: ScriptedInboundEsl) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    leg = reserve_outbound_leg(store, org, sid, "agent", "+4930123")
    uuid = _control(store, esl.port).originate(sid, leg.leg_id, "agent", "+4930123", "pcon_X")
    assert uuid == leg.call_uuid
    sent = [r for r in esl.requests if r.startswith("bgapi originate")]
    assert sent == [f"bgapi originate {{origination_uuid={uuid},kallglot_session_id={sid},"
                    f"kallglot_leg_id={leg.leg_id},kallglot_role=agent,originate_timeout=5}}"
                    f"sofia/gateway/pcon_X/+4930123 kallglot_attach XML kallglot"]
    time.sleep(0.3)
    assert live_leg_count(store) == 1


def test_failed_originate_ends_the_leg_with_freeswitchs_cause(store: Store, esl: ScriptedInboundEsl) -> None:
    esl.job_result = lambda cmd: "-ERR USER_BUSY\n"
    org = make_org(store)
    sid = make_session(store, org)
    leg = reserve_outbound_leg(store, org, sid, None, "+4930123")
    _control(store, esl.port).originate(sid, leg.leg_id, leg.role, "+4930123", "pcon_X")
    _wait(lambda: live_leg_count(store) == 0, "leg released")
    row = store.query_one("SELECT hangup_cause, sip_code, status FROM call_legs WHERE id = ?", (leg.leg_id,))
    assert row is not None and tuple(row) == ("USER_BUSY", 486, "failed")
    session = store.query_one("SELECT status FROM sessions WHERE id = ?", (sid,))
    assert session is not None and session["status"] != "ended"  # free to dial again


def test_originate_without_freeswitch_raises(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    leg = reserve_outbound_leg(store, org, sid, None, "+4930123")
    with pytest.raises(CallControlError, match="ESL"):
        _control(store, 1).originate(sid, leg.leg_id, leg.role, "+4930123", "pcon_X")

"""controller/metrics on their own: sofia's captured auth events → counters, store → gauges."""

from __future__ import annotations

import time

from controller.esl.protocol import EVENT_PLAIN, Event, FrameParser
from controller.metrics import REGISTRY, OrgCallsCollector, SipAuthWatcher
from controller.store import Store
from tests.calls.factories import make_org, make_session
from tests.fsdouble.fixtures import fs_records

# The SIP user of the capture (tests/fixtures/freeswitch-1.10.12/esl/inbound-events-sofia-auth.log).
FIXTURE_USER = "kgf314245b2867"


def _captured_events() -> list[Event]:
    frames = [f for r in fs_records("inbound-events-sofia-auth") for f in FrameParser().feed(r)]
    return [Event.from_frame(f) for f in frames if f.content_type == EVENT_PLAIN]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_real_switch_events_count_challenges_and_failures_by_org(store: Store) -> None:
    org = make_org(store, username=FIXTURE_USER)
    challenges = _value("kallglot_sip_auth_challenges_total", method="INVITE")
    ours = _value("kallglot_sip_auth_failures_total", method="INVITE", org=org)
    unknown = _value("kallglot_sip_auth_failures_total", method="INVITE", org="unknown")
    watcher = SipAuthWatcher(store)
    for event in _captured_events():
        watcher.on_event(event)
    # Six 407s; the wrong password and the auth-acl 403 come from our user (From of the challenge
    # to the same address:port); "nosuchuser" dialling a session the store does not hold is unknown.
    assert _value("kallglot_sip_auth_challenges_total", method="INVITE") - challenges == 6
    assert _value("kallglot_sip_auth_failures_total", method="INVITE", org=org) - ours == 2
    assert _value("kallglot_sip_auth_failures_total", method="INVITE", org="unknown") - unknown == 1


def test_a_failure_without_its_challenge_falls_back_to_the_dialled_session(store: Store) -> None:
    org = make_org(store)
    failure = next(e for e in _captured_events() if e.subclass == "sofia::register_failure")
    session = make_session(store, org)
    failure.headers["to-user"] = session
    before = _value("kallglot_sip_auth_failures_total", method="INVITE", org=org)
    SipAuthWatcher(store, clock=lambda: time.monotonic() + 3600).on_event(failure)
    assert _value("kallglot_sip_auth_failures_total", method="INVITE", org=org) - before == 1


def test_live_calls_and_cap_come_from_the_store(store: Store) -> None:
    busy, idle = make_org(store, cap=3), make_org(store, cap=7)
    session = make_session(store, busy)
    now = time.time()
    for n, ended in enumerate((None, None, now)):  # two live legs of one session, one ended leg
        store.conn.execute(
            "INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status, created_at,"
            " ended_at) VALUES (?, ?, ?, ?, ?, 'inbound', 'answered', ?, ?)",
            (f"leg_{n}", session, busy, f"uuid-{n}", ("customer", "agent", "agent")[n], now, ended))
    collected = OrgCallsCollector(store).collect()
    families = {f.name: {s.labels["org"]: s.value for s in f.samples} for f in collected}
    assert families["kallglot_org_live_calls"] == {busy: 1.0, idle: 0.0}  # a session counts once
    assert families["kallglot_org_call_cap"] == {busy: 3.0, idle: 7.0}

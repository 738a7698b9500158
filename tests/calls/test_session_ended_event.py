"""``session.ended`` is queued once, when the session has ended *and* its last leg is down, so
the event always carries every leg's SIP outcome — whoever ended it (the API, the last hangup,
reconciliation)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.calls.legs import end_leg, mark_leg, reconcile
from controller.calls.quality import LegQuality
from controller.domain.sessions import end_session
from controller.ids import new_id
from controller.store import Store, open_store
from tests.calls.factories import make_org, make_session


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "k.db")
    yield s
    s.close()


def _endpoint(store: Store, org_id: str, events: list[str]) -> None:
    now = time.time()
    store.conn.execute(
        "INSERT INTO webhook_endpoints (id, org_id, url, enabled_events, secret, created_at, updated_at)"
        " VALUES (?, ?, 'https://hooks.example.com/k', ?, 'whsec_test', ?, ?)",
        (new_id("we"), org_id, json.dumps(events), now, now),
    )


def _leg(store: Store, org_id: str, session_id: str, role: str) -> tuple[str, str]:
    leg_id, call_uuid = new_id("leg"), f"uuid-{role}-{session_id[-6:]}"
    store.conn.execute(
        "INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, 'inbound', 'admitted', ?)",
        (leg_id, session_id, org_id, call_uuid, role, time.time()),
    )
    mark_leg(store, leg_id, "answered")
    return leg_id, call_uuid


def _ended_events(store: Store) -> list[dict]:
    rows = store.query("SELECT body FROM webhook_events WHERE type = 'session.ended'")
    return [json.loads(r["body"])["data"] for r in rows]


QUALITY = LegQuality(mos=4.4, r_factor=97.0, jitter_min_ms=1.0, jitter_max_ms=9.5, packets_received=500,
                     packets_sent=300, flaws=3, packet_loss_pct=0.2, media_flowed=True, rtp_timeout=False,
                     codec="PCMU")


def test_api_end_with_live_legs_waits_for_their_hangups(store: Store) -> None:
    org = make_org(store)
    _endpoint(store, org, ["session.ended"])
    sid = make_session(store, org)
    _, customer = _leg(store, org, sid, "customer")
    _, agent = _leg(store, org, sid, "agent")
    assert set(end_session(store, sid, "api")) == {customer, agent}
    assert _ended_events(store) == []  # the legs are still up: their outcome is not known yet
    end_leg(store, customer, hangup_cause="NORMAL_CLEARING", quality=QUALITY)
    assert _ended_events(store) == []
    end_leg(store, agent, hangup_cause="USER_BUSY")
    [data] = _ended_events(store)
    assert data["session_id"] == sid and data["end_reason"] == "api"
    assert [(leg["role"], leg["sip_code"]) for leg in data["legs"]] == [("customer", 200), ("agent", 486)]
    assert data["legs"][0]["quality"] == QUALITY.to_json() and data["legs"][1]["quality"] is None
    end_leg(store, agent, hangup_cause="NORMAL_CLEARING")  # a repeated hangup: no second event
    end_session(store, sid, "api")
    assert len(_ended_events(store)) == 1


def test_session_without_legs_is_announced_when_ended(store: Store) -> None:
    org = make_org(store)
    _endpoint(store, org, ["session.ended"])
    sid = make_session(store, org)
    end_session(store, sid, "inactivity")
    [data] = _ended_events(store)
    assert data["legs"] == [] and data["duration_s"] == 0.0 and data["end_reason"] == "inactivity"


def test_reconciled_legs_announce_the_session_too(store: Store) -> None:
    org = make_org(store)
    _endpoint(store, org, ["session.ended"])
    sid = make_session(store, org)
    _leg(store, org, sid, "customer")
    reconcile(store, live_uuids=[], now=time.time() + 10)
    [data] = _ended_events(store)
    assert data["end_reason"] == "reconciled" and data["legs"][0]["hangup_cause"] == "LOST_CHANNEL"


def test_nothing_is_queued_for_an_organization_without_endpoints(store: Store) -> None:
    org, other = make_org(store), make_org(store)
    _endpoint(store, other, ["session.ended"])
    _endpoint(store, org, ["transcript.segment"])  # subscribed, but not to this event
    sid = make_session(store, org)
    end_session(store, sid, "api")
    assert _ended_events(store) == []
    assert store.query_one("SELECT ended_event_at FROM sessions WHERE id = ?", (sid,))[0] is not None


def test_settled_deliveries_and_their_events_are_purged_pending_ones_kept(store: Store) -> None:
    from controller.webhooks.outbox import purge_settled

    org = make_org(store)
    _endpoint(store, org, ["session.ended"])
    old, fresh = make_session(store, org), make_session(store, org)
    end_session(store, old, "api")
    end_session(store, fresh, "api")
    rows = store.query(
        "SELECT d.id, e.body FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id")
    by_session = {json.loads(r["body"])["data"]["session_id"]: r["id"] for r in rows}
    store.conn.execute("UPDATE webhook_deliveries SET status = 'delivered', created_at = 0 WHERE id = ?",
                       (by_session[old],))
    store.conn.execute("UPDATE webhook_events SET created_at = 0")  # both events are old
    assert purge_settled(store, cutoff=1.0) == 1
    [left] = _ended_events(store)
    assert left["session_id"] == fresh  # still pending: kept whatever its age

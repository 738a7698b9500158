"""The events this part emits, queued in the emitters' own transactions: session.created (API),
session.started and transcript.segment (bridge records)."""

from __future__ import annotations

import json
import time

from controller.domain.timeutil import iso
from controller.domain.transcripts import list_turns
from controller.store import Store
from media_bridge.records import TurnRecord, insert_turn, mark_audio
from tests.api.server import ApiServer
from tests.webhooks.conftest import add_endpoint, all_finished, deliver_until, fast_settings
from tests.webhooks.receiver import Receiver

ALL = ["session.created", "session.started", "transcript.segment"]


def _events(store: Store) -> list[dict[str, object]]:
    rows = store.query("SELECT body FROM webhook_events ORDER BY created_at, id")
    return [json.loads(r["body"]) for r in rows]


def test_session_lifecycle_events_are_queued_and_delivered(open_api: ApiServer, store: Store,
                                                           receiver: Receiver) -> None:
    org = open_api.org()
    ep = add_endpoint(store, org.id, receiver.url, ALL)
    open_api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    session = open_api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"},
                                                               "metadata": {"ticket": "T-1"}}).json()
    started_at = round(time.time(), 3)
    assert mark_audio(store, session["id"], first=True, now=started_at) == "active"
    mark_audio(store, session["id"], first=True)  # already active: no second session.started
    turn = TurnRecord(session["id"], "customer", "en", "Hello", "es", "Hola", started_at + 1, started_at + 2)
    seq = insert_turn(store, turn)

    created, started, segment = _events(store)
    assert created["type"] == "session.created" and created["data"] == session
    assert started["type"] == "session.started"
    assert started["data"] == {"session_id": session["id"], "status": "active",
                               "started_at": iso(started_at)}
    assert segment["type"] == "transcript.segment"
    shown = list_turns(store, session["id"])[0].to_json()
    assert segment["data"] == {"session_id": session["id"], **shown} and shown["sequence"] == seq
    # No path: this turn was written without one (the engine names it, media_bridge/translation_paths.py).
    assert segment["data"]["translation"] == {"language": "es", "text": "Hola", "path": None}

    deliver_until(store, fast_settings(store), all_finished(store))
    got = [json.loads(r.body) for r in receiver.wait_for(3)]
    assert sorted(e["type"] for e in got) == sorted(ALL)
    assert receiver.verified(ep.secret)


def test_no_endpoint_no_event_and_unsubscribed_types_skipped(store: Store, open_api: ApiServer,
                                                             receiver: Receiver) -> None:
    org = open_api.org()
    open_api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    open_api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"}})
    assert _events(store) == []  # nobody subscribes: nothing stored
    add_endpoint(store, org.id, receiver.url, ["transcript.segment"])
    sid = open_api.call("POST", "/v1/sessions", org, body={"routing": {"type": "sip"}}).json()["id"]
    mark_audio(store, sid, first=True)
    assert _events(store) == []
    insert_turn(store, TurnRecord(sid, "agent", "es", "Hola", None, None, 1.0, 2.0))
    assert [e["type"] for e in _events(store)] == ["transcript.segment"]

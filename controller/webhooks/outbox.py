"""Queueing an event for webhooks, inside the caller's own store transaction (a transactional
outbox): the event exists exactly when the change it describes was committed, and no process
that emits one ever waits on a receiver. The delivery worker (controller/webhooks/worker.py)
sends what is queued here."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from controller.domain.timeutil import iso
from controller.ids import new_id
from controller.store import Store

API_VERSION = "v1"
EVENT_TYPES: tuple[str, ...] = (
    "session.created",
    "session.started",
    "session.ended",
    "transcript.segment",
    "call.rejected",
)


def enqueue(conn: sqlite3.Connection, org_id: str, event_type: str, data: dict[str, Any],
            *, now: float | None = None) -> str | None:
    """Write the event and one pending delivery per enabled endpoint of ``org_id`` that wants it.

    Run inside an open transaction (``store.transaction()``). Returns the event id, or None when
    no endpoint subscribes (nothing is stored then: an install without webhooks pays one SELECT).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    now = time.time() if now is None else now
    endpoints = [
        row["id"]
        for row in conn.execute(
            "SELECT id, enabled_events FROM webhook_endpoints WHERE org_id = ? AND status = 'enabled'",
            (org_id,),
        )
        if event_type in json.loads(row["enabled_events"])
    ]
    if not endpoints:
        return None
    event_id = new_id("evt")
    envelope = {"id": event_id, "type": event_type, "api_version": API_VERSION, "created_at": iso(now),
                "data": data}
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    conn.execute(
        "INSERT INTO webhook_events (id, org_id, type, body, created_at) VALUES (?, ?, ?, ?, ?)",
        (event_id, org_id, event_type, body, now),
    )
    conn.executemany(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, org_id, status, attempts,"
        " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        [(new_id("whd"), event_id, endpoint_id, org_id, now, now, now) for endpoint_id in endpoints],
    )
    return event_id


def purge_settled(store: Store, cutoff: float) -> int:
    """Delete deliveries that are over (delivered or failed) and were queued before ``cutoff``,
    then the events left with no delivery; pending ones stay whatever their age. Returns the
    number of events deleted. (The API's janitor runs it with the API log's retention.)"""
    with store.transaction() as conn:
        conn.execute(
            "DELETE FROM webhook_deliveries WHERE status != 'pending' AND created_at < ?", (cutoff,)
        )
        cur = conn.execute(
            "DELETE FROM webhook_events WHERE created_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
            (cutoff,),
        )
        return cur.rowcount

"""The events the call path emits: ``session.ended`` (once the session has ended and its last
leg has hung up, so every leg's SIP outcome and quality are known) and ``call.rejected``."""

from __future__ import annotations

import json
import sqlite3
import time

from controller.domain.call_legs import legs_of
from controller.domain.timeutil import iso
from controller.webhooks.outbox import enqueue


def queue_session_ended(conn: sqlite3.Connection, session_id: str, *, now: float | None = None) -> str | None:
    """Queue ``session.ended`` if the session is ended, has no live leg and was not announced yet.

    Run inside the transaction that ended the session or its last leg; safe to call from every
    such place (``ended_event_at`` makes it once per session). Returns the event id, if any.
    """
    now = time.time() if now is None else now
    session = conn.execute(
        "SELECT id, org_id, status, end_reason, metadata, created_at, started_at, ended_at, ended_event_at"
        " FROM sessions WHERE id = ?",
        (session_id,),
    ).fetchone()
    if session is None or session["status"] != "ended" or session["ended_event_at"] is not None:
        return None
    live = conn.execute(
        "SELECT 1 FROM call_legs WHERE session_id = ? AND ended_at IS NULL LIMIT 1", (session_id,)
    ).fetchone()
    if live is not None:
        return None  # the last leg's hangup queues it, with that leg's outcome
    conn.execute("UPDATE sessions SET ended_event_at = ? WHERE id = ?", (now, session_id))
    legs = legs_of(conn, [session_id])[session_id]
    first_answer = conn.execute(
        "SELECT MIN(answered_at) FROM call_legs WHERE session_id = ?", (session_id,)
    ).fetchone()[0]
    ended_at = session["ended_at"] or now
    data = {
        "session_id": session_id,
        "status": "ended",
        "end_reason": session["end_reason"],
        "metadata": json.loads(session["metadata"]),
        "created_at": iso(session["created_at"]),
        "started_at": iso(session["started_at"]),
        "ended_at": iso(ended_at),
        # From the first answered leg to the end; 0 when no leg was ever answered.
        "duration_s": round(max(0.0, ended_at - first_answer), 3) if first_answer is not None else 0.0,
        "legs": legs,
    }
    return enqueue(conn, session["org_id"], "session.ended", data, now=now)


def queue_call_rejected(conn: sqlite3.Connection, org_id: str, *, call_uuid: str, sip_code: int, reason: str,
                        session_id: str | None, caller: str | None, destination: str | None,
                        transport: str | None, source_ip: str | None, now: float | None = None) -> str | None:
    """Queue ``call.rejected``: the SIP code and reason the caller got, for the organization the
    call was tied to (calls tied to none, e.g. an unknown destination, have no tenant to tell)."""
    data = {
        "call_uuid": call_uuid,
        "session_id": session_id,
        "sip_code": sip_code,
        "reason": reason,
        "from": caller,
        "to": destination,
        "transport": transport,
        "source_ip": source_ip,
    }
    return enqueue(conn, org_id, "call.rejected", data, now=now)

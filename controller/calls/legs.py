"""A call leg's life in the store after admission: answered, streaming, ended; reconciliation.

Ending a leg (``ended_at``) releases its session's call slot; when it was the session's last
live leg the session ends too, in the same transaction.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from controller.calls.admission import CLOSED_SESSION_STATUSES, ROLES
from controller.calls.quality import LegQuality
from controller.ids import new_id
from controller.store import Store
from controller.webhooks.call_events import queue_session_ended

log = logging.getLogger("kallglot.calls.legs")

# mod_sofia's mapping of hangup causes to the SIP code sent (DESIGN.md §4).
CAUSE_TO_SIP = {
    "USER_BUSY": 486,
    "NORMAL_TEMPORARY_FAILURE": 503,
    "UNALLOCATED_NUMBER": 404,
    "INCOMPATIBLE_DESTINATION": 488,
    "CALL_REJECTED": 603,
    "NUMBER_CHANGED": 410,
}


def sip_code_for(cause: str, answered: bool) -> int:
    """The SIP code a leg ended with: 200 for an answered call cleared normally."""
    if answered and cause in ("NORMAL_CLEARING", "ORIGINATOR_CANCEL", "NORMAL_UNSPECIFIED"):
        return 200
    return CAUSE_TO_SIP.get(cause, 480)


@dataclass(frozen=True)
class LegEnded:
    leg_id: str
    session_id: str
    call_uuid: str
    session_ended: bool


def mark_leg(store: Store, leg_id: str, status: str, *, now: float | None = None) -> None:
    """Move a live leg to ``answered`` or ``streaming`` (never resurrects an ended leg)."""
    now = time.time() if now is None else now
    with store.transaction() as conn:
        if status == "answered":
            conn.execute(
                "UPDATE call_legs SET status = ?, answered_at = COALESCE(answered_at, ?) "
                "WHERE id = ? AND ended_at IS NULL",
                (status, now, leg_id),
            )
        else:
            conn.execute("UPDATE call_legs SET status = ? WHERE id = ? AND ended_at IS NULL",
                         (status, leg_id))


def end_leg(store: Store, call_uuid: str, *, hangup_cause: str, sip_code: int | None = None,
            now: float | None = None, end_reason: str = "call_ended",
            force_session_end: bool = False, quality: LegQuality | None = None) -> LegEnded | None:
    """Mark the live leg of ``call_uuid`` ended, with its RTP ``quality`` when known; end its
    session when no live leg is left (and one of its legs was answered, or
    ``force_session_end``). Once an ended session has no live leg, ``session.ended`` is queued
    for webhooks in the same transaction.

    Idempotent: returns None when there is no live leg for that uuid.
    """
    now = time.time() if now is None else now
    with store.transaction() as conn:
        leg = conn.execute(
            "SELECT id, session_id, answered_at FROM call_legs WHERE call_uuid = ? AND ended_at IS NULL",
            (call_uuid,),
        ).fetchone()
        if leg is None:
            return None
        answered = leg["answered_at"] is not None
        code = sip_code if sip_code is not None else sip_code_for(hangup_cause, answered)
        status = "ended" if leg["answered_at"] is not None else "failed"
        conn.execute(
            "UPDATE call_legs SET ended_at = ?, status = ?, hangup_cause = ?, sip_code = ?, quality = ?"
            " WHERE id = ?",
            (now, status, hangup_cause, code,
             json.dumps(quality.to_json(), separators=(",", ":")) if quality else None, leg["id"]),
        )
        remaining = conn.execute(
            "SELECT COUNT(*) FROM call_legs WHERE session_id = ? AND ended_at IS NULL",
            (leg["session_id"],),
        ).fetchone()[0]
        session_ended = False
        # The session ends with its last leg once a call actually took place; legs that never
        # connected (488 at answer, a failed dial) leave it open for another try.
        connected = conn.execute(
            "SELECT 1 FROM call_legs WHERE session_id = ? AND answered_at IS NOT NULL LIMIT 1",
            (leg["session_id"],),
        ).fetchone()
        if remaining == 0 and (connected is not None or force_session_end):
            cur = conn.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ?, updated_at = ?, "
                "end_reason = COALESCE(end_reason, ?) WHERE id = ? AND status != 'ended'",
                (now, now, end_reason, leg["session_id"]),
            )
            session_ended = cur.rowcount > 0
        if remaining == 0:
            queue_session_ended(conn, leg["session_id"], now=now)
    return LegEnded(leg["id"], leg["session_id"], call_uuid, session_ended)


def live_legs_older_than(store: Store, cutoff: float, node_id: str | None = None, *,
                         include_unowned: bool = True) -> list[tuple[str, str]]:
    """(leg id, call uuid) of live legs created before ``cutoff``; with ``node_id``, only that
    node's legs and (``include_unowned``) those no node holds: other nodes' calls are not in
    this FreeSWITCH."""
    if node_id is None:
        rows = store.query(
            "SELECT id, call_uuid FROM call_legs WHERE ended_at IS NULL AND created_at < ?"
            " ORDER BY created_at",
            (cutoff,),
        )
    else:
        rows = store.query(
            "SELECT id, call_uuid FROM call_legs WHERE ended_at IS NULL AND created_at < ?"
            " AND (node_id = ? OR (? = 1 AND node_id IS NULL)) ORDER BY created_at",
            (cutoff, node_id, include_unowned),
        )
    return [(r["id"], r["call_uuid"]) for r in rows]


def live_uuids_from_show_calls(reply: str) -> set[str]:
    """Channel uuids in FreeSWITCH's ``show calls as json`` reply.

    Zero calls read ``{"row_count": 0}`` with no ``rows`` key. Anything that is not that JSON
    (``-ERR …``) raises ValueError: reconciling against a failed reply would end live calls.
    """
    try:
        doc = json.loads(reply)
    except json.JSONDecodeError as exc:
        raise ValueError(f"show calls reply is not JSON: {reply[:80]!r}") from exc
    if not isinstance(doc, dict) or "row_count" not in doc:
        raise ValueError("show calls reply has no row_count")
    uuids: set[str] = set()
    for row in doc.get("rows") or []:
        for key in ("uuid", "b_uuid", "call_uuid"):
            value = row.get(key)
            if value:
                uuids.add(str(value))
    return uuids


def reconcile(store: Store, live_uuids: Iterable[str], *, now: float | None = None,
              grace_s: float = 2.0, node_id: str | None = None,
              include_unowned: bool = True) -> list[LegEnded]:
    """End live legs FreeSWITCH no longer has, so no call slot leaks (after a crash or lost events).

    Only legs older than ``grace_s`` are considered: ``show calls`` lags new channels (~200 ms).
    With ``node_id`` only legs of that node (and, ``include_unowned``, of none) are:
    ``live_uuids`` is one FreeSWITCH's.
    """
    now = time.time() if now is None else now
    live = set(live_uuids)
    ended: list[LegEnded] = []
    for leg_id, call_uuid in live_legs_older_than(store, now - grace_s, node_id,
                                                  include_unowned=include_unowned):
        if call_uuid in live:
            continue
        result = end_leg(store, call_uuid, hangup_cause="LOST_CHANNEL", now=now, end_reason="reconciled",
                         force_session_end=True)
        if result is not None:
            log.info(json.dumps({"event": "leg_reconciled", "leg_id": leg_id, "call_uuid": call_uuid,
                                 "session_id": result.session_id,
                                 "session_ended": result.session_ended}, separators=(",", ":")))
            ended.append(result)
    return ended


class DialError(Exception):
    """Why an outbound leg cannot be placed; ``code`` is the API error code, ``status`` HTTP."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


@dataclass(frozen=True)
class DialReservation:
    leg_id: str
    call_uuid: str
    session_id: str
    role: str
    connection_id: str | None


def reserve_outbound_leg(store: Store, org_id: str, session_id: str, role: str | None, to: str,
                         *, now: float | None = None, node_id: str | None = None) -> DialReservation:
    """Write a ``dialing`` leg for an outbound call, under the same rules and cap as admission,
    held by ``node_id`` (the node whose FreeSWITCH originates it)."""
    now = time.time() if now is None else now
    if role is not None and role not in ROLES:
        raise DialError(422, "invalid_role", "role must be customer or agent", "role")
    with store.transaction() as conn:
        session = conn.execute("SELECT * FROM sessions WHERE id = ? AND org_id = ?",
                               (session_id, org_id)).fetchone()
        if session is None:
            raise DialError(404, "resource_missing", f"No such session: {session_id}", "id")
        if session["status"] in CLOSED_SESSION_STATUSES:
            raise DialError(409, "session_ended", "The session has ended", "id")
        live_roles = [r["role"] for r in conn.execute(
            "SELECT role FROM call_legs WHERE session_id = ? AND ended_at IS NULL", (session_id,))]
        if len(live_roles) >= 2:
            raise DialError(409, "session_full", "The session already has two live call legs")
        if role is None:
            role = "customer" if "customer" not in live_roles else "agent"
        elif role in live_roles:
            raise DialError(409, "role_taken", f"A {role} leg is already on the call", "role")
        if not live_roles:
            cap_row = conn.execute("SELECT max_concurrent_calls FROM sip_settings WHERE org_id = ?",
                                   (org_id,)).fetchone()
            cap = int(cap_row[0]) if cap_row else 0
            busy = conn.execute(
                "SELECT COUNT(DISTINCT session_id) FROM call_legs WHERE org_id = ? AND ended_at IS NULL",
                (org_id,),
            ).fetchone()[0]
            if busy >= cap:
                raise DialError(429, "call_limit_reached",
                                f"The organization is at max_concurrent_calls ({cap})")
        leg_id = new_id("leg")
        call_uuid = str(uuid.uuid4())
        conn.execute(
            """INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status,
                                      remote, created_at, node_id)
               VALUES (?, ?, ?, ?, ?, 'outbound', 'dialing', ?, ?, ?)""",
            (leg_id, session_id, org_id, call_uuid, role, to, now, node_id),
        )
    return DialReservation(leg_id, call_uuid, session_id, role, session["connection_id"])

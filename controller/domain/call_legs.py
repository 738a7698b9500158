"""A session's call legs as the API and webhooks show them: who, which way, the SIP outcome,
and the call quality FreeSWITCH measured (controller/calls/quality.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from controller.domain.timeutil import iso

_COLUMNS = ("id, session_id, role, direction, status, sip_code, hangup_cause, remote, created_at,"
            " answered_at, ended_at, quality")


def leg_json(row: sqlite3.Row) -> dict[str, object]:
    answered, ended = row["answered_at"], row["ended_at"]
    return {
        "id": row["id"],
        "role": row["role"],
        "direction": row["direction"],
        "status": row["status"],
        "remote": row["remote"],
        "sip_code": row["sip_code"],
        "hangup_cause": row["hangup_cause"],
        "created_at": iso(row["created_at"]),
        "answered_at": iso(answered),
        "ended_at": iso(ended),
        "duration_s": round(ended - answered, 3) if answered is not None and ended is not None else None,
        "quality": json.loads(row["quality"]) if row["quality"] else None,
    }


def legs_of(conn: sqlite3.Connection, session_ids: Iterable[str]) -> dict[str, list[dict[str, object]]]:
    """Legs per session id, oldest first (one query for a whole page of sessions)."""
    ids = list(dict.fromkeys(session_ids))
    out: dict[str, list[dict[str, object]]] = {sid: [] for sid in ids}
    if not ids:
        return out
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM call_legs WHERE session_id IN ({marks}) ORDER BY created_at, id",  # noqa: S608
        ids,
    ).fetchall()
    for row in rows:
        out[row["session_id"]].append(leg_json(row))
    return out

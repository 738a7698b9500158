"""Translation sessions: creation (with telephony resolution), reads, listing, ending, idle ending.

The call controller reuses :func:`create_session` for calls to a managed number that arrive
with no open session, and :func:`end_session` when the last leg hangs up.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from controller.domain.call_legs import legs_of
from controller.domain.errors import DomainError, NotFound
from controller.domain.languages import AUTO
from controller.domain.pagination import PageRequest, keyset_page
from controller.domain.requests import SessionCreate
from controller.domain.routing import resolve
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.settings import Settings
from controller.store import Store
from controller.webhooks.call_events import queue_session_ended
from controller.webhooks.outbox import enqueue

log = logging.getLogger(__name__)

STATUSES = ("created", "connecting", "active", "ending", "ended")
OPEN_STATUSES = ("created", "connecting", "active")
IDLE_TIMEOUT_S = 30 * 60
DEFAULT_MODE = "bidirectional_translation"
DEFAULT_REGION = "eu"


@dataclass(frozen=True)
class SessionRecord:
    id: str
    org_id: str
    mode: str
    source_language: str
    target_language: str
    region: str
    provider: str
    phone_number: str | None
    connection_id: str | None
    direction: str | None
    status: str
    metadata: dict[str, Any]
    end_reason: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    ended_at: float | None
    last_audio_at: float | None
    sip_transports: list[str] | None = field(default=None)
    # The call legs (controller/domain/call_legs.py), oldest first; filled by the reads.
    legs: list[dict[str, object]] = field(default_factory=list)

    def sip_uri(self, sip_domain: str) -> str:
        return f"sip:{self.id}@{sip_domain}"

    def to_json(self, sip_domain: str) -> dict[str, object]:
        sip = None
        if self.provider == "sip":
            sip = {"uri": self.sip_uri(sip_domain), "transports": self.sip_transports or []}
        return {
            "id": self.id,
            "object": "session",
            "status": self.status,
            "mode": self.mode,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "region": self.region,
            "provider": self.provider,
            "phone_number": self.phone_number,
            "connection_id": self.connection_id,
            "direction": self.direction,
            "sip": sip,
            "metadata": self.metadata,
            "end_reason": self.end_reason,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "legs": self.legs,
        }


_SELECT = (
    "SELECT s.*, ss.allowed_transports AS sip_transports FROM sessions s"
    " LEFT JOIN sip_settings ss ON ss.org_id = s.org_id"
)


def _from_row(r: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        id=r["id"],
        org_id=r["org_id"],
        mode=r["mode"],
        source_language=r["source_language"],
        target_language=r["target_language"],
        region=r["region"],
        provider=r["provider"],
        phone_number=r["phone_number"],
        connection_id=r["connection_id"],
        direction=r["direction"],
        status=r["status"],
        metadata=json.loads(r["metadata"]),
        end_reason=r["end_reason"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        last_audio_at=r["last_audio_at"],
        sip_transports=json.loads(r["sip_transports"])
        if r["provider"] == "sip" and r["sip_transports"]
        else None,
    )


# ------------------------------------------------------------------------ language pairs

_PairCheck = Callable[[str, str], "str | None"]
_pair_check: _PairCheck | None = None
_pair_check_loaded = False


def _unsupported_pair_reason(source: str, target: str) -> str | None:
    """Ask the bridge's engine which pairs it can translate; without it, accept every pair."""
    global _pair_check, _pair_check_loaded
    if not _pair_check_loaded:
        _pair_check_loaded = True
        try:
            from media_bridge.capabilities import unsupported_pair_reason

            _pair_check = unsupported_pair_reason
        except ImportError as exc:
            log.warning("media_bridge.capabilities unavailable (%s): accepting every language pair", exc)
    return None if _pair_check is None else _pair_check(source, target)


# --------------------------------------------------------------------------------- create


def _check_routing_shape(body: SessionCreate) -> None:
    r = body.routing
    if r is None:
        return
    methods = [name for name in ("connection_id", "type", "phone_number") if getattr(r, name) is not None]
    if len(methods) > 1:
        raise DomainError(
            400,
            "parameter_invalid",
            f"routing takes at most one of connection_id, type, phone_number (got {', '.join(methods)})",
            param="routing",
        )
    if r.type == "sip" and r.direction is not None:
        raise DomainError(
            400,
            "parameter_invalid",
            "routing.direction does not apply to SIP sessions",
            param="routing.direction",
        )


def create_session(
    store: Store, settings: Settings, org_id: str, request_model: SessionCreate
) -> SessionRecord:
    """Resolve telephony and store a new session (status ``created``) in one transaction.

    ``settings`` is accepted for the callers' convenience and future per-install defaults.
    """
    with store.transaction() as conn:
        return create_session_in(conn, org_id, request_model, sip_domain=settings.sip_domain)


def create_session_in(
    conn: sqlite3.Connection, org_id: str, request_model: SessionCreate, *, sip_domain: str = ""
) -> SessionRecord:
    """:func:`create_session` inside the caller's open transaction (e.g. call admission's).

    Queues ``session.created`` (the session resource) in the same transaction; ``sip_domain``
    builds ``sip.uri`` there, so pass it for SIP-routed sessions.
    """
    body = request_model
    _check_routing_shape(body)
    sid = new_id("sess")
    ts = now()
    resolution = resolve(conn, org_id, body.routing)
    mode, region, source, target = DEFAULT_MODE, DEFAULT_REGION, AUTO, AUTO
    if resolution.provider == "sip":
        d = conn.execute(
            "SELECT default_mode, default_region, default_source_language, default_target_language"
            " FROM sip_settings WHERE org_id = ?",
            (org_id,),
        ).fetchone()
        mode, region = d["default_mode"], d["default_region"]
        source, target = d["default_source_language"], d["default_target_language"]
    mode = body.mode or mode
    region = body.region or region
    source = body.source_language or source
    target = body.target_language or target
    if source != AUTO and target != AUTO and source != target:
        reason = _unsupported_pair_reason(source, target)
        if reason:
            raise DomainError(422, "language_pair_not_supported", reason, param="target_language")
    conn.execute(
        "INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,"
        " phone_number, connection_id, direction, status, metadata, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?, 'created', ?, ?, ?)",
        (
            sid,
            org_id,
            mode,
            source,
            target,
            region,
            resolution.provider,
            resolution.phone_number,
            resolution.connection_id,
            resolution.direction,
            json.dumps(body.metadata or {}),
            ts,
            ts,
        ),
    )
    record = _load(conn, sid)
    enqueue(conn, org_id, "session.created", record.to_json(sip_domain), now=ts)
    return record


# ---------------------------------------------------------------------------------- reads


def _load(conn: sqlite3.Connection, session_id: str) -> SessionRecord:
    row = conn.execute(f"{_SELECT} WHERE s.id = ?", (session_id,)).fetchone()
    if row is None:
        raise NotFound("session", session_id, param="id")
    return _from_row(row)


def _with_legs(store: Store, records: list[SessionRecord]) -> list[SessionRecord]:
    with store.lock:
        legs = legs_of(store.conn, [r.id for r in records])
    return [replace(r, legs=legs[r.id]) for r in records]


def get_session(store: Store, org_id: str, session_id: str) -> SessionRecord:
    """The organization's session with its legs; another organization's id reads as not found."""
    row = store.query_one(f"{_SELECT} WHERE s.id = ? AND s.org_id = ?", (session_id, org_id))
    if row is None:
        raise NotFound("session", session_id, param="id")
    return _with_legs(store, [_from_row(row)])[0]


def list_sessions(
    store: Store, org_id: str, *, page: PageRequest | None = None, status: str | None = None
) -> tuple[list[SessionRecord], bool]:
    """Newest first; returns (page, has_more)."""
    where, params = ["s.org_id = ?"], [org_id]
    if status is not None:
        where.append("s.status = ?")
        params.append(status)
    rows, has_more = keyset_page(
        store,
        select=_SELECT,
        alias="s",
        table="sessions",
        org_id=org_id,
        where=where,
        params=params,
        page=page or PageRequest(),
    )
    return _with_legs(store, [_from_row(r) for r in rows]), has_more


# ------------------------------------------------------------------------------------ end


def end_session(store: Store, session_id: str, reason: str) -> list[str]:
    """End the session (ending → ended, ended_at) in one transaction; idempotent.

    Returns the FreeSWITCH uuids of its live legs (``ended_at IS NULL``) for the caller to hang
    up; the controller closes the leg rows when FreeSWITCH reports the hangups.
    """
    with store.transaction() as conn:
        row = conn.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise NotFound("session", session_id, param="id")
        legs = conn.execute(
            "SELECT call_uuid FROM call_legs WHERE session_id = ? AND ended_at IS NULL ORDER BY created_at",
            (session_id,),
        ).fetchall()
        if row["status"] != "ended":
            ts = now()
            conn.execute(
                "UPDATE sessions SET status = 'ending', updated_at = ? WHERE id = ?", (ts, session_id)
            )
            conn.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ?, end_reason = ?, updated_at = ?"
                " WHERE id = ?",
                (ts, reason, ts, session_id),
            )
            # With legs still up, their hangups queue it (controller/calls/legs.py end_leg).
            queue_session_ended(conn, session_id, now=ts)
    return [leg["call_uuid"] for leg in legs]


def idle_session_ids(store: Store, *, at: float, idle_s: float = IDLE_TIMEOUT_S) -> list[str]:
    """Open sessions whose last activity (max of created_at, last_audio_at) is older than ``idle_s``."""
    rows = store.query(
        "SELECT id FROM sessions WHERE status IN ('created','connecting','active')"
        # max(a, b) < x as a < x AND b < x: two-argument MAX is SQLite's only (GREATEST elsewhere).
        " AND created_at < ? AND COALESCE(last_audio_at, 0) < ? ORDER BY created_at",
        (at - idle_s, at - idle_s),
    )
    return [r["id"] for r in rows]

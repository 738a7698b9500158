"""What the bridge reads and writes in the shared store: session lookup, status/last_audio_at,
transcript turns. Blocking (SQLite may wait on another process's lock): call via a thread.

``session.started`` and ``transcript.segment`` webhooks are queued in the same transactions
(controller/webhooks/outbox.py), so an event exists exactly when its change was committed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from controller.domain.timeutil import iso
from controller.domain.transcripts import Turn
from controller.store import Store
from controller.webhooks.outbox import enqueue

OPEN_STATUSES = ("created", "connecting", "active")


@dataclass(frozen=True)
class SessionInfo:
    id: str
    mode: str
    source_language: str
    target_language: str
    status: str

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class TurnRecord:
    session_id: str
    speaker: str  # customer | agent
    language: str
    text: str
    translation_language: str | None
    translation_text: str | None
    started_at: float
    ended_at: float
    translation_path: str | None = None  # media_bridge.translation_paths names


def load_session(store: Store, session_id: str) -> SessionInfo | None:
    row = store.query_one(
        "SELECT id, mode, source_language, target_language, status FROM sessions WHERE id = ?", (session_id,)
    )
    if row is None:
        return None
    return SessionInfo(row["id"], row["mode"], row["source_language"], row["target_language"], row["status"])


def mark_audio(store: Store, session_id: str, first: bool, now: float | None = None) -> str | None:
    """Record audio on the session: ``active`` on the first frame, ``last_audio_at`` always.
    Returns the session's status afterwards (None if the row is gone)."""
    now = time.time() if now is None else now
    with store.transaction() as conn:
        started = False
        if first:
            started = conn.execute(
                "UPDATE sessions SET status = 'active', started_at = COALESCE(started_at, ?), updated_at = ?"
                " WHERE id = ? AND status IN ('created', 'connecting')",
                (now, now, session_id),
            ).rowcount > 0
        conn.execute("UPDATE sessions SET last_audio_at = ? WHERE id = ?", (now, session_id))
        row = conn.execute(
            "SELECT org_id, status, started_at FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if started and row is not None:
            data = {"session_id": session_id, "status": row["status"], "started_at": iso(row["started_at"])}
            enqueue(conn, row["org_id"], "session.started", data, now=now)
    return None if row is None else str(row["status"])


def insert_turn(store: Store, turn: TurnRecord, now: float | None = None) -> int:
    """Insert a transcript turn with the session's next sequence number (1, 2, …), atomically
    with respect to other writers (BEGIN IMMEDIATE holds the write lock across read + insert)."""
    now = time.time() if now is None else now
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM transcript_turns WHERE session_id = ?",
            (turn.session_id,),
        ).fetchone()
        sequence = int(row["next"])
        conn.execute(
            "INSERT INTO transcript_turns (session_id, sequence, speaker, language, text,"
            " translation_language, translation_text, translation_path, started_at, ended_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                turn.session_id,
                sequence,
                turn.speaker,
                turn.language,
                turn.text,
                turn.translation_language,
                turn.translation_text,
                turn.translation_path,
                turn.started_at,
                turn.ended_at,
                now,
            ),
        )
        org = conn.execute("SELECT org_id FROM sessions WHERE id = ?", (turn.session_id,)).fetchone()
        if org is not None:
            shown = Turn(sequence, turn.speaker, turn.language, turn.text, turn.translation_language,
                         turn.translation_text, turn.started_at, turn.translation_path)
            enqueue(conn, org["org_id"], "transcript.segment",
                    {"session_id": turn.session_id, **shown.to_json()}, now=now)
    return sequence

"""Writing API log entries: one INSERT each (the cost every API request pays)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from controller.ids import new_id
from controller.store import Store

KINDS = ("api_request", "webhook_delivery")
PATH_MAX = 256

_INSERT = (
    "INSERT INTO api_logs (id, org_id, kind, method, path, status, duration_ms, request_id, error_code,"
    " endpoint_id, event_id, event_type, attempt, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(frozen=True)
class ApiRequestEntry:
    org_id: str
    method: str
    path: str  # the URL path only: never the query string
    status: int
    duration_ms: float
    request_id: str
    error_code: str | None


@dataclass(frozen=True)
class DeliveryEntry:
    org_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    status: int | None  # the receiver's HTTP status; None when no response came
    error_code: str | None  # timeout | connection_error | target_not_allowed | http_<status>
    duration_ms: float


def record_request(store: Store, entry: ApiRequestEntry, *, at: float | None = None) -> None:
    at = time.time() if at is None else at
    with store.lock:
        # Autocommit: a single statement is its own transaction.
        store.conn.execute(
            _INSERT,
            (new_id("log"), entry.org_id, "api_request", entry.method, entry.path[:PATH_MAX], entry.status,
             round(entry.duration_ms, 3), entry.request_id, entry.error_code, None, None, None, None, at),
        )


def record_requests(store: Store, entries: list[tuple[ApiRequestEntry, float]]) -> None:
    """Many entries (each with its time) in one transaction: the batched writer's flush."""
    if not entries:
        return
    rows = [
        (new_id("log"), e.org_id, "api_request", e.method, e.path[:PATH_MAX], e.status,
         round(e.duration_ms, 3), e.request_id, e.error_code, None, None, None, None, at)
        for e, at in entries
    ]
    with store.transaction() as conn:
        conn.executemany(_INSERT, rows)


def record_delivery_in(conn: sqlite3.Connection, entry: DeliveryEntry, *, at: float | None = None) -> None:
    """Inside the worker's transaction that records the attempt's outcome."""
    at = time.time() if at is None else at
    conn.execute(
        _INSERT,
        (new_id("log"), entry.org_id, "webhook_delivery", "POST", None, entry.status,
         round(entry.duration_ms, 3), None, entry.error_code, entry.endpoint_id, entry.event_id,
         entry.event_type, entry.attempt, at),
    )

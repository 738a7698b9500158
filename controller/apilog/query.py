"""Reading the API log (GET /v1/api_logs) and purging old entries."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.domain.pagination import PageRequest, keyset_page
from controller.domain.timeutil import iso
from controller.store import Store


@dataclass(frozen=True)
class LogFilter:
    kind: str | None = None
    status: int | None = None
    status_class: int | None = None  # 4 for "4xx"
    method: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    endpoint_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    created_gte: float | None = None
    created_lt: float | None = None


@dataclass(frozen=True)
class ApiLog:
    id: str
    kind: str
    method: str | None
    path: str | None
    status: int | None
    duration_ms: float | None
    request_id: str | None
    error_code: str | None
    endpoint_id: str | None
    event_id: str | None
    event_type: str | None
    attempt: int | None
    created_at: float

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "api_log",
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "request_id": self.request_id,
            "error_code": self.error_code,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempt": self.attempt,
            "created_at": iso(self.created_at),
        }


_COLUMNS = (
    "id, kind, method, path, status, duration_ms, request_id, error_code, endpoint_id, event_id,"
    " event_type, attempt, created_at"
)


def _from_row(r: sqlite3.Row) -> ApiLog:
    return ApiLog(*(r[name.strip()] for name in _COLUMNS.split(",")))


def list_logs(
    store: Store, org_id: str, filters: LogFilter, *, page: PageRequest | None = None
) -> tuple[list[ApiLog], bool]:
    """Newest first; returns (page, has_more)."""
    where: list[str] = ["l.org_id = ?"]
    params: list[object] = [org_id]
    for column in ("kind", "status", "method", "request_id", "error_code", "endpoint_id", "event_id",
                   "event_type"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"l.{column} = ?")
            params.append(value)
    if filters.status_class is not None:
        where.append("l.status >= ? AND l.status < ?")
        params += [filters.status_class * 100, filters.status_class * 100 + 100]
    if filters.created_gte is not None:
        where.append("l.created_at >= ?")
        params.append(filters.created_gte)
    if filters.created_lt is not None:
        where.append("l.created_at < ?")
        params.append(filters.created_lt)
    rows, has_more = keyset_page(
        store,
        select=f"SELECT {_COLUMNS} FROM api_logs l",  # noqa: S608 -- our own column list
        alias="l",
        table="api_logs",
        org_id=org_id,
        where=where,
        params=params,
        page=page or PageRequest(),
    )
    return [_from_row(r) for r in rows], has_more


def purge_older_than(store: Store, cutoff: float) -> int:
    """Delete entries created before ``cutoff`` (unix seconds); returns how many."""
    with store.lock:
        cur = store.conn.execute("DELETE FROM api_logs WHERE created_at < ?", (cutoff,))
        return cur.rowcount

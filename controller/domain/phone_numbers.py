"""Managed phone numbers: E.164, unique in the install, each on an active connection of its org."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.domain.connections import load_connection
from controller.domain.errors import DomainError, NotFound
from controller.domain.pagination import PageRequest, keyset_page
from controller.domain.requests import PhoneNumberCreate, PhoneNumberUpdate
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.store import Store


@dataclass(frozen=True)
class PhoneNumber:
    id: str
    org_id: str
    number: str
    connection_id: str
    provider: str
    status: str
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "phone_number",
            "number": self.number,
            "connection_id": self.connection_id,
            "provider": self.provider,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


_SELECT = (
    "SELECT pn.*, c.provider AS provider FROM phone_numbers pn JOIN connections c ON c.id = pn.connection_id"
)


def _from_row(r: sqlite3.Row) -> PhoneNumber:
    return PhoneNumber(
        r["id"],
        r["org_id"],
        r["number"],
        r["connection_id"],
        r["provider"],
        r["status"],
        r["created_at"],
        r["updated_at"],
    )


def _require(conn: sqlite3.Connection, org_id: str, number_id: str) -> PhoneNumber:
    row = conn.execute(f"{_SELECT} WHERE pn.id = ? AND pn.org_id = ?", (number_id, org_id)).fetchone()
    if row is None:
        raise NotFound("phone number", number_id, param="id")
    return _from_row(row)


def _require_active_connection(conn: sqlite3.Connection, org_id: str, connection_id: str) -> None:
    found = load_connection(conn, org_id, connection_id)
    if found is None or found.status != "active":
        raise DomainError(
            400, "connection_not_found", f"No active connection {connection_id!r}", param="connection_id"
        )


def find_active_number(conn: sqlite3.Connection, org_id: str, number: str) -> PhoneNumber | None:
    row = conn.execute(
        f"{_SELECT} WHERE pn.number = ? AND pn.org_id = ? AND pn.status = 'active'", (number, org_id)
    ).fetchone()
    return None if row is None else _from_row(row)


def create_phone_number(store: Store, org_id: str, body: PhoneNumberCreate) -> PhoneNumber:
    ts = now()
    pid = new_id("pn")
    with store.transaction() as conn:
        _require_active_connection(conn, org_id, body.connection_id)
        existing = conn.execute(
            "SELECT id, status FROM phone_numbers WHERE number = ?", (body.number,)
        ).fetchone()
        if existing is not None:
            if existing["status"] == "active":
                # Same message whoever holds it: do not reveal which organization does.
                raise DomainError(
                    409, "phone_number_taken", f"{body.number} is already in use", param="number"
                )
            # A released number may be claimed again; sessions keep the number as text, not a key.
            conn.execute("DELETE FROM phone_numbers WHERE id = ?", (existing["id"],))
        conn.execute(
            "INSERT INTO phone_numbers (id, org_id, number, connection_id, status, created_at, updated_at)"
            " VALUES (?,?,?,?, 'active', ?, ?)",
            (pid, org_id, body.number, body.connection_id, ts, ts),
        )
        return _require(conn, org_id, pid)


def get_phone_number(store: Store, org_id: str, number_id: str) -> PhoneNumber:
    with store.lock:
        return _require(store.conn, org_id, number_id)


def list_phone_numbers(
    store: Store, org_id: str, *, page: PageRequest | None = None, status: str | None = None
) -> tuple[list[PhoneNumber], bool]:
    """Newest first; returns (page, has_more)."""
    where, params = ["pn.org_id = ?"], [org_id]
    if status is not None:
        where.append("pn.status = ?")
        params.append(status)
    rows, has_more = keyset_page(
        store,
        select=_SELECT,
        alias="pn",
        table="phone_numbers",
        org_id=org_id,
        where=where,
        params=params,
        page=page or PageRequest(),
    )
    return [_from_row(r) for r in rows], has_more


def update_phone_number(store: Store, org_id: str, number_id: str, patch: PhoneNumberUpdate) -> PhoneNumber:
    with store.transaction() as conn:
        cur = _require(conn, org_id, number_id)
        connection_id = patch.connection_id or cur.connection_id
        status = patch.status or cur.status
        if patch.connection_id is not None or (status == "active" and cur.status != "active"):
            _require_active_connection(conn, org_id, connection_id)
        conn.execute(
            "UPDATE phone_numbers SET connection_id = ?, status = ?, updated_at = ? WHERE id = ?",
            (connection_id, status, now(), number_id),
        )
        return _require(conn, org_id, number_id)

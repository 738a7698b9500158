"""Provider connections (Twilio / Telnyx): credentials, SIP gateway, inbound addresses, default."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from controller.domain.errors import DomainError, NotFound, from_validation_error
from controller.domain.pagination import PageRequest, keyset_page
from controller.domain.requests import (
    ConnectionCreate,
    ConnectionUpdate,
    SipGateway,
    TelnyxCredentials,
    TwilioCredentials,
)
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.store import Store

CREDENTIAL_MODELS: dict[str, type[BaseModel]] = {"twilio": TwilioCredentials, "telnyx": TelnyxCredentials}
# Write-only fields: shown masked on read.
SECRET_CREDENTIAL_FIELDS = frozenset({"auth_token", "api_key"})
MASK = "••••"


def mask_tail(secret: str) -> str:
    """``••••cdef``: enough to recognise a token, never enough to use it."""
    return MASK + secret[-4:] if len(secret) >= 16 else MASK


@dataclass(frozen=True)
class Connection:
    id: str
    org_id: str
    provider: str
    name: str
    credentials: dict[str, str]
    sip: dict[str, Any] | None
    inbound_addresses: list[str]
    is_default: bool
    status: str
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, object]:
        creds = {
            k: (mask_tail(v) if k in SECRET_CREDENTIAL_FIELDS else v) for k, v in self.credentials.items()
        }
        sip = None
        if self.sip is not None:
            # A SIP password may be short: never reveal any of it.
            sip = {**self.sip, "password": MASK}
        return {
            "id": self.id,
            "object": "connection",
            "provider": self.provider,
            "name": self.name,
            "credentials": creds,
            "sip": sip,
            "inbound_addresses": self.inbound_addresses,
            "is_default": self.is_default,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def _from_row(r: sqlite3.Row) -> Connection:
    return Connection(
        id=r["id"],
        org_id=r["org_id"],
        provider=r["provider"],
        name=r["name"],
        credentials=json.loads(r["credentials"]),
        sip=json.loads(r["sip"]) if r["sip"] else None,
        inbound_addresses=json.loads(r["inbound_addresses"]),
        is_default=bool(r["is_default"]),
        status=r["status"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


def _validate_credentials(provider: str, credentials: dict[str, str]) -> dict[str, str]:
    try:
        model = CREDENTIAL_MODELS[provider].model_validate(credentials)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix="credentials") from None
    return model.model_dump()


def _gateway_json(sip: SipGateway | None) -> str | None:
    return None if sip is None else json.dumps(sip.model_dump(by_alias=True))


def load_connection(conn: sqlite3.Connection, org_id: str, connection_id: str) -> Connection | None:
    """The organization's connection (any status but deleted); None for unknown or another org's."""
    row = conn.execute(
        "SELECT * FROM connections WHERE id = ? AND org_id = ? AND status != 'deleted'",
        (connection_id, org_id),
    ).fetchone()
    return None if row is None else _from_row(row)


def _require(conn: sqlite3.Connection, org_id: str, connection_id: str) -> Connection:
    found = load_connection(conn, org_id, connection_id)
    if found is None:
        raise NotFound("connection", connection_id, param="id")
    return found


def _clear_default(conn: sqlite3.Connection, org_id: str) -> None:
    conn.execute("UPDATE connections SET is_default = 0 WHERE org_id = ? AND is_default = 1", (org_id,))


def create_connection(store: Store, org_id: str, body: ConnectionCreate) -> Connection:
    creds = _validate_credentials(body.provider, body.credentials)
    ts = now()
    cid = new_id("pcon")
    with store.transaction() as conn:
        if body.is_default:
            _clear_default(conn, org_id)
        conn.execute(
            "INSERT INTO connections (id, org_id, provider, name, credentials, sip, inbound_addresses,"
            " is_default, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                cid,
                org_id,
                body.provider,
                body.name,
                json.dumps(creds),
                _gateway_json(body.sip),
                json.dumps(body.inbound_addresses),
                int(body.is_default),
                body.status,
                ts,
                ts,
            ),
        )
        return _require(conn, org_id, cid)


def get_connection(store: Store, org_id: str, connection_id: str) -> Connection:
    with store.lock:
        return _require(store.conn, org_id, connection_id)


def list_connections(
    store: Store, org_id: str, *, page: PageRequest | None = None, status: str | None = None
) -> tuple[list[Connection], bool]:
    """Newest first, deleted ones never; returns (page, has_more)."""
    where, params = ["c.org_id = ?", "c.status != 'deleted'"], [org_id]
    if status is not None:
        where.append("c.status = ?")
        params.append(status)
    rows, has_more = keyset_page(
        store,
        select="SELECT c.* FROM connections c",
        alias="c",
        table="connections",
        org_id=org_id,
        where=where,
        params=params,
        page=page or PageRequest(),
    )
    return [_from_row(r) for r in rows], has_more


def _active_numbers_using(conn: sqlite3.Connection, connection_id: str) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM phone_numbers WHERE connection_id = ? AND status = 'active'", (connection_id,)
    ).fetchone()
    return int(row[0])


def update_connection(store: Store, org_id: str, connection_id: str, patch: ConnectionUpdate) -> Connection:
    with store.transaction() as conn:
        cur = _require(conn, org_id, connection_id)
        changes: dict[str, object] = {}
        if patch.name is not None:
            changes["name"] = patch.name
        if patch.credentials is not None:
            changes["credentials"] = json.dumps(_validate_credentials(cur.provider, patch.credentials))
        if "sip" in patch.model_fields_set:
            changes["sip"] = _gateway_json(patch.sip)
        if patch.inbound_addresses is not None:
            changes["inbound_addresses"] = json.dumps(patch.inbound_addresses)
        if patch.status is not None:
            changes["status"] = patch.status
        if patch.is_default is not None:
            if patch.is_default and not cur.is_default:
                _clear_default(conn, org_id)
            changes["is_default"] = int(patch.is_default)
        changes["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours
        conn.execute(
            f"UPDATE connections SET {assignments} WHERE id = ?",  # noqa: S608
            (*changes.values(), connection_id),
        )
        return _require(conn, org_id, connection_id)


def delete_connection(store: Store, org_id: str, connection_id: str) -> Connection:
    """Marks it deleted (rows stay for sessions that reference it); refused while numbers use it."""
    with store.transaction() as conn:
        cur = _require(conn, org_id, connection_id)
        in_use = _active_numbers_using(conn, connection_id)
        if in_use:
            raise DomainError(
                409,
                "connection_in_use",
                f"Connection {connection_id} is used by {in_use} active phone number(s); "
                "release them or move them to another connection first",
                param="id",
            )
        ts = now()
        conn.execute(
            "UPDATE connections SET status = 'deleted', is_default = 0, updated_at = ? WHERE id = ?",
            (ts, connection_id),
        )
    return Connection(**{**cur.__dict__, "status": "deleted", "is_default": False, "updated_at": ts})

"""Webhook endpoints of an organization: URL, subscribed events, signing secret and its rotation."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from controller.domain.errors import DomainError, NotFound
from controller.domain.pagination import PageRequest, keyset_page
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.store import Store
from controller.webhooks import ssrf
from controller.webhooks.requests import RotateSecret, WebhookEndpointCreate, WebhookEndpointUpdate
from controller.webhooks.signing import new_secret


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    org_id: str
    url: str
    description: str | None
    enabled_events: list[str]
    status: str
    previous_secret_expires_at: float | None
    created_at: float
    updated_at: float
    # Never part of to_json() or repr(); shown only by the create and rotate responses.
    secret: str = field(repr=False)
    previous_secret: str | None = field(default=None, repr=False)

    def signing_secrets(self, at: float) -> list[str]:
        """Secrets that sign a delivery at ``at``: the current one, then a rotated-out one in its grace."""
        out = [self.secret]
        if self.previous_secret and (self.previous_secret_expires_at or 0) > at:
            out.append(self.previous_secret)
        return out

    def to_json(self, *, include_secret: bool = False) -> dict[str, object]:
        at = now()
        previous_active = bool(self.previous_secret) and (self.previous_secret_expires_at or 0) > at
        body: dict[str, object] = {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "description": self.description,
            "enabled_events": self.enabled_events,
            "status": self.status,
            "previous_secret_expires_at": iso(self.previous_secret_expires_at) if previous_active else None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if include_secret:
            body["secret"] = self.secret
        return body


def _from_row(r: sqlite3.Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=r["id"],
        org_id=r["org_id"],
        url=r["url"],
        description=r["description"],
        enabled_events=json.loads(r["enabled_events"]),
        status=r["status"],
        previous_secret_expires_at=r["previous_secret_expires_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        secret=r["secret"],
        previous_secret=r["previous_secret"],
    )


def _require(conn: sqlite3.Connection, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = conn.execute(
        "SELECT * FROM webhook_endpoints WHERE id = ? AND org_id = ? AND status != 'deleted'",
        (endpoint_id, org_id),
    ).fetchone()
    if row is None:
        raise NotFound("webhook endpoint", endpoint_id, param="id")
    return _from_row(row)


def check_target(url: str, allow_private: bool) -> None:
    """422 naming ``url`` when the address policy refuses its host (blocking: DNS)."""
    try:
        ssrf.check_url_target(url, allow_private)
    except ssrf.TargetNotAllowed as exc:
        raise DomainError(
            422,
            ssrf.ERROR_CODE,
            f"{exc.host} is or resolves to a private, loopback, link-local or reserved address; "
            "this install does not deliver webhooks there (KALLGLOT_WEBHOOK_ALLOW_PRIVATE_TARGETS)",
            param="url",
        ) from None


def create_endpoint(
    store: Store, org_id: str, body: WebhookEndpointCreate, *, allow_private: bool
) -> WebhookEndpoint:
    check_target(body.url, allow_private)  # before the transaction: DNS may take a while
    ts = now()
    eid = new_id("we")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (id, org_id, url, description, enabled_events, secret, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'enabled', ?, ?)",
            (eid, org_id, body.url, body.description, json.dumps(body.enabled_events), new_secret(), ts, ts),
        )
        return _require(conn, org_id, eid)


def get_endpoint(store: Store, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    with store.lock:
        return _require(store.conn, org_id, endpoint_id)


def list_endpoints(
    store: Store, org_id: str, *, page: PageRequest | None = None, status: str | None = None
) -> tuple[list[WebhookEndpoint], bool]:
    """Newest first, deleted ones never; returns (page, has_more)."""
    where, params = ["w.org_id = ?", "w.status != 'deleted'"], [org_id]
    if status is not None:
        where.append("w.status = ?")
        params.append(status)
    rows, has_more = keyset_page(
        store,
        select="SELECT w.* FROM webhook_endpoints w",
        alias="w",
        table="webhook_endpoints",
        org_id=org_id,
        where=where,
        params=params,
        page=page or PageRequest(),
    )
    return [_from_row(r) for r in rows], has_more


def update_endpoint(
    store: Store, org_id: str, endpoint_id: str, patch: WebhookEndpointUpdate, *, allow_private: bool
) -> WebhookEndpoint:
    if patch.url is not None:
        check_target(patch.url, allow_private)
    with store.transaction() as conn:
        _require(conn, org_id, endpoint_id)
        changes: dict[str, object] = {}
        if patch.url is not None:
            changes["url"] = patch.url
        if patch.enabled_events is not None:
            changes["enabled_events"] = json.dumps(patch.enabled_events)
        if "description" in patch.model_fields_set:
            changes["description"] = patch.description
        if patch.status is not None:
            changes["status"] = patch.status
        changes["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours
        conn.execute(
            f"UPDATE webhook_endpoints SET {assignments} WHERE id = ?",  # noqa: S608
            (*changes.values(), endpoint_id),
        )
        return _require(conn, org_id, endpoint_id)


def delete_endpoint(store: Store, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Marks it deleted; its pending deliveries end as failed (``endpoint_disabled``) when due."""
    with store.transaction() as conn:
        _require(conn, org_id, endpoint_id)
        ts = now()
        conn.execute(
            "UPDATE webhook_endpoints SET status = 'deleted', previous_secret = NULL,"
            " previous_secret_expires_at = NULL, updated_at = ? WHERE id = ?",
            (ts, endpoint_id),
        )
        row = conn.execute("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    return _from_row(row)


def rotate_secret(store: Store, org_id: str, endpoint_id: str, body: RotateSecret) -> WebhookEndpoint:
    """A new secret; the old one keeps signing (as a second ``v1=``) for ``expire_previous_in_s``."""
    with store.transaction() as conn:
        current = _require(conn, org_id, endpoint_id)
        ts = now()
        keep = body.expire_previous_in_s > 0
        conn.execute(
            "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_secret_expires_at = ?,"
            " updated_at = ? WHERE id = ?",
            (
                new_secret(),
                current.secret if keep else None,
                ts + body.expire_previous_in_s if keep else None,
                ts,
                endpoint_id,
            ),
        )
        return _require(conn, org_id, endpoint_id)

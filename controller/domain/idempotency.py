"""Idempotency keys on POSTs (DESIGN.md §2): one stored response per (organization, key), 24 h.

Same key + same request → the stored response; same key + another request → mismatch; same key
while the first request still runs → conflict. A request that fails with a server error is
forgotten, so that a retry with the same key runs again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from controller.domain.errors import DomainError
from controller.domain.timeutil import now
from controller.store import Store

TTL_S = 24 * 3600
# A key still "running" after this long belongs to a request that died (process killed, or the
# store was too busy to release it): a retry takes it over instead of conflicting for 24 h.
RUNNING_STALE_S = 300
MAX_KEY_LEN = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of the request; JSON bodies are canonicalised so key order and spacing do not matter."""
    try:
        canonical = (
            json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
        )
    except (ValueError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LEN or not key.isprintable():
        raise DomainError(
            400,
            "parameter_invalid",
            f"Idempotency-Key must be 1-{MAX_KEY_LEN} printable characters",
            param="Idempotency-Key",
        )


def begin(
    store: Store, org_id: str, key: str, method: str, path: str, fingerprint: str
) -> StoredResponse | None:
    """Claim the key (→ None: run the request) or return the stored response to replay."""
    check_key(key)
    ts = now()
    with store.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM idempotency_keys WHERE org_id = ? AND key = ?", (org_id, key)
        ).fetchone()
        if row is not None and row["created_at"] < ts - TTL_S:
            conn.execute("DELETE FROM idempotency_keys WHERE org_id = ? AND key = ?", (org_id, key))
            row = None
        if row is None:
            conn.execute(
                "INSERT INTO idempotency_keys (org_id, key, method, path, body_hash, state, created_at)"
                " VALUES (?,?,?,?,?, 'running', ?)",
                (org_id, key, method, path, fingerprint, ts),
            )
            return None
        if row["body_hash"] != fingerprint:
            raise DomainError(
                400,
                "idempotency_mismatch",
                "This Idempotency-Key was used with a different request; use a new key",
                param="Idempotency-Key",
                type="idempotency_error",
            )
        if row["state"] != "done":
            if row["created_at"] < ts - RUNNING_STALE_S:
                conn.execute(
                    "UPDATE idempotency_keys SET created_at = ? WHERE org_id = ? AND key = ?",
                    (ts, org_id, key),
                )
                return None
            raise DomainError(
                409,
                "idempotency_conflict",
                "A request with this Idempotency-Key is still being processed; retry later",
                param="Idempotency-Key",
                type="idempotency_error",
            )
        return StoredResponse(row["response_status"], row["response_body"])


def finish(store: Store, org_id: str, key: str, status: int, body: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ?"
            " WHERE org_id = ? AND key = ?",
            (status, body, org_id, key),
        )


def abandon(store: Store, org_id: str, key: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "DELETE FROM idempotency_keys WHERE org_id = ? AND key = ? AND state = 'running'", (org_id, key)
        )


def purge_expired(store: Store, *, at: float) -> int:
    with store.transaction() as conn:
        return conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (at - TTL_S,)).rowcount

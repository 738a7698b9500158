"""API keys: ``sk_live_…`` / ``sk_test_…``; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from controller.domain.errors import NotFound
from controller.domain.organizations import get_organization
from controller.domain.timeutil import iso, now
from controller.ids import new_id
from controller.store import Store

PREFIX_LEN = 12  # stored in clear so users can tell keys apart ("sk_live_AbCd")


@dataclass(frozen=True)
class ApiKey:
    id: str
    org_id: str
    prefix: str
    livemode: bool
    created_at: float
    revoked_at: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "api_key",
            "organization": self.org_id,
            "prefix": self.prefix,
            "livemode": self.livemode,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _row_to_key(r: object) -> ApiKey:
    return ApiKey(r["id"], r["org_id"], r["prefix"], bool(r["livemode"]), r["created_at"], r["revoked_at"])  # type: ignore[index]


def create_key(store: Store, org_id: str, *, livemode: bool = True) -> CreatedKey:
    get_organization(store, org_id)
    secret = ("sk_live_" if livemode else "sk_test_") + secrets.token_urlsafe(32)
    key = ApiKey(new_id("key"), org_id, secret[:PREFIX_LEN], livemode, now(), None)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (id, org_id, key_hash, prefix, livemode, created_at) VALUES (?,?,?,?,?,?)",
            (key.id, org_id, hash_key(secret), key.prefix, int(livemode), key.created_at),
        )
    return CreatedKey(key, secret)


def list_keys(store: Store, org_id: str) -> list[ApiKey]:
    get_organization(store, org_id)
    rows = store.query("SELECT * FROM api_keys WHERE org_id = ? ORDER BY created_at, id", (org_id,))
    return [_row_to_key(r) for r in rows]


def revoke_key(store: Store, key_id: str) -> ApiKey:
    with store.transaction() as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound("api key", key_id, param="key_id")
        if row["revoked_at"] is None:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now(), key_id))
        row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return _row_to_key(row)


def authenticate(store: Store, raw: str) -> ApiKey | None:
    """The live (unrevoked) key matching ``raw``, compared in constant time; else None."""
    if not raw.startswith(("sk_live_", "sk_test_")) or len(raw) > 200:
        return None
    digest = hash_key(raw)
    rows = store.query("SELECT * FROM api_keys WHERE prefix = ?", (raw[:PREFIX_LEN],))
    match = None
    for r in rows:  # compare every candidate so timing does not depend on which one matched
        if hmac.compare_digest(r["key_hash"], digest):
            match = r
    if match is None or match["revoked_at"] is not None:
        return None
    return _row_to_key(match)

"""Per-organization SIP settings (DESIGN.md §3) and the generated digest credentials."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass

from controller.domain.errors import DomainError, NotFound
from controller.domain.requests import SipSettingsUpdate
from controller.domain.timeutil import iso, now
from controller.store import Store


@dataclass(frozen=True)
class SipSettings:
    org_id: str
    enabled: bool
    username: str
    credentials_set: bool
    password_set_at: float | None
    ip_allowlist: list[str]
    require_tls: bool
    require_srtp: bool
    allowed_transports: list[str]
    allowed_codecs: list[str]
    default_mode: str
    default_region: str
    default_source_language: str
    default_target_language: str
    max_concurrent_calls: int
    updated_at: float

    def to_json(self, domain: str) -> dict[str, object]:
        return {
            "object": "sip_settings",
            "enabled": self.enabled,
            "username": self.username,
            "domain": domain,
            "credentials_set": self.credentials_set,
            "password_set_at": iso(self.password_set_at),
            "ip_allowlist": self.ip_allowlist,
            "require_tls": self.require_tls,
            "require_srtp": self.require_srtp,
            "allowed_transports": self.allowed_transports,
            "allowed_codecs": self.allowed_codecs,
            "session_defaults": {
                "mode": self.default_mode,
                "region": self.default_region,
                "source_language": self.default_source_language,
                "target_language": self.default_target_language,
            },
            "max_concurrent_calls": self.max_concurrent_calls,
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class SipCredentials:
    username: str
    domain: str
    password: str  # returned once, never stored


def _from_row(r: sqlite3.Row) -> SipSettings:
    return SipSettings(
        org_id=r["org_id"],
        enabled=bool(r["enabled"]),
        username=r["username"],
        credentials_set=r["a1_hash"] is not None,
        password_set_at=r["password_set_at"],
        ip_allowlist=json.loads(r["ip_allowlist"]),
        require_tls=bool(r["require_tls"]),
        require_srtp=bool(r["require_srtp"]),
        allowed_transports=json.loads(r["allowed_transports"]),
        allowed_codecs=json.loads(r["allowed_codecs"]),
        default_mode=r["default_mode"],
        default_region=r["default_region"],
        default_source_language=r["default_source_language"],
        default_target_language=r["default_target_language"],
        max_concurrent_calls=r["max_concurrent_calls"],
        updated_at=r["updated_at"],
    )


def _load(conn: sqlite3.Connection, org_id: str) -> SipSettings:
    row = conn.execute("SELECT * FROM sip_settings WHERE org_id = ?", (org_id,)).fetchone()
    if row is None:
        raise NotFound("organization", org_id)
    return _from_row(row)


def get_sip_settings(store: Store, org_id: str) -> SipSettings:
    with store.lock:
        return _load(store.conn, org_id)


def a1_hash(username: str, realm: str, password: str) -> str:
    """FreeSWITCH's directory ``a1-hash``: md5 of ``user:realm:password`` (SIP digest HA1)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def update_sip_settings(store: Store, org_id: str, patch: SipSettingsUpdate) -> SipSettings:
    with store.transaction() as conn:
        cur = _load(conn, org_id)
        transports = (
            patch.allowed_transports if patch.allowed_transports is not None else cur.allowed_transports
        )
        require_tls = patch.require_tls if patch.require_tls is not None else cur.require_tls
        if require_tls and transports != ["tls"]:
            param = "allowed_transports" if patch.allowed_transports is not None else "require_tls"
            raise DomainError(
                400,
                "parameter_invalid",
                'require_tls=true needs allowed_transports to be exactly ["tls"] '
                "(set both in the same request)",
                param=param,
            )
        sd = patch.session_defaults
        values: dict[str, object] = {
            "enabled": patch.enabled,
            "ip_allowlist": None if patch.ip_allowlist is None else json.dumps(patch.ip_allowlist),
            "require_tls": patch.require_tls,
            "require_srtp": patch.require_srtp,
            "allowed_transports": None if patch.allowed_transports is None else json.dumps(transports),
            "allowed_codecs": None if patch.allowed_codecs is None else json.dumps(patch.allowed_codecs),
            "default_mode": sd.mode if sd else None,
            "default_region": sd.region if sd else None,
            "default_source_language": sd.source_language if sd else None,
            "default_target_language": sd.target_language if sd else None,
            "max_concurrent_calls": patch.max_concurrent_calls,
        }
        changes = {k: (int(v) if isinstance(v, bool) else v) for k, v in values.items() if v is not None}
        changes["updated_at"] = now()
        assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours
        conn.execute(
            f"UPDATE sip_settings SET {assignments} WHERE org_id = ?",  # noqa: S608
            (*changes.values(), org_id),
        )
        return _load(conn, org_id)


def regenerate_credentials(store: Store, org_id: str, domain: str) -> SipCredentials:
    """A fresh password (the previous one stops working at the next reload); only its a1-hash is kept."""
    password = secrets.token_urlsafe(24)
    with store.transaction() as conn:
        cur = _load(conn, org_id)
        ts = now()
        conn.execute(
            "UPDATE sip_settings SET a1_hash = ?, password_set_at = ?, updated_at = ? WHERE org_id = ?",
            (a1_hash(cur.username, domain, password), ts, ts, org_id),
        )
    return SipCredentials(cur.username, domain, password)

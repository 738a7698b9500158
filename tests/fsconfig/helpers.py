"""Store rows for renderer tests, inserted with plain SQL following migration 1."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from controller.ids import new_id
from controller.settings import Settings
from controller.store import Store

SIP_DOMAIN = "sip.test.example"


def make_settings(conf_dir: Path, **overrides: object) -> Settings:
    base = Settings.from_env({}, sip_domain=SIP_DOMAIN, fs_conf_dir=str(conf_dir))
    return replace(base, **overrides) if overrides else base  # type: ignore[arg-type]


def a1(username: str, password: str, realm: str = SIP_DOMAIN) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def add_org(
    store: Store,
    *,
    username: str | None = None,
    password: str | None = "sip-pass-123",
    enabled: bool = True,
    allowlist: list[str] | None = None,
    transports: list[str] | None = None,
    codecs: list[str] | None = None,
    a1_hash: str | None = None,
) -> str:
    org_id = new_id("org")
    username = username or "kg" + org_id[-10:].lower()
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)", (org_id, "Org", now)
        )
        conn.execute(
            "INSERT INTO sip_settings (org_id, enabled, username, a1_hash, ip_allowlist, allowed_transports,"
            " allowed_codecs, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                org_id, int(enabled), username,
                a1_hash if a1_hash is not None else (a1(username, password) if password else None),
                json.dumps(allowlist or []),
                json.dumps(transports if transports is not None else ["tls", "tcp", "udp"]),
                json.dumps(codecs if codecs is not None else ["OPUS", "G722", "PCMU", "PCMA"]),
                now,
            ),
        )
    return org_id


def add_connection(
    store: Store,
    org_id: str,
    *,
    sip: dict[str, object] | None = None,
    inbound: list[str] | None = None,
    status: str = "active",
    credentials: dict[str, str] | None = None,
    provider: str = "twilio",
) -> str:
    conn_id = new_id("pcon")
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO connections (id, org_id, provider, name, credentials, sip, inbound_addresses,"
            " status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conn_id, org_id, provider, "Trunk",
                json.dumps(credentials or {"account_sid": "AC123", "auth_token": "tok-secret-XYZ"}),
                json.dumps(sip) if sip is not None else None,
                json.dumps(inbound or []), status, now, now,
            ),
        )
    return conn_id


def add_number(store: Store, org_id: str, connection_id: str, number: str, status: str = "active") -> str:
    pn_id = new_id("pn")
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO phone_numbers (id, org_id, number, connection_id, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pn_id, org_id, number, connection_id, status, now, now),
        )
    return pn_id


def update_sip(store: Store, org_id: str, **values: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in values)
    params = [json.dumps(v) if isinstance(v, list) else v for v in values.values()]
    with store.transaction() as conn:
        conn.execute(f"UPDATE sip_settings SET {cols} WHERE org_id = ?", (*params, org_id))  # noqa: S608


def update_connection(store: Store, conn_id: str, **values: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in values)
    params = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values.values()]
    with store.transaction() as conn:
        conn.execute(f"UPDATE connections SET {cols} WHERE id = ?", (*params, conn_id))  # noqa: S608

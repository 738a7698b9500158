"""Store rows for call tests, written with plain SQL per migration 1 (no dependency on the API)."""

from __future__ import annotations

import json
import time
import uuid

from controller.calls.channel import ChannelInfo
from controller.ids import new_id
from controller.store import Store


def make_org(store: Store, *, enabled: bool = True, cap: int = 10,
             transports: tuple[str, ...] = ("tls", "tcp", "udp"),
             codecs: tuple[str, ...] = ("OPUS", "G722", "PCMU", "PCMA"), require_tls: bool = False,
             require_srtp: bool = False, username: str | None = None) -> str:
    org_id = new_id("org")
    now = time.time()
    with store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)",
                     (org_id, "Acme", now))
        conn.execute(
            """INSERT INTO sip_settings (org_id, enabled, username, a1_hash, ip_allowlist, require_tls,
                   require_srtp, allowed_transports, allowed_codecs, max_concurrent_calls, updated_at)
               VALUES (?, ?, ?, 'x', '[]', ?, ?, ?, ?, ?, ?)""",
            (org_id, int(enabled), username or ("kg" + org_id[-10:].lower()), int(require_tls),
             int(require_srtp), json.dumps(list(transports)), json.dumps(list(codecs)), cap, now),
        )
    return org_id


def sip_username(store: Store, org_id: str) -> str:
    row = store.query_one("SELECT username FROM sip_settings WHERE org_id = ?", (org_id,))
    assert row is not None
    return str(row["username"])


def make_session(store: Store, org_id: str, *, status: str = "created", phone_number: str | None = None,
                 connection_id: str | None = None, mode: str = "bidirectional_translation",
                 created_at: float | None = None) -> str:
    sid = new_id("sess")
    now = time.time() if created_at is None else created_at
    with store.transaction() as conn:
        conn.execute(
            """INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,
                   phone_number, connection_id, status, created_at, updated_at)
               VALUES (?, ?, ?, 'en', 'es', 'eu', ?, ?, ?, ?, ?, ?)""",
            (sid, org_id, mode, "sip" if phone_number is None else "twilio", phone_number, connection_id,
             status, now, now),
        )
    return sid


def make_number(store: Store, org_id: str, number: str, inbound: list[str], *, provider: str = "twilio",
                status: str = "active") -> str:
    cid = new_id("pcon")
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            """INSERT INTO connections (id, org_id, provider, name, credentials, inbound_addresses, status,
                   created_at, updated_at) VALUES (?, ?, ?, 'trunk', '{}', ?, 'active', ?, ?)""",
            (cid, org_id, provider, json.dumps(inbound), now, now),
        )
        conn.execute(
            """INSERT INTO phone_numbers (id, org_id, number, connection_id, status, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (new_id("pn"), org_id, number, cid, status, now, now),
        )
    return cid


def sip_channel(org_id: str | None, username: str | None, dest: str, *, transport: str = "udp",
                ip: str = "127.0.0.1", role: str | None = None, call_uuid: str | None = None,
                authorized: bool = True) -> ChannelInfo:
    """Decoded connect-reply headers as FreeSWITCH sends them for a digest-authenticated caller."""
    headers = {
        "Unique-ID": call_uuid or str(uuid.uuid4()),
        "Call-Direction": "inbound",
        "Caller-Destination-Number": dest,
        "Caller-Caller-ID-Number": username or "trunk",
        "variable_sip_req_user": dest,
        "variable_sip_via_protocol": transport,
        "variable_sip_network_ip": ip,
    }
    if username is not None:
        headers["variable_sip_auth_username"] = username
        headers["variable_sip_authorized"] = "true" if authorized else "false"
    if org_id is not None:
        headers["variable_kallglot_org_id"] = org_id
    if role is not None:
        headers["variable_sip_h_X-Kallglot-Role"] = role
    return ChannelInfo.from_headers(headers)


def live_leg_count(store: Store, org_id: str | None = None) -> int:
    if org_id is None:
        row = store.query_one("SELECT COUNT(*) FROM call_legs WHERE ended_at IS NULL")
    else:
        row = store.query_one("SELECT COUNT(*) FROM call_legs WHERE ended_at IS NULL AND org_id = ?",
                              (org_id,))
    assert row is not None
    return int(row[0])

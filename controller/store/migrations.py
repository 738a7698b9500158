"""Versioned schema migrations. Append a new entry to upgrade; never edit a shipped one.

One schema for both backends, written in the SQL both accept; on PostgreSQL ``REAL`` becomes
``DOUBLE PRECISION`` and ``INTEGER`` ``BIGINT`` (controller/store/pg.py ``translate_ddl``). The
schema version lives in ``PRAGMA user_version`` (SQLite) or the one-row table
``kallglot_schema_version`` (PostgreSQL); each migration runs in one transaction together with
the version bump, so a crash mid-upgrade leaves the previous version intact.
JSON columns hold lists/objects serialized with ``json.dumps``; timestamps are unix seconds
(REAL) unless named ``*_at_iso``.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE organizations (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at REAL NOT NULL
        );

        -- Only the SHA-256 of a key is kept; prefix (first 12 chars) lets users tell keys apart.
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            key_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            livemode INTEGER NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX api_keys_org ON api_keys(org_id);

        -- One row per organization, created with the organization (SIP disabled).
        CREATE TABLE sip_settings (
            org_id TEXT PRIMARY KEY REFERENCES organizations(id),
            enabled INTEGER NOT NULL DEFAULT 0,
            username TEXT NOT NULL UNIQUE,
            a1_hash TEXT,                       -- md5(username:realm:password); never the password
            password_set_at REAL,
            ip_allowlist TEXT NOT NULL DEFAULT '[]',
            require_tls INTEGER NOT NULL DEFAULT 0,
            require_srtp INTEGER NOT NULL DEFAULT 0,
            allowed_transports TEXT NOT NULL DEFAULT '["tls","tcp","udp"]',
            allowed_codecs TEXT NOT NULL DEFAULT '["OPUS","G722","PCMU","PCMA"]',
            default_mode TEXT NOT NULL DEFAULT 'bidirectional_translation',
            default_region TEXT NOT NULL DEFAULT 'eu',
            default_source_language TEXT NOT NULL DEFAULT 'auto',
            default_target_language TEXT NOT NULL DEFAULT 'auto',
            max_concurrent_calls INTEGER NOT NULL DEFAULT 10,
            updated_at REAL NOT NULL
        );

        CREATE TABLE connections (
            id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            provider TEXT NOT NULL,             -- twilio | telnyx
            name TEXT NOT NULL,
            credentials TEXT NOT NULL,          -- JSON; secrets, never returned by the API
            sip TEXT,                           -- JSON {host, username, password, register}
            inbound_addresses TEXT NOT NULL DEFAULT '[]',
            is_default INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'active',  -- active | disabled | deleted
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX connections_org ON connections(org_id);
        -- At most one default per organization, enforced by the database too.
        CREATE UNIQUE INDEX connections_one_default ON connections(org_id)
            WHERE is_default = 1 AND status != 'deleted';

        CREATE TABLE phone_numbers (
            id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            number TEXT NOT NULL UNIQUE,        -- E.164, unique across the install
            connection_id TEXT NOT NULL REFERENCES connections(id),
            status TEXT NOT NULL DEFAULT 'active',  -- active | released
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX phone_numbers_org ON phone_numbers(org_id);

        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            mode TEXT NOT NULL,
            source_language TEXT NOT NULL,
            target_language TEXT NOT NULL,
            region TEXT NOT NULL,
            provider TEXT NOT NULL,             -- twilio | telnyx | sip
            phone_number TEXT,
            connection_id TEXT,
            direction TEXT,
            status TEXT NOT NULL,               -- created|connecting|active|ending|ended
            metadata TEXT NOT NULL DEFAULT '{}',
            end_reason TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            last_audio_at REAL
        );
        CREATE INDEX sessions_org_created ON sessions(org_id, created_at, id);
        CREATE INDEX sessions_number_open ON sessions(phone_number, status);

        -- One row per SIP call leg. A leg is "live" (holds a call slot for its session) while
        -- ended_at IS NULL; the cap counts distinct sessions with live legs.
        CREATE TABLE call_legs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            org_id TEXT NOT NULL REFERENCES organizations(id),
            call_uuid TEXT NOT NULL UNIQUE,     -- FreeSWITCH Unique-ID
            role TEXT NOT NULL,                 -- customer | agent
            direction TEXT NOT NULL,            -- inbound | outbound
            status TEXT NOT NULL,               -- admitted|answered|streaming|ended|failed
            sip_code INTEGER,
            hangup_cause TEXT,
            remote TEXT,                        -- caller / callee (SIP user or number)
            created_at REAL NOT NULL,
            answered_at REAL,
            ended_at REAL
        );
        CREATE INDEX call_legs_session ON call_legs(session_id);
        CREATE INDEX call_legs_live ON call_legs(org_id, ended_at);

        CREATE TABLE transcript_turns (
            session_id TEXT NOT NULL REFERENCES sessions(id),
            sequence INTEGER NOT NULL,
            speaker TEXT NOT NULL,              -- agent | customer
            language TEXT NOT NULL,
            text TEXT NOT NULL,
            translation_language TEXT,
            translation_text TEXT,
            started_at REAL NOT NULL,
            ended_at REAL NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (session_id, sequence)
        );

        CREATE TABLE idempotency_keys (
            org_id TEXT NOT NULL,
            key TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            body_hash TEXT NOT NULL,
            state TEXT NOT NULL,                -- running | done
            response_status INTEGER,
            response_body TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (org_id, key)
        );
        """,
    ),
    (
        2,
        """
        -- FreeSWITCH's RTP statistics for the leg, read from CHANNEL_HANGUP_COMPLETE (JSON:
        -- controller/calls/quality.py); NULL until the hangup is known or when it carried none.
        ALTER TABLE call_legs ADD COLUMN quality TEXT;
        -- Set when session.ended was queued for webhooks: once, after the last leg has ended.
        ALTER TABLE sessions ADD COLUMN ended_event_at REAL;
        """,
    ),
    (
        3,
        """
        CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY,                -- we_…
            org_id TEXT NOT NULL REFERENCES organizations(id),
            url TEXT NOT NULL,
            description TEXT,
            enabled_events TEXT NOT NULL,       -- JSON list of event types
            -- The signing secret must be readable to sign; it is never returned after the
            -- response that created or rotated it, and never logged.
            secret TEXT NOT NULL,
            previous_secret TEXT,               -- still signs until previous_secret_expires_at
            previous_secret_expires_at REAL,
            status TEXT NOT NULL DEFAULT 'enabled',  -- enabled | disabled | deleted
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX webhook_endpoints_org ON webhook_endpoints(org_id, status);

        -- The outbox: one row per event, with the exact body every attempt sends.
        CREATE TABLE webhook_events (
            id TEXT PRIMARY KEY,                -- evt_…
            org_id TEXT NOT NULL,
            type TEXT NOT NULL,
            body TEXT NOT NULL,                 -- the envelope JSON, byte-exact as delivered
            created_at REAL NOT NULL
        );
        CREATE INDEX webhook_events_org_created ON webhook_events(org_id, created_at, id);

        -- One row per (event, endpoint); a worker leases a due row, so a worker killed mid-send
        -- leaves it to another after lease_until (same event id, never lost).
        CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,                -- whd_…
            event_id TEXT NOT NULL REFERENCES webhook_events(id),
            endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
            org_id TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_until REAL,
            last_http_status INTEGER,
            last_error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (event_id, endpoint_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);

        -- API requests and webhook delivery attempts per organization; never bodies or secrets.
        CREATE TABLE api_logs (
            id TEXT PRIMARY KEY,                -- log_…
            org_id TEXT NOT NULL,
            kind TEXT NOT NULL,                 -- api_request | webhook_delivery
            method TEXT,
            path TEXT,
            status INTEGER,                     -- HTTP status we answered / the receiver answered
            duration_ms REAL,
            request_id TEXT,
            error_code TEXT,
            endpoint_id TEXT,
            event_id TEXT,
            event_type TEXT,
            attempt INTEGER,
            created_at REAL NOT NULL
        );
        CREATE INDEX api_logs_org_created ON api_logs(org_id, created_at, id);
        CREATE INDEX api_logs_created ON api_logs(created_at);
        """,
    ),
    (
        4,
        """
        -- How the bridge translated the turn (media_bridge/translation_paths.py): apertium, nllb,
        -- opus-mt, whisper-translate, whisper-translate+apertium, same-language; NULL = untold.
        ALTER TABLE transcript_turns ADD COLUMN translation_path TEXT;
        """,
    ),
    (
        5,
        """
        -- Developer Portal sign-in (controller/portal/auth.py). Only SHA-256 hashes of the
        -- one-time link tokens and of the session cookies are kept; times are unix seconds.
        CREATE TABLE portal_login_tokens (
            token_hash TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at INTEGER                     -- set once: the link works a single time
        );
        CREATE INDEX portal_login_tokens_expires ON portal_login_tokens(expires_at);

        CREATE TABLE portal_sessions (
            id_hash TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES organizations(id),
            csrf_token TEXT NOT NULL,           -- compared with every form's hidden field
            flash TEXT,                         -- one notice for the next page, then cleared
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX portal_sessions_expires ON portal_sessions(expires_at);
        """,
    ),
    (
        6,
        """
        -- The controller nodes sharing this store, one per FreeSWITCH (controller/cluster/):
        -- each registers on start and heartbeats; a node silent for KALLGLOT_NODE_DEAD_AFTER_S
        -- is declared dead by a live one, which ends its legs (frees their call slots).
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY,                -- KALLGLOT_NODE_ID (default: the ESL address)
            esl_address TEXT NOT NULL,          -- host:port of its FreeSWITCH's event socket
            sip_address TEXT,                   -- where SIP reaches its FreeSWITCH
            region TEXT,
            state TEXT NOT NULL,                -- up | stopped | dead
            started_at REAL NOT NULL,
            last_heartbeat REAL NOT NULL
        );
        -- Which node's FreeSWITCH carries the leg; reconciliation only ends its own node's legs.
        -- NULL: written before nodes existed (or by a single-node tool): any node may reconcile it.
        ALTER TABLE call_legs ADD COLUMN node_id TEXT;
        CREATE INDEX call_legs_node_live ON call_legs(node_id, ended_at);
        """,
    ),
    (
        7,
        """
        -- The media bridge the session's legs stream to (KALLGLOT_BRIDGE_POOLS, controller/bridges/):
        -- chosen by its first leg, so every leg reaches the bridge that pairs them. NULL: not chosen.
        ALTER TABLE sessions ADD COLUMN bridge_url TEXT;
        """,
    ),
]

"""Portal sign-in: one-time links printed by ``kallglot portal link`` and the browser sessions they open.

Only SHA-256 hashes of the link tokens and of the session cookies are stored (a copy of the
database opens no session). A link works once and for LINK_TTL_S; a session lasts SESSION_TTL_S
from sign-in or until sign-out. Plain SQL that SQLite and PostgreSQL both run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from controller.domain.organizations import get_organization
from controller.store import Store

LINK_TTL_S = 15 * 60
SESSION_TTL_S = 12 * 3600
TOKEN_PREFIX = "kgpl_"  # noqa: S105 -- a link token: easy to recognise in a log or a chat message


@dataclass(frozen=True)
class LoginLink:
    token: str  # shown once (in the printed URL), never stored
    org_id: str
    expires_at: int


@dataclass(frozen=True)
class WebSession:
    org_id: str
    org_name: str
    csrf_token: str
    expires_at: int


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _now() -> int:
    return int(time.time())


def create_login_link(store: Store, org_id: str, *, ttl_s: int = LINK_TTL_S) -> LoginLink:
    """A single-use sign-in token for ``org_id`` (NotFound for an unknown organization)."""
    get_organization(store, org_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ts = _now()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO portal_login_tokens (token_hash, org_id, created_at, expires_at) VALUES (?,?,?,?)",
            (_hash(token), org_id, ts, ts + ttl_s),
        )
    return LoginLink(token, org_id, ts + ttl_s)


def redeem_login_token(store: Store, token: str) -> tuple[str, WebSession] | None:
    """Spend the link token and open a session: (cookie value, session), or None when the token is
    unknown, used or expired. The UPDATE's row count makes the spend atomic across processes."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    ts = _now()
    raw_session = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with store.transaction() as conn:
        conn.execute("DELETE FROM portal_login_tokens WHERE expires_at < ?", (ts - 86400,))
        conn.execute("DELETE FROM portal_sessions WHERE expires_at < ?", (ts,))
        digest = _hash(token)
        spent = conn.execute(
            "UPDATE portal_login_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
            " AND expires_at >= ?",
            (ts, digest, ts),
        )
        if spent.rowcount != 1:
            return None
        row = conn.execute(
            "SELECT t.org_id, o.name FROM portal_login_tokens t JOIN organizations o ON o.id = t.org_id"
            " WHERE t.token_hash = ?",
            (digest,),
        ).fetchone()
        conn.execute(
            "INSERT INTO portal_sessions (id_hash, org_id, csrf_token, created_at, expires_at)"
            " VALUES (?,?,?,?,?)",
            (_hash(raw_session), row["org_id"], csrf, ts, ts + SESSION_TTL_S),
        )
    return raw_session, WebSession(row["org_id"], row["name"], csrf, ts + SESSION_TTL_S)


def load_session(store: Store, raw_session: str) -> WebSession | None:
    """The live session behind a cookie value, or None."""
    if not raw_session or len(raw_session) > 200:
        return None
    row = store.query_one(
        "SELECT s.org_id, o.name, s.csrf_token, s.expires_at FROM portal_sessions s"
        " JOIN organizations o ON o.id = s.org_id WHERE s.id_hash = ? AND s.expires_at >= ?",
        (_hash(raw_session), _now()),
    )
    if row is None:
        return None
    return WebSession(row["org_id"], row["name"], row["csrf_token"], row["expires_at"])


def end_session(store: Store, raw_session: str) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM portal_sessions WHERE id_hash = ?", (_hash(raw_session),))


def set_flash(store: Store, raw_session: str, message: str | None) -> None:
    """A notice for the next page the browser loads (after a redirect)."""
    with store.transaction() as conn:
        conn.execute("UPDATE portal_sessions SET flash = ? WHERE id_hash = ?", (message, _hash(raw_session)))


def pop_flash(store: Store, raw_session: str) -> str | None:
    """The pending notice, cleared. A page view without one only reads: no write lock is taken
    (the controller's call admissions share the store)."""
    digest = _hash(raw_session)
    row = store.query_one("SELECT flash FROM portal_sessions WHERE id_hash = ?", (digest,))
    if row is None or row["flash"] is None:
        return None
    with store.transaction() as conn:
        conn.execute("UPDATE portal_sessions SET flash = NULL WHERE id_hash = ?", (digest,))
    return str(row["flash"])


def csrf_ok(session: WebSession, presented: str | None) -> bool:
    """The form's hidden token against the session's, in constant time."""
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8"), session.csrf_token.encode("utf-8")
    )

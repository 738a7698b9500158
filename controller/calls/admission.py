"""Call admission: which organization and session a call belongs to, and whether it may come in.

Decided over the store in DESIGN.md §3's order, with its exact SIP codes:

1. organization — from the authenticated SIP user's directory variable ``kallglot_org_id``, or
   (provider trunks, no digest auth) from the dialled managed number when the source IP is in
   that number's connection's ``inbound_addresses``; legs the controller originated carry their
   session in channel variables. Nothing resolves → 403.
2. SIP disabled → 403; transport not allowed / TLS required but not used → 403 (PBX calls only:
   provider trunks are governed by their connection, not by the SIP/PBX settings);
3. request user not a session of this organization → 404; session ended → 410;
4. a third leg of a two-party session (or a role already on the call) → 486;
5. organization at ``max_concurrent_calls`` → 503 with ``X-Call-Limit: <cap>``.

Steps 3–5 and the leg insert run in ONE ``BEGIN IMMEDIATE`` transaction, so concurrent
admissions from any number of processes sharing the SQLite file never exceed the cap. A
session counts once against the cap however many live legs (``ended_at IS NULL``) it has.
Every outcome writes exactly one structured (JSON) log line.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field

from controller.calls.channel import ChannelInfo
from controller.calls.source_address import CallerSource, caller_source, ip_allowed, trusted_proxies_from_env
from controller.domain.errors import DomainError
from controller.domain.requests import Routing, SessionCreate
from controller.domain.sessions import create_session_in
from controller.ids import has_prefix, new_id
from controller.store import Store

log = logging.getLogger("kallglot.calls.admission")

ROLES = ("customer", "agent")
OPEN_SESSION_STATUSES = ("created", "connecting", "active")
CLOSED_SESSION_STATUSES = ("ending", "ended")
# A managed-number call whose organization's defaults cannot make a session (DESIGN.md is
# silent): 480 Temporarily Unavailable — the number is fine, the service is not set up for it.
NO_SESSION_CODE = 480


@dataclass(frozen=True)
class Admitted:
    call_uuid: str
    org_id: str
    session_id: str
    leg_id: str
    role: str
    mode: str
    source_language: str
    target_language: str
    peer_leg_id: str | None
    # What FreeSWITCH must enforce at answer (it answers 488 itself when the offer cannot meet it).
    codec_string: str | None
    require_srtp: bool
    session_created: bool = False
    admitted: bool = field(default=True, init=False)

    def stream_metadata(self, sample_rate: int = 16000) -> dict[str, object]:
        """The first text frame the bridge receives (docs/media-wire.md)."""
        return {
            "session_id": self.session_id,
            "leg_id": self.leg_id,
            "call_uuid": self.call_uuid,
            "role": self.role,
            "mode": self.mode,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "peer_leg_id": self.peer_leg_id,
            "sample_rate": sample_rate,
        }


@dataclass(frozen=True)
class Rejected:
    call_uuid: str
    sip_code: int
    reason: str
    org_id: str | None = None
    session_id: str | None = None
    # SIP headers for the response, set as ``sip_rh_<name>`` before ``respond``.
    response_headers: tuple[tuple[str, str], ...] = ()
    admitted: bool = field(default=False, init=False)


AdmissionResult = Admitted | Rejected


@dataclass(frozen=True)
class _Caller:
    org_id: str
    kind: str  # "sip" (PBX, digest auth) | "provider" (trunk by source IP)
    number: str | None = None  # the managed number dialled (provider calls)
    connection_id: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class _Policy:
    enabled: bool
    require_tls: bool
    require_srtp: bool
    allowed_transports: tuple[str, ...]
    allowed_codecs: tuple[str, ...]
    default_mode: str
    default_region: str
    default_source_language: str
    default_target_language: str
    max_concurrent_calls: int
    ip_allowlist: tuple[str, ...] = ()


class _Reject(Exception):  # control flow inside this module only
    def __init__(self, code: int, reason: str, session_id: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.session_id = session_id
        self.headers = headers


def admit(store: Store, channel: ChannelInfo, *, now: float | None = None,
          node_id: str | None = None) -> AdmissionResult:
    """Decide on one call and, when admitted, write its leg row (the call slot), held by
    ``node_id`` (the node whose FreeSWITCH carries the call; controller/cluster)."""
    now = time.time() if now is None else now
    org_id: str | None = None
    try:
        if channel.originated_leg_id and channel.direction == "outbound":
            result: AdmissionResult = _admit_originated(store, channel, now, node_id)
        else:
            caller = _resolve_caller(store, channel)
            org_id = caller.org_id
            policy = _load_policy(store, caller.org_id)
            if caller.kind == "sip":
                _check_sip_policy(policy, channel)
            result = _admit_leg(store, channel, caller, policy, now, node_id)
    except _Reject as rej:
        result = Rejected(channel.call_uuid, rej.code, rej.reason, org_id, rej.session_id, rej.headers)
    _log_outcome(channel, result)
    return result


def _log_outcome(channel: ChannelInfo, result: AdmissionResult) -> None:
    record: dict[str, object] = {
        "event": "call_admission",
        "call_uuid": channel.call_uuid,
        "org_id": result.org_id,
        "session_id": result.session_id,
        "outcome": "admitted" if isinstance(result, Admitted) else "rejected",
        "sip_code": 200 if isinstance(result, Admitted) else result.sip_code,
        "transport": channel.transport,
        "source_ip": channel.network_ip,
    }
    source = _source(channel)
    if source.proxy is not None:  # through the Kamailio front: who really called, and how
        record.update(source_ip=source.ip, transport=source.transport, via_proxy=source.proxy)
    if isinstance(result, Admitted):
        record.update(leg_id=result.leg_id, role=result.role)
    else:
        record["reason"] = result.reason
    log.info(json.dumps(record, separators=(",", ":")))


# --- organization -------------------------------------------------------------------------------


def normalize_number(destination: str) -> str | None:
    """E.164 form of a dialled number (dialplans match with and without ``+``), else None."""
    digits = destination[1:] if destination.startswith("+") else destination
    if not digits.isdigit() or not 2 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return "+" + digits


def _ip_in(ip: str | None, entries: list[str]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in entries:
        try:
            if addr in ipaddress.ip_network(str(entry), strict=False):
                return True
        except ValueError:
            continue
    return False


def _resolve_caller(store: Store, channel: ChannelInfo) -> _Caller:
    if channel.org_id and channel.auth_username:
        row = store.query_one("SELECT username FROM sip_settings WHERE org_id = ?", (channel.org_id,))
        # The directory sets both; a mismatch means a stale rendered directory: refuse.
        if row is None or row["username"] != channel.auth_username:
            raise _Reject(403, "sip user does not belong to the organization")
        return _Caller(org_id=channel.org_id, kind="sip")
    number = normalize_number(channel.destination)
    if number is not None:
        row = store.query_one(
            """SELECT pn.org_id, pn.connection_id, c.provider, c.inbound_addresses
                 FROM phone_numbers pn JOIN connections c ON c.id = pn.connection_id
                WHERE pn.number = ? AND pn.status = 'active' AND c.status = 'active'""",
            (number,),
        )
        if row is not None and _ip_in(_source(channel).ip, json.loads(row["inbound_addresses"] or "[]")):
            return _Caller(org_id=row["org_id"], kind="provider", number=number,
                           connection_id=row["connection_id"], provider=row["provider"])
    raise _Reject(403, "caller is neither an authenticated SIP user nor a provider of the number")


def _load_policy(store: Store, org_id: str) -> _Policy:
    row = store.query_one("SELECT * FROM sip_settings WHERE org_id = ?", (org_id,))
    if row is None:
        raise _Reject(403, "organization has no SIP settings")
    return _Policy(
        enabled=bool(row["enabled"]),
        require_tls=bool(row["require_tls"]),
        require_srtp=bool(row["require_srtp"]),
        allowed_transports=tuple(str(t).lower() for t in json.loads(row["allowed_transports"])),
        allowed_codecs=tuple(str(c).upper() for c in json.loads(row["allowed_codecs"])),
        default_mode=row["default_mode"],
        default_region=row["default_region"],
        default_source_language=row["default_source_language"],
        default_target_language=row["default_target_language"],
        max_concurrent_calls=int(row["max_concurrent_calls"]),
        ip_allowlist=tuple(str(c) for c in json.loads(row["ip_allowlist"] or "[]")),
    )


def _source(channel: ChannelInfo) -> CallerSource:
    """The caller's address and transport; behind a trusted proxy (the Kamailio front), the ones it
    stamped (controller/calls/source_address.py), never a header from anyone else."""
    return caller_source(channel, trusted_proxies_from_env())


def _check_sip_policy(policy: _Policy, channel: ChannelInfo) -> None:
    source = _source(channel)
    if not policy.enabled:
        raise _Reject(403, "sip disabled for the organization")
    # FreeSWITCH's auth-acl enforces the allowlist on direct calls; behind the front it relies on
    # X-AUTH-IP, and once apply-proxy-acl is set sofia no longer refuses a direct caller outside the
    # list (sofia_reg.c), so the controller checks the caller's address itself.
    if not ip_allowed(source.ip, policy.ip_allowlist):
        raise _Reject(403, f"source address {source.ip or 'unknown'} outside the ip_allowlist")
    if source.transport not in policy.allowed_transports:
        raise _Reject(403, f"transport {source.transport or 'unknown'} not allowed")
    if policy.require_tls and source.transport != "tls":
        raise _Reject(403, "tls required")


# --- session and leg (one transaction) ----------------------------------------------------------


def _admit_leg(store: Store, channel: ChannelInfo, caller: _Caller, policy: _Policy,
               now: float, node_id: str | None) -> Admitted:
    requested_role = _requested_role(channel)
    with store.transaction() as conn:
        session, created = _find_or_create_session(conn, channel, caller, policy, now)
        sid = session["id"]
        if session["status"] in CLOSED_SESSION_STATUSES:
            raise _Reject(410, "session ended", sid)
        live = conn.execute(
            "SELECT id, role FROM call_legs WHERE session_id = ? AND ended_at IS NULL ORDER BY created_at",
            (sid,),
        ).fetchall()
        role = _choose_role(requested_role, [r["role"] for r in live], sid)
        if not live:
            busy = conn.execute(
                """SELECT COUNT(DISTINCT session_id) FROM call_legs
                    WHERE org_id = ? AND ended_at IS NULL AND session_id != ?""",
                (caller.org_id, sid),
            ).fetchone()[0]
            if busy >= policy.max_concurrent_calls:
                cap = str(policy.max_concurrent_calls)
                raise _Reject(503, "organization at max_concurrent_calls", sid, (("X-Call-Limit", cap),))
        leg_id = new_id("leg")
        conn.execute(
            """INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status,
                                      remote, created_at, node_id)
               VALUES (?, ?, ?, ?, ?, 'inbound', 'admitted', ?, ?, ?)""",
            (leg_id, sid, caller.org_id, channel.call_uuid, role, channel.caller, now, node_id),
        )
        _mark_connecting(conn, sid, now)
    is_sip = caller.kind == "sip"
    return Admitted(
        call_uuid=channel.call_uuid,
        org_id=caller.org_id,
        session_id=sid,
        leg_id=leg_id,
        role=role,
        mode=session["mode"],
        source_language=session["source_language"],
        target_language=session["target_language"],
        peer_leg_id=live[0]["id"] if live else None,
        codec_string=",".join(policy.allowed_codecs) if is_sip and policy.allowed_codecs else None,
        require_srtp=is_sip and policy.require_srtp,
        session_created=created,
    )


def _requested_role(channel: ChannelInfo) -> str | None:
    if channel.role_header is None:
        return None
    role = channel.role_header.strip().lower()
    if role not in ROLES:
        raise _Reject(400, "X-Kallglot-Role must be customer or agent")
    return role


def _choose_role(requested: str | None, live_roles: list[str], session_id: str) -> str:
    if len(live_roles) >= 2:
        raise _Reject(486, "session already has two live legs", session_id)
    if requested is not None:
        if requested in live_roles:
            raise _Reject(486, f"role {requested} already on the call", session_id)
        return requested
    return "customer" if "customer" not in live_roles else "agent"


def _mark_connecting(conn: sqlite3.Connection, session_id: str, now: float) -> None:
    conn.execute(
        "UPDATE sessions SET status = 'connecting', updated_at = ? WHERE id = ? AND status = 'created'",
        (now, session_id),
    )


def _find_or_create_session(conn: sqlite3.Connection, channel: ChannelInfo, caller: _Caller,
                            policy: _Policy, now: float) -> tuple[sqlite3.Row, bool]:
    dest = channel.destination
    if has_prefix(dest, "sess"):
        row = conn.execute("SELECT * FROM sessions WHERE id = ? AND org_id = ?",
                           (dest, caller.org_id)).fetchone()
        if row is None:
            raise _Reject(404, "request user is not a session of the organization")
        return row, False
    number = caller.number or normalize_number(dest)
    if number is None:
        raise _Reject(404, "request user is not a session of the organization")
    pn = conn.execute(
        """SELECT pn.number, pn.connection_id, c.provider FROM phone_numbers pn
             JOIN connections c ON c.id = pn.connection_id
            WHERE pn.number = ? AND pn.org_id = ? AND pn.status = 'active'""",
        (number, caller.org_id),
    ).fetchone()
    if pn is None:
        raise _Reject(404, "request user is not a session or managed number of the organization")
    placeholders = ",".join("?" * len(OPEN_SESSION_STATUSES))
    row = conn.execute(
        f"""SELECT * FROM sessions WHERE org_id = ? AND phone_number = ? AND status IN ({placeholders})
             ORDER BY created_at DESC, id DESC LIMIT 1""",  # noqa: S608 -- placeholders only
        (caller.org_id, number, *OPEN_SESSION_STATUSES),
    ).fetchone()
    if row is not None:
        return row, False
    # No open session for the number: a new one from the organization's SIP session defaults,
    # through the same domain code as POST /v1/sessions (resolution, language-pair check), in
    # this same transaction so a rejected call (e.g. 503) leaves no orphan session.
    request = SessionCreate(
        mode=policy.default_mode,
        region=policy.default_region,
        source_language=policy.default_source_language,
        target_language=policy.default_target_language,
        routing=Routing(phone_number=number, direction="inbound"),
    )
    try:
        record = create_session_in(conn, caller.org_id, request)
    except DomainError as exc:
        # The organization's defaults cannot make a session (e.g. no engine for the pair).
        raise _Reject(NO_SESSION_CODE, f"cannot create a session for {number}: {exc.message}") from None
    created = conn.execute("SELECT * FROM sessions WHERE id = ?", (record.id,)).fetchone()
    return created, True


def _admit_originated(store: Store, channel: ChannelInfo, now: float, node_id: str | None) -> AdmissionResult:
    """A leg we placed with ``originate``: its row (status ``dialing``) holds the slot already."""
    leg_id = channel.originated_leg_id
    with store.transaction() as conn:
        leg = conn.execute("SELECT * FROM call_legs WHERE id = ?", (leg_id,)).fetchone()
        if leg is None or leg["call_uuid"] != channel.call_uuid or (
            channel.originated_session_id and leg["session_id"] != channel.originated_session_id
        ):
            raise _Reject(404, "originated leg unknown")
        session = conn.execute("SELECT * FROM sessions WHERE id = ?", (leg["session_id"],)).fetchone()
        if leg["ended_at"] is not None or session["status"] in CLOSED_SESSION_STATUSES:
            raise _Reject(410, "session ended", leg["session_id"])
        # The node whose FreeSWITCH answered it holds it from now on.
        conn.execute("UPDATE call_legs SET status = 'admitted', node_id = COALESCE(?, node_id) WHERE id = ?",
                     (node_id, leg_id))
        peer = conn.execute(
            "SELECT id FROM call_legs WHERE session_id = ? AND ended_at IS NULL AND id != ? "
            "ORDER BY created_at LIMIT 1",
            (leg["session_id"], leg_id),
        ).fetchone()
        _mark_connecting(conn, leg["session_id"], now)
    return admitted_leg(channel.call_uuid, leg, session, peer["id"] if peer else None)


def admitted_leg(call_uuid: str, leg: sqlite3.Row, session: sqlite3.Row,
                 peer_leg_id: str | None) -> Admitted:
    """An existing leg (a dialled one answering, or one adopted after a controller loss) as an
    admission result: its media policy was settled when it was set up, so none is applied."""
    return Admitted(
        call_uuid=call_uuid,
        org_id=leg["org_id"],
        session_id=leg["session_id"],
        leg_id=leg["id"],
        role=leg["role"],
        mode=session["mode"],
        source_language=session["source_language"],
        target_language=session["target_language"],
        peer_leg_id=peer_leg_id,
        codec_string=None,
        require_srtp=False,
    )

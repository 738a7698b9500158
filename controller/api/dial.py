"""``POST /v1/sessions/{id}/dial`` — place an outbound leg of a session through its provider.

Body ``{"to": "+4930…", "role": "customer"|"agent"}`` (role optional: the free one, customer
first). The leg is reserved under the same rules as an inbound call (two legs per session, the
organization's ``max_concurrent_calls``), then FreeSWITCH originates it through the gateway of
the session's provider connection (or the organization's default connection) into the
controller's socket, where admission accepts it as that leg. Replies 202 with the leg, status
``dialing``; a dial that fails later ends the leg (``hangup_cause`` says why).

Several nodes: the leg is reserved on the node chosen for it (controller/cluster/routing.py
``choose_dial_node``: the node of the session's other leg, else a healthy node of the session's
region) and originated on that node's FreeSWITCH.
"""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from controller.api.context import in_thread, org_id
from controller.api.parsing import parse_body
from controller.appkeys import CALL_CONTROL_KEY, SETTINGS_KEY, STORE_KEY
from controller.calls.legs import DialError, DialReservation, end_leg, reserve_outbound_leg
from controller.cluster.routing import choose_dial_node
from controller.domain.errors import DomainError
from controller.store import Store

log = logging.getLogger("kallglot.calls.dial")

E164 = r"^\+[1-9][0-9]{1,14}$"


class DialRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=E164, description="E.164 number to call")
    role: Literal["customer", "agent"] | None = None


def outbound_gateway(store: Store, org: str, session_id: str) -> str:
    """The gateway (named after its connection id) a session dials out through."""
    session = store.query_one("SELECT connection_id FROM sessions WHERE id = ? AND org_id = ?",
                              (session_id, org))
    if session is None:
        raise DomainError(404, "resource_missing", f"No such session: {session_id!r}", param="id")
    candidates = []
    if session["connection_id"]:
        candidates.append(("id = ?", session["connection_id"]))
    candidates.append(("is_default = 1", None))
    for where, arg in candidates:
        params: tuple[str, ...] = (org, arg) if arg else (org,)
        row = store.query_one(
            f"SELECT id FROM connections WHERE org_id = ? AND {where} "  # noqa: S608 -- fixed clauses
            "AND status = 'active' AND sip IS NOT NULL AND sip != 'null'",
            params,
        )
        if row is not None:
            return str(row["id"])
    raise DomainError(422, "no_outbound_connection",
                      "The session has no active provider connection with SIP settings to dial through",
                      param="id")


routes = web.RouteTableDef()


class CallLeg(BaseModel):
    """The 202 reply: the reserved outbound leg (status ``dialing`` until FreeSWITCH answers)."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["call_leg"]
    id: str
    session_id: str
    role: Literal["customer", "agent"]
    to: str
    direction: Literal["outbound"]
    status: Literal["dialing"]
    call_uuid: str
    gateway: str


@routes.post("/v1/sessions/{id}/dial")
async def dial(request: web.Request) -> web.Response:
    org = org_id(request)
    session_id = request.match_info["id"]
    body = await parse_body(request, DialRequest)
    call_control = request.app.get(CALL_CONTROL_KEY)
    if call_control is None:
        raise DomainError(503, "call_control_unavailable",
                          "This API process has no FreeSWITCH connection configured", type="api_error")
    store = request.app[STORE_KEY]
    gateway = await in_thread(outbound_gateway, store, org, session_id)
    # None without nodes and without KALLGLOT_NODE_ID: the leg is unowned until the node that
    # answers it takes it, so any controller reconciles it as before nodes existed.
    node_id = await in_thread(choose_dial_node, store, request.app[SETTINGS_KEY], session_id)
    try:
        leg: DialReservation = await in_thread(
            reserve_outbound_leg, store, org, session_id, body.role, body.to, node_id=node_id)
    except DialError as exc:
        raise DomainError(exc.status, exc.code, exc.message, param=exc.param) from None
    try:
        await in_thread(call_control.originate, session_id, leg.leg_id, leg.role, body.to, gateway)
    except Exception as exc:
        await in_thread(end_leg, store, leg.call_uuid, hangup_cause="ORIGINATE_FAILED")
        log.warning("dial %s for %s failed: %s", leg.leg_id, session_id, exc)
        raise DomainError(502, "originate_failed", f"FreeSWITCH could not place the call: {exc}",
                          type="api_error") from None
    return web.json_response({
        "object": "call_leg",
        "id": leg.leg_id,
        "session_id": session_id,
        "role": leg.role,
        "to": body.to,
        "direction": "outbound",
        "status": "dialing",
        "call_uuid": leg.call_uuid,
        "gateway": gateway,
    }, status=202)


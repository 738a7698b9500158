"""/v1/sessions: create, read, list, end, transcript."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

from controller.api.context import in_thread, json_list, org_id
from controller.api.envelope import json_response
from controller.api.parsing import page_request, parse_body, query_choice
from controller.appkeys import CALL_CONTROL_KEY, SETTINGS_KEY, STORE_KEY
from controller.domain import sessions, transcripts
from controller.domain.requests import SessionCreate

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.post("/v1/sessions")
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, SessionCreate, empty_ok=True)
    settings = request.app[SETTINGS_KEY]
    record = await in_thread(sessions.create_session, request.app[STORE_KEY], settings, org_id(request), body)
    return json_response(record.to_json(settings.sip_domain), status=201)


@routes.get("/v1/sessions")
async def list_(request: web.Request) -> web.Response:
    page = page_request(request)
    status = query_choice(request, "status", sessions.STATUSES)
    items, has_more = await in_thread(
        sessions.list_sessions, request.app[STORE_KEY], org_id(request), page=page, status=status
    )
    domain = request.app[SETTINGS_KEY].sip_domain
    return json_list([s.to_json(domain) for s in items], has_more)


@routes.get("/v1/sessions/{id}")
async def get(request: web.Request) -> web.Response:
    record = await in_thread(
        sessions.get_session, request.app[STORE_KEY], org_id(request), request.match_info["id"]
    )
    return json_response(record.to_json(request.app[SETTINGS_KEY].sip_domain))


async def hang_up(app: web.Application, session_id: str, uuids: Sequence[str]) -> None:
    """Hang up live legs over ESL from a worker thread; the session is already ended either way."""
    if not uuids:
        return
    call_control = app.get(CALL_CONTROL_KEY)
    if call_control is None:
        log.warning(
            "session %s ended with %d live leg(s) but no call control is configured", session_id, len(uuids)
        )
        return
    try:
        done = await asyncio.to_thread(call_control.hangup, list(uuids))
        log.info("session %s: hung up %d of %d live leg(s)", session_id, len(done), len(uuids))
    except Exception:
        log.exception("session %s ended but hanging up its legs failed", session_id)


@routes.post("/v1/sessions/{id}/end")
async def end(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    session_id = request.match_info["id"]
    await in_thread(sessions.get_session, store, org_id(request), session_id)  # 404 for other orgs
    uuids = await in_thread(sessions.end_session, store, session_id, "api")
    await hang_up(request.app, session_id, uuids)
    record = await in_thread(sessions.get_session, store, org_id(request), session_id)
    return json_response(record.to_json(request.app[SETTINGS_KEY].sip_domain))


@routes.get("/v1/sessions/{id}/transcript")
async def transcript(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    record = await in_thread(sessions.get_session, store, org_id(request), request.match_info["id"])
    turns = await in_thread(transcripts.list_turns, store, record.id)
    return json_response(
        {"object": "transcript", "session_id": record.id, "turns": [t.to_json() for t in turns]}
    )

"""Sessions (legs, SIP outcomes, transcript; live while a call runs) and the API Logs."""

from __future__ import annotations

from aiohttp import web

from controller.api.api_logs import _filters as api_log_filters  # the API's own query rules
from controller.api.parsing import page_request
from controller.apilog.query import list_logs
from controller.apilog.writer import API_LOG_WRITER_KEY
from controller.domain import sessions, transcripts
from controller.domain.errors import DomainError
from controller.domain.pagination import PageRequest
from controller.portal.base import in_thread, org_id, parent, render, settings, store

routes = web.RouteTableDef()
RECENT = PageRequest(limit=50)
POLL_MS = 2000


def _open(status: str) -> bool:
    return status in sessions.OPEN_STATUSES or status == "ending"


async def _recent(request: web.Request) -> list[dict[str, object]]:
    items, _ = await in_thread(sessions.list_sessions, store(request), org_id(request), page=RECENT)
    domain = settings(request).sip_domain
    return [s.to_json(domain) for s in items]


@routes.get("/sessions", name="sessions")
async def sessions_page(request: web.Request) -> web.Response:
    items = await _recent(request)
    # The list keeps polling (new sessions appear); a session's page stops when it has ended.
    return render(request, "sessions.html", nav="sessions", sessions=items, live=True, poll_ms=POLL_MS * 2)


@routes.get("/sessions/live", name="sessions_live")
async def sessions_fragment(request: web.Request) -> web.Response:
    items = await _recent(request)
    return render(request, "_sessions_table.html", sessions=items, live=True)


async def _session(request: web.Request) -> tuple[dict[str, object], list[dict[str, object]]]:
    record = await in_thread(sessions.get_session, store(request), org_id(request), request.match_info["id"])
    turns = await in_thread(transcripts.list_turns, store(request), record.id)
    return record.to_json(settings(request).sip_domain), [t.to_json() for t in turns]


@routes.get("/sessions/{id}", name="session")
async def session_page(request: web.Request) -> web.Response:
    record, turns = await _session(request)  # NotFound → 404 page, also for another org's id
    return render(request, "session.html", nav="sessions", s=record, turns=turns,
                  live=_open(str(record["status"])), poll_ms=POLL_MS)


@routes.get("/sessions/{id}/live", name="session_live")
async def session_fragment(request: web.Request) -> web.Response:
    record, turns = await _session(request)
    return render(request, "_session_body.html", s=record, turns=turns, live=_open(str(record["status"])))


@routes.get("/logs", name="logs")
async def logs_page(request: web.Request) -> web.Response:
    # An HTML GET form sends its empty fields too; the API reads only the ones given.
    query = {k: v for k, v in request.query.items() if v}
    given = request.clone(rel_url=request.rel_url.with_query(query))
    problem = None
    entries: list[dict[str, object]] = []
    has_more = False
    try:
        filters = api_log_filters(given)
        page = page_request(given)
    except DomainError as exc:
        problem = exc.message
    else:
        writer = parent(request).get(API_LOG_WRITER_KEY)
        if writer is not None:
            await writer.flush()  # the organization's latest requests are in what it reads
        items, has_more = await in_thread(list_logs, store(request), org_id(request), filters, page=page)
        entries = [e.to_json() for e in items]
    kept = {k: v for k, v in query.items() if k in ("kind", "status", "method", "request_id", "error_code")}
    return render(request, "logs.html", nav="logs", entries=entries, has_more=has_more, problem=problem,
                  filters=kept, status=400 if problem else 200)

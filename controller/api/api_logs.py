"""/v1/api_logs: the organization's API requests and webhook delivery attempts, newest first."""

from __future__ import annotations

import math
import re
from datetime import datetime

from aiohttp import web

from controller.api.context import in_thread, json_list, org_id
from controller.api.parsing import page_request, query_choice
from controller.apilog.query import LogFilter, list_logs
from controller.apilog.record import KINDS
from controller.apilog.writer import API_LOG_WRITER_KEY
from controller.appkeys import STORE_KEY
from controller.domain.errors import DomainError

routes = web.RouteTableDef()

METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS")
STATUS_PATTERN = re.compile(r"^(?:([1-5][0-9]{2})|([1-5])xx)$")
TEXT_FILTERS = ("request_id", "error_code", "endpoint_id", "event_id", "event_type")


def _timestamp(request: web.Request, name: str) -> float | None:
    """Unix seconds, or ISO-8601 (``2026-11-21T05:15:54Z``)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
        raw = ""  # nan / inf: refused below
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise DomainError(
            400, "parameter_invalid", f"{name} must be unix seconds or ISO-8601 with a time zone", param=name
        )
    return parsed.timestamp()


def _filters(request: web.Request) -> LogFilter:
    status: int | None = None
    status_class: int | None = None
    raw_status = request.query.get("status")
    if raw_status is not None:
        match = STATUS_PATTERN.match(raw_status)
        if match is None:
            raise DomainError(
                400, "parameter_invalid", "status must be a status (404) or a class (4xx)", param="status"
            )
        status = int(match.group(1)) if match.group(1) else None
        status_class = int(match.group(2)) if match.group(2) else None
    text = {}
    for name in TEXT_FILTERS:
        value = request.query.get(name)
        if value is not None and not 0 < len(value) <= 100:
            raise DomainError(400, "parameter_invalid", f"{name} must be 1 to 100 characters", param=name)
        text[name] = value
    return LogFilter(
        kind=query_choice(request, "kind", KINDS),
        status=status,
        status_class=status_class,
        method=query_choice(request, "method", METHODS),
        created_gte=_timestamp(request, "created[gte]"),
        created_lt=_timestamp(request, "created[lt]"),
        **text,
    )


@routes.get("/v1/api_logs")
async def list_(request: web.Request) -> web.Response:
    page = page_request(request)
    filters = _filters(request)
    writer = request.app.get(API_LOG_WRITER_KEY)
    if writer is not None:
        await writer.flush()  # the caller's own earlier requests are in what it reads
    items, has_more = await in_thread(list_logs, request.app[STORE_KEY], org_id(request), filters, page=page)
    return json_list([entry.to_json() for entry in items], has_more)

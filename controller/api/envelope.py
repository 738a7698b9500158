"""The JSON error envelope ``{"error": {type, code, message, param, request_id}}``."""

from __future__ import annotations

import json

from aiohttp import web

from controller.domain.errors import DomainError

REQUEST_ID_HEADER = "X-Request-ID"

# aiohttp's own HTTP errors (unknown route, wrong method, body too large, …) in our terms.
_HTTP_CODES = {
    404: ("invalid_request_error", "route_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID, "")


def error_response(request: web.Request, exc: DomainError) -> web.Response:
    body = {
        "error": {
            "type": exc.type,
            "code": exc.code,
            "message": exc.message,
            "param": exc.param,
            "request_id": request_id(request),
        }
    }
    return json_response(body, status=exc.status)


def from_http_exception(exc: web.HTTPException) -> DomainError:
    kind, code = _HTTP_CODES.get(exc.status, ("invalid_request_error", "http_error"))
    if exc.status >= 500:
        kind, code = "api_error", "internal_error"
    message = exc.reason if exc.status != 404 else "No such route"
    if exc.status == 405:
        message = "Method not allowed on this route"
    return DomainError(exc.status, code, message, type=kind)


def _dumps(data: object) -> str:
    # UTF-8 as is (masks like "••••cdef", transcripts in any script) rather than \u escapes.
    return json.dumps(data, ensure_ascii=False)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)

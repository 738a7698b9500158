"""Request id + error envelope, API-key authentication, and Idempotency-Key handling."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from controller.api.envelope import REQUEST_ID, REQUEST_ID_HEADER, error_response, from_http_exception
from controller.apilog.record import ApiRequestEntry, record_request
from controller.apilog.writer import API_LOG_WRITER_KEY
from controller.appkeys import STORE_KEY
from controller.domain import api_keys, idempotency
from controller.domain.errors import DomainError
from controller.ids import new_id
from controller.store import is_busy, is_nul_text

log = logging.getLogger(__name__)

ORG_ID: web.RequestKey[str] = web.RequestKey("org_id", str)  # set by authentication
PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/healthz"})
# Responses that hold a secret are never stored, so Idempotency-Key is not honoured there.
NO_IDEMPOTENCY_PATHS = frozenset({"/v1/sip/credentials", "/v1/webhook_endpoints"})
NO_IDEMPOTENCY_SUFFIXES = ("/rotate_secret",)


async def _to_response(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler; turn every failure into the error envelope."""
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, from_http_exception(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if _store_busy(exc):
            # Another process (controller, bridge) held the write lock past the busy timeout.
            log.warning("store busy on %s %s (request %s)", request.method, request.path, request[REQUEST_ID])
            busy = error_response(
                request, DomainError(503, "store_busy", "The store is busy; retry shortly", type="api_error")
            )
            busy.headers["Retry-After"] = "1"
            return busy
        if is_nul_text(exc):
            # PostgreSQL text cannot hold NUL; SQLite would merely find nothing. Either way: bad input.
            return error_response(
                request, DomainError(400, "parameter_invalid", "Text must not contain NUL characters")
            )
        log.exception(
            "unhandled error on %s %s (request %s)", request.method, request.path, request[REQUEST_ID]
        )
        return error_response(
            request, DomainError(500, "internal_error", "Internal server error", type="api_error")
        )


def _store_busy(exc: Exception) -> bool:
    return is_busy(exc)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = new_id("req")
    response = await _to_response(request, handler)
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    return response


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return request.headers.get("X-API-Key")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    raw = _presented_key(request)
    if not raw:
        raise DomainError(
            401,
            "authentication_required",
            "Send your API key as 'Authorization: Bearer sk_…' or 'X-API-Key: sk_…'",
            type="authentication_error",
        )
    key = await asyncio.to_thread(api_keys.authenticate, request.app[STORE_KEY], raw)
    if key is None:
        raise DomainError(401, "invalid_api_key", "Invalid or revoked API key", type="authentication_error")
    request[ORG_ID] = key.org_id
    return await handler(request)


def _error_code(response: web.StreamResponse) -> str | None:
    """``error.code`` of an error envelope (only error responses are parsed)."""
    if response.status < 400 or not isinstance(response, web.Response) or not response.body:
        return None
    try:
        code = json.loads(bytes(response.body))["error"]["code"]  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError):
        return None
    return code if isinstance(code, str) else None


@web.middleware
async def api_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One API log row per authenticated request: method, URL path (never the query string, which
    may carry values a caller treats as secret), status, duration, request id, error code."""
    if ORG_ID not in request:
        return await handler(request)
    start = time.perf_counter()
    response = await _to_response(request, handler)  # errors become envelopes: log their status
    entry = ApiRequestEntry(
        org_id=request[ORG_ID],
        method=request.method,
        path=request.path,
        status=response.status,
        duration_ms=(time.perf_counter() - start) * 1000,
        request_id=request[REQUEST_ID],
        error_code=_error_code(response),
    )
    writer = request.app.get(API_LOG_WRITER_KEY)
    if writer is not None:
        writer.submit(entry)  # written by the batch writer (controller/apilog/writer.py)
        return response
    try:
        await asyncio.to_thread(record_request, request.app[STORE_KEY], entry)
    except Exception:
        # The log must never fail the request it describes.
        log.exception("API log write failed (request %s)", request[REQUEST_ID])
    return response


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    if (
        key is None
        or request.method != "POST"
        or ORG_ID not in request
        or request.path in NO_IDEMPOTENCY_PATHS
        or request.path.endswith(NO_IDEMPOTENCY_SUFFIXES)
    ):
        return await handler(request)
    store = request.app[STORE_KEY]
    org_id = request[ORG_ID]
    body = await request.read()
    fingerprint = idempotency.request_fingerprint(request.method, request.path, body)
    stored = await asyncio.to_thread(
        idempotency.begin, store, org_id, key, request.method, request.path, fingerprint
    )
    if stored is not None:
        replay = web.Response(status=stored.status, text=stored.body, content_type="application/json")
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    try:
        response = await _to_response(request, handler)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(idempotency.abandon, store, org_id, key))
        raise
    if response.status >= 500 or not isinstance(response, web.Response) or response.text is None:
        await asyncio.to_thread(idempotency.abandon, store, org_id, key)
    else:
        await asyncio.to_thread(idempotency.finish, store, org_id, key, response.status, response.text)
    return response

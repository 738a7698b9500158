"""``GET /metrics`` of the API process and the request counters behind it.

Serves prometheus_client's default registry: these request metrics, the webhook delivery
metrics (controller/webhooks/metrics.py) and the process collectors. The route is public like
``/healthz`` (Prometheus sends no API key): keep the API's port on a private network or serve
only ``/v1`` through the reverse proxy (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

# Loaded here so that its series exist (at 0) before the first delivery; absent in a slim build.
try:
    import controller.webhooks.metrics  # noqa: F401
except ImportError:  # pragma: no cover - the webhooks package is part of the API
    pass

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route (404/405): a raw path would make one series per URL tried
CLIENT_GONE = 499  # the client closed the connection before the response (nginx's code)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

API_REQUESTS = Counter(
    "kallglot_api_requests", "API requests by method, route (the matched route's template) and status",
    ["method", "route", "status"])
API_LATENCY = Histogram(
    "kallglot_api_request_duration_seconds", "API request handling time", ["method", "route"],
    buckets=LATENCY_BUCKETS)


def route_of(request: web.Request) -> str:
    """The matched route's canonical path (``/v1/sessions/{session_id}``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: it sees the status the client gets, error envelopes included."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        method = request.method if request.method in METHODS else "other"
        route = route_of(request)
        API_REQUESTS.labels(method, route, str(status)).inc()
        API_LATENCY.labels(method, route).observe(time.perf_counter() - started)


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

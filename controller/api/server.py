"""The API application and ``kallglot api``."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from controller import portal
from controller.api import (
    api_logs,
    connections,
    dial,
    languages,
    pbx_config,
    phone_numbers,
    sessions,
    sip,
    webhook_endpoints,
)
from controller.api.envelope import json_response
from controller.api.janitor import JANITOR_INTERVAL_KEY, janitor_ctx
from controller.api.metrics import metrics_handler, metrics_middleware
from controller.api.middleware import (
    api_log_middleware,
    auth_middleware,
    idempotency_middleware,
    request_id_middleware,
)
from controller.api.openapi import OPENAPI_KEY, build_openapi, openapi_handler
from controller.apilog.writer import API_LOG_WRITER_KEY, ApiLogWriter, api_log_writer_ctx
from controller.appkeys import (
    CALL_CONTROL_KEY,
    SETTINGS_KEY,
    SETTINGS_LISTENERS_KEY,
    STORE_KEY,
    CallControl,
)
from controller.settings import Settings
from controller.store import Store, open_store
from controller.webhooks.worker import webhook_worker_ctx

log = logging.getLogger(__name__)

JANITOR_INTERVAL_S = 60.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(
    settings: Settings,
    store: Store,
    *,
    call_control: CallControl | None = None,
    janitor_interval_s: float = JANITOR_INTERVAL_S,
) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, request_id_middleware, auth_middleware, api_log_middleware,
                     idempotency_middleware]
    )
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store
    if call_control is not None:
        app[CALL_CONTROL_KEY] = call_control
    app[SETTINGS_LISTENERS_KEY] = []
    app[OPENAPI_KEY] = build_openapi(settings.sip_domain)
    app[JANITOR_INTERVAL_KEY] = janitor_interval_s
    for module in (sessions, dial, connections, phone_numbers, sip, pbx_config, webhook_endpoints, api_logs,
                   languages):
        app.add_routes(module.routes)
    app.router.add_get("/v1/openapi.json", openapi_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)  # public, like /healthz (docs/operations.md)
    portal.install(app)  # /portal/: the Developer Portal, cookie sign-in of its own (docs/portal.md)
    app[API_LOG_WRITER_KEY] = ApiLogWriter(store)
    app.cleanup_ctx.append(api_log_writer_ctx)
    app.cleanup_ctx.append(janitor_ctx)
    app.cleanup_ctx.append(webhook_worker_ctx)  # off with KALLGLOT_WEBHOOK_WORKER=false
    return app


def _call_control(settings: Settings, store: Store) -> CallControl | None:
    """ESL call control (hang up / originate legs from worker threads), when the calls package is here."""
    try:
        from controller.calls.esl_control import EslCallControl
    except ImportError as exc:
        log.warning("ESL call control unavailable (%s): ending a session will not hang up its legs", exc)
        return None
    return EslCallControl(settings, store)


def _install_optional_routes(app: web.Application) -> None:
    """Routes owned by other parts of the controller; each is optional so the API runs without them."""
    try:
        from controller.api.admin import install
    except ImportError as exc:
        log.warning("admin routes unavailable (%s): POST /admin/reload is not served", exc)
    else:
        install(app)


def cli_run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_store(settings.db_path)
    app = create_app(settings, store, call_control=_call_control(settings, store))
    _install_optional_routes(app)
    try:
        web.run_app(app, host=settings.api_host, port=settings.api_port, print=None)
    finally:
        store.close()
    return 0

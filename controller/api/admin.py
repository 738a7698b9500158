"""``POST /admin/reload`` and the debounced reload on settings changes, for the API app.

Auth: ``Authorization: Bearer <KALLGLOT_ADMIN_TOKEN>`` compared in constant time; with no token
configured the endpoint answers 503 ``admin_disabled``. The ESL work runs in a worker thread
(``asyncio.to_thread``) that owns its own short-lived ESL connection.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from controller.appkeys import SETTINGS_KEY, SETTINGS_LISTENERS_KEY, STORE_KEY
from controller.fsconfig.debounce import Debouncer
from controller.fsconfig.model import ConfigInputError
from controller.fsconfig.service import FsConfigService, ReloadError
from controller.fsconfig.validate import RenderValidationError

log = logging.getLogger(__name__)

# Built on first use (the store and settings keys may be set after install); a mutable holder
# because a started application's state must not be reassigned.
SERVICE_KEY: web.AppKey[list[FsConfigService]] = web.AppKey("fsconfig_service", list)
DEBOUNCER_KEY: web.AppKey[Debouncer] = web.AppKey("fsconfig_debouncer", Debouncer)
RELOAD_DELAY_KEY: web.AppKey[float] = web.AppKey("fsconfig_reload_delay", float)
# Bring FreeSWITCH up to date with the store when the API starts (changes made while it was down).
RELOAD_ON_STARTUP_KEY: web.AppKey[bool] = web.AppKey("fsconfig_reload_on_startup", bool)
_SERVICE_LOCK = threading.Lock()


def _request_id(request: web.Request) -> str:
    try:
        from controller.api.envelope import request_id
    except ImportError:  # the admin route also works on an app without the /v1 middleware
        return ""
    return request_id(request)


def _error(request: web.Request, status: int, code: str, message: str, *, kind: str,
           param: str | None = None, **extra: Any) -> web.Response:
    body = {"error": {"type": kind, "code": code, "message": message, "param": param,
                      "request_id": _request_id(request)} | extra}
    return web.json_response(body, status=status)


def service(app: web.Application) -> FsConfigService:
    holder = app[SERVICE_KEY]
    with _SERVICE_LOCK:  # the request handler and the debouncer thread may both get here first
        if not holder:
            holder.append(FsConfigService(app[STORE_KEY], app[SETTINGS_KEY]))
    return holder[0]


async def _restart_profile_flag(request: web.Request) -> tuple[bool, str | None]:
    """The optional JSON body ``{"restart_profile": true}``: (flag, problem or None)."""
    if not request.can_read_body:
        return False, None
    try:
        body = await request.json()
    except ValueError:
        return False, "the body must be JSON: {\"restart_profile\": true|false}"
    if not isinstance(body, dict) or set(body) - {"restart_profile"}:
        return False, "the body may only hold restart_profile"
    flag = body.get("restart_profile", False)
    if not isinstance(flag, bool):
        return False, "restart_profile must be true or false"
    return flag, None


async def reload_handler(request: web.Request) -> web.Response:
    token = request.app[SETTINGS_KEY].admin_token
    if not token:
        return _error(request, 503, "admin_disabled", "Set KALLGLOT_ADMIN_TOKEN to enable the admin API",
                      kind="api_error")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode("utf-8"), token.encode("utf-8")
    ):
        response = _error(request, 401, "invalid_admin_token", "Send 'Authorization: Bearer <admin token>'",
                          kind="authentication_error")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    restart_profile, problem = await _restart_profile_flag(request)
    if problem is not None:
        return _error(request, 400, "parameter_invalid", problem, kind="invalid_request_error",
                      param="restart_profile")
    try:
        outcome = await asyncio.to_thread(service(request.app).reload, restart_profile=restart_profile)
    except ConfigInputError as exc:
        return _error(request, 422, "invalid_configuration", str(exc), kind="invalid_request_error",
                      param=exc.field)
    except RenderValidationError as exc:
        return _error(request, 422, "invalid_configuration", str(exc), kind="invalid_request_error")
    except ReloadError as exc:
        return _error(request, 502, "freeswitch_reload_failed", str(exc), kind="api_error",
                      freeswitch=exc.as_dict())
    return web.json_response(outcome.as_dict())


def _listener_ctx(app: web.Application) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if app.get(RELOAD_ON_STARTUP_KEY, True):
            app[DEBOUNCER_KEY].notify("startup")
        yield
        debouncer = app.get(DEBOUNCER_KEY)
        if debouncer is not None:
            debouncer.close()

    return ctx


def install(app: web.Application) -> None:
    """Add POST /admin/reload and register the debounced settings listener."""
    app.router.add_post("/admin/reload", reload_handler)
    app[SERVICE_KEY] = []

    def run_reload() -> None:
        try:
            outcome = service(app).reload()
        except (ConfigInputError, RenderValidationError) as exc:
            log.error("settings changed but the FreeSWITCH config cannot be rendered: %s", exc)
        except ReloadError as exc:
            log.error("settings changed but FreeSWITCH did not reload: %s", exc)
        else:
            log.info("settings change applied: %s", outcome.as_dict())

    debouncer = Debouncer(run_reload, delay=app.get(RELOAD_DELAY_KEY, 1.0))
    app[DEBOUNCER_KEY] = debouncer
    if SETTINGS_LISTENERS_KEY not in app:
        app[SETTINGS_LISTENERS_KEY] = []
    app[SETTINGS_LISTENERS_KEY].append(debouncer.notify)
    app.cleanup_ctx.append(_listener_ctx(app))

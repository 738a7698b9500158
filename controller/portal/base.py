"""The portal's plumbing: app keys, templates, the cookie session, CSRF, error pages, headers."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from controller.api.envelope import REQUEST_ID, request_id
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.domain.errors import DomainError
from controller.portal import auth
from controller.settings import Settings
from controller.store import Store

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/portal"
SESSION_COOKIE = "kallglot_portal"
LOGIN_NONCE_COOKIE = "kallglot_portal_login"
CSRF_FIELD = "csrf_token"

PARENT_KEY: web.AppKey[web.Application] = web.AppKey("portal_parent", web.Application)
JINJA_KEY: web.AppKey[jinja2.Environment] = web.AppKey("portal_jinja", jinja2.Environment)
SESSION: web.RequestKey[auth.WebSession] = web.RequestKey("portal_session", auth.WebSession)
RAW_SESSION: web.RequestKey[str] = web.RequestKey("portal_raw_session", str)

# Routes reachable without a session (by route name).
PUBLIC_ROUTES = frozenset({"login", "login_post", "static"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    return env


def when(value: float | str | None) -> str:
    """Unix seconds or the API's ISO-8601 text → ``2026-12-02 03:40:12 UTC``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        moment = datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def store(request: web.Request) -> Store:
    return request.config_dict[STORE_KEY]


def settings(request: web.Request) -> Settings:
    return request.config_dict[SETTINGS_KEY]


def parent(request: web.Request) -> web.Application:
    return request.app[PARENT_KEY]


def session(request: web.Request) -> auth.WebSession:
    return request[SESSION]


def org_id(request: web.Request) -> str:
    return request[SESSION].org_id


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Store calls may wait on another process's write lock: keep them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def is_https(request: web.Request) -> bool:
    """Behind a TLS-terminating proxy the request arrives as http with X-Forwarded-Proto: https."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PREFIX + "/", httponly=True, samesite="Lax",
        secure=is_https(request),
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=PREFIX + "/")


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    web_session = request.get(SESSION)
    page = request.app[JINJA_KEY].get_template(template).render(
        session=web_session,
        csrf_token=web_session.csrf_token if web_session else "",
        request_id=request_id(request),
        sip_domain=settings(request).sip_domain,
        nav=context.pop("nav", ""),
        flash=context.pop("flash", None),
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


async def flash(request: web.Request, message: str) -> None:
    await in_thread(auth.set_flash, store(request), request[RAW_SESSION], message)


async def take_flash(request: web.Request) -> str | None:
    return await in_thread(auth.pop_flash, store(request), request[RAW_SESSION])


def redirect(location: str) -> web.HTTPSeeOther:
    """After a POST: the browser GETs the page again (reloading it does not post twice)."""
    return web.HTTPSeeOther(location)


def error_page(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """The API's error envelope (code, message, request id) as a page."""
    return render(request, "error.html", status=status, code=code, message=message)


def _security_headers(response: web.StreamResponse, static: bool) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # a sign-in link must not leak onward
    if not static:
        response.headers["Cache-Control"] = "no-store"  # pages hold the organization's data


async def _load_session(request: web.Request) -> None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return
    found = await in_thread(auth.load_session, store(request), raw)
    if found is not None:
        request[SESSION] = found
        request[RAW_SESSION] = raw


async def _csrf_checked(request: web.Request) -> bool:
    """Every state-changing request carries the session's token: a form field or X-CSRF-Token."""
    presented = request.headers.get("X-CSRF-Token")
    if presented is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        presented = (await request.post()).get(CSRF_FIELD)  # type: ignore[assignment]
    return auth.csrf_ok(request[SESSION], presented if isinstance(presented, str) else None)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == PREFIX:
        raise web.HTTPPermanentRedirect(PREFIX + "/")
    route = request.match_info.route.name
    if route == "static":
        return await handler(request)
    await _load_session(request)
    if route in PUBLIC_ROUTES:
        return await handler(request)
    if SESSION not in request:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPSeeOther(PREFIX + "/login")
        return error_page(request, 401, "authentication_required",
                          "Your portal session has ended; sign in again with a new link")
    if request.method not in ("GET", "HEAD") and not await _csrf_checked(request):
        log.warning("portal: %s %s refused: CSRF token missing or wrong (request %s)",
                    request.method, request.path, request.get(REQUEST_ID, ""))
        return error_page(
            request, 403, "csrf_token_invalid",
            "This form's security token is missing or out of date; reload the page and try again",
        )
    return await handler(request)


@web.middleware
async def portal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sessions, CSRF and HTML error pages for everything under /portal/ (the API's middleware
    would turn errors into JSON envelopes; these are the same codes and messages as a page)."""
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            _security_headers(exc, static=False)
            raise
        if exc.status == 404:
            response = error_page(request, 404, "route_not_found", "No such page")
        elif exc.status == 405:
            response = error_page(request, 405, "method_not_allowed", "Method not allowed on this route")
        else:
            response = error_page(request, exc.status, "http_error", exc.reason)
    except DomainError as exc:
        response = error_page(request, exc.status, exc.code, exc.message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("portal: unhandled error on %s %s (request %s)", request.method, request.path,
                      request.get(REQUEST_ID, ""))
        response = error_page(request, 500, "internal_error", "Internal server error")
    _security_headers(response, static=request.match_info.route.name == "static")
    return response


def same_value(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))

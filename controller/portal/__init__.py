"""The Developer Portal: server-rendered pages under /portal/ in the API process (docs/portal.md).

Its own cookie sign-in (one-time links from ``kallglot portal link``), CSRF tokens on every form,
and the same domain functions, request models and reload path as the /v1 API.
"""

from __future__ import annotations

from aiohttp import web

from controller.portal.base import JINJA_KEY, PARENT_KEY, PREFIX, STATIC_DIR, jinja_env, portal_middleware
from controller.portal.routes_activity import routes as activity_routes
from controller.portal.routes_auth import routes as auth_routes
from controller.portal.routes_sip import routes as sip_routes
from controller.portal.routes_telephony import routes as telephony_routes


def create_portal_app(api: web.Application) -> web.Application:
    portal = web.Application(middlewares=[portal_middleware])
    portal[PARENT_KEY] = api
    portal[JINJA_KEY] = jinja_env()
    for routes in (auth_routes, sip_routes, telephony_routes, activity_routes):
        portal.add_routes(routes)
    portal.router.add_static("/static", STATIC_DIR, name="static")
    return portal


def install(api: web.Application) -> None:
    """Mount the portal under /portal/ (outside /v1: not in the OpenAPI document, no API key)."""
    api.add_subapp(PREFIX + "/", create_portal_app(api))

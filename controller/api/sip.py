"""/v1/sip and /v1/sip/credentials: the organization's SIP / PBX settings."""

from __future__ import annotations

from aiohttp import web

from controller.api.context import in_thread, notify_settings_changed, org_id
from controller.api.envelope import json_response
from controller.api.parsing import parse_body
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.domain import sip_settings
from controller.domain.requests import SipSettingsUpdate

routes = web.RouteTableDef()


@routes.get("/v1/sip")
async def get(request: web.Request) -> web.Response:
    record = await in_thread(sip_settings.get_sip_settings, request.app[STORE_KEY], org_id(request))
    return json_response(record.to_json(request.app[SETTINGS_KEY].sip_domain))


@routes.patch("/v1/sip")
async def update(request: web.Request) -> web.Response:
    body = await parse_body(request, SipSettingsUpdate, empty_ok=True)
    org = org_id(request)
    record = await in_thread(sip_settings.update_sip_settings, request.app[STORE_KEY], org, body)
    notify_settings_changed(request.app, org)
    return json_response(record.to_json(request.app[SETTINGS_KEY].sip_domain))


@routes.post("/v1/sip/credentials")
async def credentials(request: web.Request) -> web.Response:
    org = org_id(request)
    creds = await in_thread(
        sip_settings.regenerate_credentials, request.app[STORE_KEY], org, request.app[SETTINGS_KEY].sip_domain
    )
    notify_settings_changed(request.app, org)
    response = json_response(
        {
            "object": "sip_credentials",
            "username": creds.username,
            "domain": creds.domain,
            "password": creds.password,
        },
        status=201,
    )
    response.headers["Cache-Control"] = "no-store"  # the only response that ever holds the password
    return response

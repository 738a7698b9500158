"""/v1/phone_numbers: managed numbers."""

from __future__ import annotations

from aiohttp import web

from controller.api.context import in_thread, json_list, notify_settings_changed, org_id
from controller.api.envelope import json_response
from controller.api.parsing import page_request, parse_body, query_choice
from controller.appkeys import STORE_KEY
from controller.domain import phone_numbers
from controller.domain.requests import PhoneNumberCreate, PhoneNumberUpdate

routes = web.RouteTableDef()


@routes.post("/v1/phone_numbers")
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, PhoneNumberCreate)
    org = org_id(request)
    record = await in_thread(phone_numbers.create_phone_number, request.app[STORE_KEY], org, body)
    notify_settings_changed(request.app, org)
    return json_response(record.to_json(), status=201)


@routes.get("/v1/phone_numbers")
async def list_(request: web.Request) -> web.Response:
    page = page_request(request)
    status = query_choice(request, "status", ("active", "released"))
    items, has_more = await in_thread(
        phone_numbers.list_phone_numbers, request.app[STORE_KEY], org_id(request), page=page, status=status
    )
    return json_list([n.to_json() for n in items], has_more)


@routes.get("/v1/phone_numbers/{id}")
async def get(request: web.Request) -> web.Response:
    record = await in_thread(
        phone_numbers.get_phone_number, request.app[STORE_KEY], org_id(request), request.match_info["id"]
    )
    return json_response(record.to_json())


@routes.patch("/v1/phone_numbers/{id}")
async def update(request: web.Request) -> web.Response:
    body = await parse_body(request, PhoneNumberUpdate, empty_ok=True)
    org = org_id(request)
    record = await in_thread(
        phone_numbers.update_phone_number, request.app[STORE_KEY], org, request.match_info["id"], body
    )
    notify_settings_changed(request.app, org)
    return json_response(record.to_json())

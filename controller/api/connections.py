"""/v1/connections: provider connections (secrets write-only)."""

from __future__ import annotations

from aiohttp import web

from controller.api.context import in_thread, json_list, notify_settings_changed, org_id
from controller.api.envelope import json_response
from controller.api.parsing import page_request, parse_body, query_choice
from controller.appkeys import STORE_KEY
from controller.domain import connections
from controller.domain.requests import ConnectionCreate, ConnectionUpdate

routes = web.RouteTableDef()


@routes.post("/v1/connections")
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, ConnectionCreate)
    org = org_id(request)
    record = await in_thread(connections.create_connection, request.app[STORE_KEY], org, body)
    notify_settings_changed(request.app, org)
    return json_response(record.to_json(), status=201)


@routes.get("/v1/connections")
async def list_(request: web.Request) -> web.Response:
    page = page_request(request)
    status = query_choice(request, "status", ("active", "disabled"))
    items, has_more = await in_thread(
        connections.list_connections, request.app[STORE_KEY], org_id(request), page=page, status=status
    )
    return json_list([c.to_json() for c in items], has_more)


@routes.get("/v1/connections/{id}")
async def get(request: web.Request) -> web.Response:
    record = await in_thread(
        connections.get_connection, request.app[STORE_KEY], org_id(request), request.match_info["id"]
    )
    return json_response(record.to_json())


@routes.patch("/v1/connections/{id}")
async def update(request: web.Request) -> web.Response:
    body = await parse_body(request, ConnectionUpdate, empty_ok=True)
    org = org_id(request)
    record = await in_thread(
        connections.update_connection, request.app[STORE_KEY], org, request.match_info["id"], body
    )
    notify_settings_changed(request.app, org)
    return json_response(record.to_json())


@routes.delete("/v1/connections/{id}")
async def delete(request: web.Request) -> web.Response:
    org = org_id(request)
    record = await in_thread(
        connections.delete_connection, request.app[STORE_KEY], org, request.match_info["id"]
    )
    notify_settings_changed(request.app, org)
    return json_response(record.to_json())

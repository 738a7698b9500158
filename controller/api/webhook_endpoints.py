"""/v1/webhook_endpoints: where an organization's events are delivered (signing secret shown only
by create and rotate_secret)."""

from __future__ import annotations

from aiohttp import web

from controller.api.context import in_thread, json_list, org_id
from controller.api.envelope import json_response
from controller.api.parsing import page_request, parse_body, query_choice
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.webhooks import endpoints
from controller.webhooks.requests import RotateSecret, WebhookEndpointCreate, WebhookEndpointUpdate

routes = web.RouteTableDef()


def _with_secret(record: endpoints.WebhookEndpoint, status: int) -> web.Response:
    response = json_response(record.to_json(include_secret=True), status=status)
    response.headers["Cache-Control"] = "no-store"  # the only responses that hold the secret
    return response


def _allow_private(request: web.Request) -> bool:
    return request.app[SETTINGS_KEY].webhook_allow_private_targets


@routes.post("/v1/webhook_endpoints")
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookEndpointCreate)
    record = await in_thread(
        endpoints.create_endpoint, request.app[STORE_KEY], org_id(request), body,
        allow_private=_allow_private(request),
    )
    return _with_secret(record, 201)


@routes.get("/v1/webhook_endpoints")
async def list_(request: web.Request) -> web.Response:
    page = page_request(request)
    status = query_choice(request, "status", ("enabled", "disabled"))
    items, has_more = await in_thread(
        endpoints.list_endpoints, request.app[STORE_KEY], org_id(request), page=page, status=status
    )
    return json_list([e.to_json() for e in items], has_more)


@routes.get("/v1/webhook_endpoints/{id}")
async def get(request: web.Request) -> web.Response:
    record = await in_thread(
        endpoints.get_endpoint, request.app[STORE_KEY], org_id(request), request.match_info["id"]
    )
    return json_response(record.to_json())


@routes.patch("/v1/webhook_endpoints/{id}")
async def update(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookEndpointUpdate, empty_ok=True)
    record = await in_thread(
        endpoints.update_endpoint, request.app[STORE_KEY], org_id(request), request.match_info["id"], body,
        allow_private=_allow_private(request),
    )
    return json_response(record.to_json())


@routes.delete("/v1/webhook_endpoints/{id}")
async def delete(request: web.Request) -> web.Response:
    record = await in_thread(
        endpoints.delete_endpoint, request.app[STORE_KEY], org_id(request), request.match_info["id"]
    )
    return json_response(record.to_json())


@routes.post("/v1/webhook_endpoints/{id}/rotate_secret")
async def rotate_secret(request: web.Request) -> web.Response:
    body = await parse_body(request, RotateSecret, empty_ok=True)
    record = await in_thread(
        endpoints.rotate_secret, request.app[STORE_KEY], org_id(request), request.match_info["id"], body
    )
    return _with_secret(record, 200)

"""The OpenAPI 3.1 document, generated from the request and response models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from controller.api import schemas
from controller.api.api_logs import METHODS
from controller.api.dial import CallLeg, DialRequest
from controller.api.envelope import json_response
from controller.domain.requests import (
    ConnectionCreate,
    ConnectionUpdate,
    PhoneNumberCreate,
    PhoneNumberUpdate,
    SessionCreate,
    SipSettingsUpdate,
)
from controller.domain.sessions import STATUSES
from controller.webhooks.requests import RotateSecret, WebhookEndpointCreate, WebhookEndpointUpdate

REF = "#/components/schemas/{model}"


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str = "validation") -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        self.schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}


def _json(ref: dict[str, str]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def build_openapi(sip_domain: str) -> dict[str, Any]:
    c = _Components()
    error = {"description": "Error", "content": _json(c.ref(schemas.Error))}
    errors = {
        "400": error, "401": error, "404": error, "409": error, "422": error, "429": error,
        "502": error, "503": error,
    }
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "Same key + same body within 24 h returns the first response",
    }

    def op(
        summary: str,
        status: str,
        out: type[BaseModel],
        body: type[BaseModel] | None = None,
        params: list[dict[str, Any]] | None = None,
        body_required: bool = True,
    ) -> dict[str, Any]:
        o: dict[str, Any] = {
            "summary": summary,
            "responses": {
                status: {"description": summary, "content": _json(c.ref(out, "serialization"))},
                **errors,
            },
        }
        if params:
            o["parameters"] = params
        if body is not None:
            o["requestBody"] = {"required": body_required, "content": _json(c.ref(body))}
        return o

    def list_params(statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            },
            {"name": "starting_after", "in": "query", "schema": {"type": "string"}},
            {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(statuses)}},
        ]

    def api_log_params() -> list[dict[str, Any]]:
        def text(name: str, description: str) -> dict[str, Any]:
            schema = {"type": "string", "minLength": 1, "maxLength": 100}
            return {"name": name, "in": "query", "schema": schema, "description": description}

        moment = {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
        return [
            *list_params(())[:2],
            {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["api_request",
                                                                                  "webhook_delivery"]}},
            {"name": "status", "in": "query", "description": "An HTTP status (404) or a class (4xx)",
             "schema": {"type": "string", "pattern": r"^([1-5][0-9]{2}|[1-5]xx)$"}},
            {"name": "method", "in": "query",
             "schema": {"type": "string", "enum": list(METHODS)}},
            text("request_id", "X-Request-ID of an API request"),
            text("error_code", "error.code of an API request, or a delivery's error code"),
            text("endpoint_id", "Webhook endpoint (we_…)"),
            text("event_id", "Webhook event (evt_…)"),
            text("event_type", "Webhook event type"),
            {"name": "created[gte]", "in": "query", "schema": moment,
             "description": "Created at or after (unix seconds or ISO-8601 with a time zone)"},
            {"name": "created[lt]", "in": "query", "schema": moment, "description": "Created before"},
        ]

    def language_param(name: str) -> dict[str, Any]:
        schema = {"type": "string", "pattern": "^[A-Za-z]{2,3}$"}
        description = f"Only directions with this {name} language (ISO 639-1)"
        return {"name": name, "in": "query", "schema": schema, "description": description}

    paths: dict[str, Any] = {
        "/v1/sessions": {
            "post": op(
                "Create a session", "201", schemas.Session, SessionCreate, [idem], body_required=False
            ),
            "get": op(
                "List sessions (newest first)", "200", schemas.SessionList, params=list_params(STATUSES)
            ),
        },
        "/v1/sessions/{id}": {"get": op("Retrieve a session", "200", schemas.Session, params=[id_param])},
        "/v1/sessions/{id}/end": {
            "post": op("End a session (idempotent)", "200", schemas.Session, params=[id_param, idem])
        },
        "/v1/sessions/{id}/dial": {
            "post": op(
                "Dial an outbound leg of a session through its provider", "202", CallLeg, DialRequest,
                [id_param, idem],
            )
        },
        "/v1/sessions/{id}/transcript": {
            "get": op("A session's transcript", "200", schemas.Transcript, params=[id_param])
        },
        "/v1/connections": {
            "post": op("Create a provider connection", "201", schemas.Connection, ConnectionCreate, [idem]),
            "get": op(
                "List connections", "200", schemas.ConnectionList, params=list_params(("active", "disabled"))
            ),
        },
        "/v1/connections/{id}": {
            "get": op("Retrieve a connection", "200", schemas.Connection, params=[id_param]),
            "patch": op(
                "Update a connection",
                "200",
                schemas.Connection,
                ConnectionUpdate,
                [id_param],
                body_required=False,
            ),
            "delete": op("Delete a connection", "200", schemas.Connection, params=[id_param]),
        },
        "/v1/phone_numbers": {
            "post": op("Add a managed number", "201", schemas.PhoneNumber, PhoneNumberCreate, [idem]),
            "get": op(
                "List numbers", "200", schemas.PhoneNumberList, params=list_params(("active", "released"))
            ),
        },
        "/v1/phone_numbers/{id}": {
            "get": op("Retrieve a number", "200", schemas.PhoneNumber, params=[id_param]),
            "patch": op(
                "Update a number",
                "200",
                schemas.PhoneNumber,
                PhoneNumberUpdate,
                [id_param],
                body_required=False,
            ),
        },
        "/v1/sip": {
            "get": op("SIP settings", "200", schemas.SipSettings),
            "patch": op(
                "Update SIP settings", "200", schemas.SipSettings, SipSettingsUpdate, body_required=False
            ),
        },
        "/v1/sip/credentials": {
            "post": op("Generate SIP credentials (password shown once)", "201", schemas.SipCredentials)
        },
        "/v1/sip/pbx_config": {
            "get": op("Trunk configuration to paste into a PBX (no password)", "200", schemas.PbxConfig)
        },
        # Create and rotate_secret return the signing secret: Idempotency-Key is not honoured there.
        "/v1/webhook_endpoints": {
            "post": op(
                "Create a webhook endpoint (secret shown once)", "201", schemas.WebhookEndpointWithSecret,
                WebhookEndpointCreate,
            ),
            "get": op(
                "List webhook endpoints", "200", schemas.WebhookEndpointList,
                params=list_params(("enabled", "disabled")),
            ),
        },
        "/v1/webhook_endpoints/{id}": {
            "get": op("Retrieve a webhook endpoint", "200", schemas.WebhookEndpoint, params=[id_param]),
            "patch": op(
                "Update a webhook endpoint", "200", schemas.WebhookEndpoint, WebhookEndpointUpdate,
                [id_param], body_required=False,
            ),
            "delete": op("Delete a webhook endpoint", "200", schemas.WebhookEndpoint, params=[id_param]),
        },
        "/v1/webhook_endpoints/{id}/rotate_secret": {
            "post": op(
                "Rotate the signing secret (new secret shown once)", "200", schemas.WebhookEndpointWithSecret,
                RotateSecret, [id_param], body_required=False,
            )
        },
        "/v1/languages": {
            "get": op(
                "Translation directions this install serves, and what to pull for others", "200",
                schemas.Languages, params=[language_param("source"), language_param("target")],
            )
        },
        "/v1/api_logs": {
            "get": op("API requests and webhook delivery attempts (newest first)", "200", schemas.ApiLogList,
                      params=api_log_params())
        },
    }
    for path, methods in paths.items():
        for method, operation in methods.items():
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            # e.g. post_sessions_id_end: stable names for generated clients.
            operation["operationId"] = re.sub(
                r"[^A-Za-z0-9]+", "_", f"{method} {path.removeprefix('/v1/')}"
            ).strip("_")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kallglot SIP edge API",
            "version": "1.0.0",
            "description": f"Sessions, connections, numbers and SIP settings. SIP domain: {sip_domain}",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": c.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("openapi", dict)


async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_KEY])

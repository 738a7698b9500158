"""GET /v1/sip/pbx_config: ready-to-paste trunk configuration for the organization's PBX."""

from __future__ import annotations

from aiohttp import web

from controller.api.context import in_thread, org_id
from controller.api.envelope import json_response
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.domain.errors import DomainError
from controller.domain.pbx_snippets import SnippetValueError, snippets_for_org

routes = web.RouteTableDef()


@routes.get("/v1/sip/pbx_config")
async def get(request: web.Request) -> web.Response:
    try:
        snippets = await in_thread(
            snippets_for_org, request.app[STORE_KEY], request.app[SETTINGS_KEY], org_id(request)
        )
    except SnippetValueError as exc:
        # A stored value that would break the pasted file: name it, never guess a fix.
        raise DomainError(
            422, "invalid_configuration", f"cannot build the PBX configuration: {exc}", param=exc.field
        ) from None
    return json_response({"object": "pbx_config", **snippets})

"""GET /v1/languages: the translation directions this install serves, and what to pull for the
common ones it does not (media_bridge.capabilities; manifests only, no model is loaded)."""

from __future__ import annotations

import re
from dataclasses import asdict

from aiohttp import web

from controller.api.context import in_thread
from controller.api.envelope import json_response
from controller.domain.errors import DomainError

routes = web.RouteTableDef()

LANGUAGE = re.compile(r"[A-Za-z]{2,3}")


def _language_filter(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not LANGUAGE.fullmatch(raw):
        message = f"{name} must be an ISO 639-1 code such as de"
        raise DomainError(400, "parameter_invalid", message, param=name)
    return raw.lower()


def language_report(source: str | None, target: str | None) -> dict[str, object]:
    from media_bridge.capabilities import not_served, served_directions
    from media_bridge.config import BridgeConfig

    config = BridgeConfig.from_env()

    def keep(s: str, t: str) -> bool:
        return (source is None or s == source) and (target is None or t == target)

    return {
        "object": "languages",
        "engine": config.engine,
        "directions": [asdict(d) for d in served_directions(config) if keep(d.source, d.target)],
        "not_served": [
            {**asdict(n), "pull": list(n.pull)} for n in not_served(config) if keep(n.source, n.target)
        ],
    }


@routes.get("/v1/languages")
async def languages(request: web.Request) -> web.Response:
    source = _language_filter(request, "source")
    target = _language_filter(request, "target")
    return json_response(await in_thread(language_report, source, target))

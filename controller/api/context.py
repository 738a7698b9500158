"""What handlers need from the request and the app: the caller's org, the store, notifications."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from aiohttp import web

from controller.api.envelope import json_response
from controller.api.middleware import ORG_ID
from controller.appkeys import SETTINGS_LISTENERS_KEY

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def org_id(request: web.Request) -> str:
    return str(request[ORG_ID])


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """SQLite calls may wait on another process's write lock: keep them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def notify_settings_changed(app: web.Application, org: str) -> None:
    """Tell the config renderer (and any other listener) that this org's telephony changed."""
    for listener in app[SETTINGS_LISTENERS_KEY]:
        try:
            listener(org)
        except Exception:
            log.exception("settings listener %r failed for %s", listener, org)


def json_list(items: list[dict[str, object]], has_more: bool = False) -> web.Response:
    return json_response({"object": "list", "data": items, "has_more": has_more})

"""After a save: tell the API's settings listeners (the same debounced render + reload the API
triggers) and, where this process can reload FreeSWITCH itself, do it now to show the outcome."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from controller.api.context import notify_settings_changed
from controller.appkeys import SETTINGS_LISTENERS_KEY

log = logging.getLogger(__name__)


async def apply_change(app: web.Application, org_id: str) -> str:
    """``app`` is the API application. Returns one sentence for the page: what FreeSWITCH did."""
    notify_settings_changed(app, org_id)
    try:
        from controller.api.admin import SERVICE_KEY, service
        from controller.fsconfig.model import ConfigInputError
        from controller.fsconfig.service import ReloadError
        from controller.fsconfig.validate import RenderValidationError
    except ImportError:
        SERVICE_KEY = None  # the admin routes are optional in the API process
    if SERVICE_KEY is None or SERVICE_KEY not in app:
        if app.get(SETTINGS_LISTENERS_KEY):
            return "The configuration renderer was told; FreeSWITCH picks the change up at its next reload."
        return "This API process does not reload FreeSWITCH; run `kallglot reload` to apply the change."
    try:
        outcome = await asyncio.to_thread(service(app).reload)
    except (ConfigInputError, RenderValidationError) as exc:
        return f"The FreeSWITCH configuration cannot be rendered, so FreeSWITCH was not reloaded: {exc}"
    except ReloadError as exc:
        restart = " A SIP profile restart is needed and was not done." if "restart" in exc.command else ""
        return (f"FreeSWITCH did not reload ({exc}); it keeps the previous configuration"
                f" until the next successful reload.{restart}")
    if not outcome.commands:
        text = "FreeSWITCH already runs this configuration."
    else:
        commands = ", ".join(r.command for r in outcome.commands)
        text = f"FreeSWITCH reloaded ({commands})."
    if outcome.restarted:
        text += " The SIP profile was restarted: calls that were up on it ended."
    failed = [str(n.get("id") or n.get("esl_address")) for n in outcome.nodes if not n.get("ok")]
    if failed:
        # Several FreeSWITCH nodes: the others run the change; these are caught up later.
        text += (f" Not applied on node(s) {', '.join(failed)}: they keep the previous configuration"
                 " until the next successful reload.")
    return text

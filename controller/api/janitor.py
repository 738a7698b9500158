"""Background task of the API process: ends sessions with no audio for 30 minutes, purges
expired idempotency keys, and API log entries and settled webhook deliveries (with their
events) older than KALLGLOT_API_LOG_RETENTION_DAYS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from controller.api.background import background
from controller.api.sessions import hang_up
from controller.apilog.query import purge_older_than
from controller.appkeys import SETTINGS_KEY, STORE_KEY
from controller.domain import idempotency, sessions
from controller.domain.timeutil import now
from controller.webhooks.outbox import purge_settled

log = logging.getLogger(__name__)

JANITOR_INTERVAL_KEY: web.AppKey[float] = web.AppKey("janitor_interval_s", float)
IDLE_REASON = "inactivity"


async def sweep(app: web.Application, *, at: float | None = None) -> list[str]:
    """One pass; returns the ids of the sessions it ended."""
    store = app[STORE_KEY]
    at = now() if at is None else at
    ended = []
    for session_id in await asyncio.to_thread(sessions.idle_session_ids, store, at=at):
        uuids = await asyncio.to_thread(sessions.end_session, store, session_id, IDLE_REASON)
        log.info("session %s ended after %d min without audio", session_id, sessions.IDLE_TIMEOUT_S // 60)
        await hang_up(app, session_id, uuids)
        ended.append(session_id)
    await asyncio.to_thread(idempotency.purge_expired, store, at=at)
    retention_s = app[SETTINGS_KEY].api_log_retention_days * 86400
    await asyncio.to_thread(purge_older_than, store, at - retention_s)
    await asyncio.to_thread(purge_settled, store, at - retention_s)
    return ended


async def _loop(app: web.Application, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sweep(app)
        except Exception:
            log.exception("janitor sweep failed; retrying next interval")


async def janitor_ctx(app: web.Application) -> AsyncIterator[None]:
    async with background(_loop(app, app[JANITOR_INTERVAL_KEY])):
        yield

"""The API log's writer in the API process: requests queue their entry and go on; one task
writes what queued, every ``interval_s``, in one transaction (executemany).

An INSERT per request behind a thread hop cost ~37 % of the API's throughput at 8 concurrent
clients (bench/apilog_bench.py); batching takes both off the request path. The price: a process
killed with SIGKILL loses the entries of its last interval (100 ms by default). GET /v1/api_logs
flushes first, so a caller always reads its own earlier requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from controller.api.background import background
from controller.apilog.record import ApiRequestEntry, record_requests
from controller.store import Store

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.1


class ApiLogWriter:
    def __init__(self, store: Store, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._pending: list[tuple[ApiRequestEntry, float]] = []
        self._lock = asyncio.Lock()  # one flush at a time keeps the rows in arrival order

    def submit(self, entry: ApiRequestEntry) -> None:
        self._pending.append((entry, time.time()))

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(record_requests, self.store, batch)
            except Exception:
                # The log must never fail the API; a store error drops this batch, logged.
                log.exception("API log: %d entries not written", len(batch))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()


API_LOG_WRITER_KEY: web.AppKey[ApiLogWriter] = web.AppKey("api_log_writer", ApiLogWriter)


async def api_log_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    writer = app.get(API_LOG_WRITER_KEY)
    if writer is None:  # an app built without it writes one INSERT per request
        yield
        return
    async with background(writer.run()):
        yield
    await writer.flush()  # what queued since the last interval

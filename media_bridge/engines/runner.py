"""Runs a blocking engine generator in a thread pool and hands its results to asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from media_bridge.engines.base import Engine, EngineResult, UtteranceRequest

_DONE = object()


class EngineRunner:
    """``async for result in runner.run(request)`` — the engine works in one of ``workers``
    threads, so a slow utterance occupies one worker and never the event loop."""

    def __init__(self, engine: Engine, workers: int) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine")

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.engine.warm_up)

    async def run(self, request: UtteranceRequest) -> AsyncIterator[EngineResult]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = False

        def work() -> None:
            try:
                for result in self.engine.process(request):
                    if cancelled:
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, result)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        loop.run_in_executor(self._pool, work)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            cancelled = True  # the worker stops at its next result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

"""200 concurrent legs streaming silence: every queue stays bounded and memory growth is small."""

from __future__ import annotations

import asyncio
import resource

import aiohttp

from controller.store import Store
from media_bridge.config import BridgeConfig
from media_bridge.engines.passthrough import PassthroughEngine
from tests.bridge.helpers import connect_leg, make_session, running_bridge, wait_for

LEGS = 200
FRAMES_PER_LEG = 150  # 3 s of audio each
QUEUE_FRAMES = 50


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def test_200_legs_of_silence_keep_queues_bounded(store: Store) -> None:
    config = BridgeConfig(engine="passthrough", leg_queue_frames=QUEUE_FRAMES)
    sessions = [make_session(store) for _ in range(LEGS // 2)]

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            running_bridge(store, PassthroughEngine(), config) as rb,
            aiohttp.ClientSession(connector=connector) as http,
        ):
            legs = []
            for session_id in sessions:
                for role in ("customer", "agent"):
                    legs.append(await connect_leg(http, rb.url, session_id, f"leg_{role}", role))
            bridge = rb.bridge
            await wait_for(lambda: sum(len(s.legs) for s in bridge.sessions.values()) == LEGS, timeout=30)
            before = rss_mb()
            frame = b"\0" * 640
            max_depth = 0

            async def stream(ws: aiohttp.ClientWebSocketResponse) -> None:
                for i in range(FRAMES_PER_LEG):
                    await ws.send_bytes(frame)
                    if i % 10 == 9:
                        await asyncio.sleep(0)

            async def watch() -> None:
                nonlocal max_depth
                while True:
                    depth = max(len(leg.frames) for s in bridge.sessions.values() for leg in s.legs.values())
                    max_depth = max(max_depth, depth)
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(stream(ws) for ws in legs))
            await wait_for(lambda: bridge.metrics.frames._value.get() == LEGS * FRAMES_PER_LEG, timeout=60)
            await wait_for(
                lambda: all(not leg.frames for s in bridge.sessions.values() for leg in s.legs.values()),
                timeout=60,
            )
            watcher.cancel()
            growth = rss_mb() - before
            assert max_depth <= QUEUE_FRAMES
            assert all(not ws.closed for ws in legs)
            # 200 legs × 3 s of audio is 19 MB in; bounded queues must not hold on to it.
            assert growth < 60, f"RSS grew {growth:.1f} MB"
            assert len(bridge.sessions) == LEGS // 2
            await asyncio.gather(*(ws.close() for ws in legs))
            await wait_for(lambda: not bridge.sessions, timeout=30)

    asyncio.run(main())

"""The bridge's aiohttp app: mod_audio_stream websockets at ``/v1/media/{session_id}/{leg_id}``,
``/healthz`` and ``/metrics``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSMessage, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.settings import Settings
from controller.store import Store, open_store
from media_bridge.audio import frame_bytes
from media_bridge.config import BridgeConfig, BridgeConfigError
from media_bridge.engines import build_engine
from media_bridge.engines.base import Engine
from media_bridge.engines.model_files import ModelError
from media_bridge.engines.runner import EngineRunner
from media_bridge.metrics import BridgeMetrics
from media_bridge.records import load_session, mark_audio
from media_bridge.session import BridgeSession, LegStream
from media_bridge.vad import SpeechSegmenter
from media_bridge.wire import CloseCode, MetadataError, parse_metadata

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0
# Audio accepted before the metadata frame (mod_audio_stream's open-callback race): 1 s at 16 kHz.
EARLY_AUDIO_MAX_BYTES = 32000
MARK_AUDIO_EVERY_S = 10.0
MAX_FRAME_MS = 2000  # STREAM_BUFFER_SIZE beyond this is a misconfiguration
MAX_MSG_BYTES = 1 << 20


class Bridge:
    """All live sessions of one bridge process."""

    def __init__(self, store: Store, engine: Engine, config: BridgeConfig, metrics: BridgeMetrics) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.runner = EngineRunner(engine, config.engine_workers)
        self.sessions: dict[str, BridgeSession] = {}
        self.engine_ready = False
        self.engine_error: str | None = None
        self.websockets: set[web.WebSocketResponse] = set()
        self.warm_up_task: asyncio.Task[None] | None = None
        self.retiring: set[BridgeSession] = set()  # no legs left, still finishing utterances
        self._background: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a side job (store update) without awaiting it; keep a reference until it is done."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _remove_session(self, session: BridgeSession) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            self.metrics.sessions.set(len(self.sessions))
        session.retire()
        self.retiring.add(session)
        if session.worker is not None:
            session.worker.add_done_callback(lambda _: self.retiring.discard(session))

    async def close_ws(self, ws: web.WebSocketResponse, code: CloseCode, reason: str) -> None:
        self.metrics.closes.labels(str(int(code))).inc()
        log.info(_record("ws_closed", code=int(code), reason=reason))
        with contextlib.suppress(ConnectionError, RuntimeError):
            # A close frame's reason holds at most 123 bytes.
            await ws.close(code=int(code), message=reason.encode()[:123].decode(errors="ignore").encode())

    async def mark_audio(self, session: BridgeSession) -> None:
        """First frame → status active; then last_audio_at at most every 10 s. Closes the
        session's sockets when the store says it has ended."""
        first = not session.audio_seen
        session.audio_seen = True
        session.last_mark = time.monotonic()
        try:
            status = await asyncio.to_thread(mark_audio, self.store, session.id, first)
        except Exception:
            log.exception("session %s: cannot record audio activity", session.id)
            return
        if status is None or status in ("ending", "ended"):
            for leg in list(session.legs.values()):
                await self.close_ws(leg.ws, CloseCode.SESSION_ENDED, f"session {session.id} has ended")

    async def shutdown(self) -> None:
        for ws in list(self.websockets):
            await self.close_ws(ws, CloseCode.GOING_AWAY, "bridge shutting down")
        for session in [*self.sessions.values(), *self.retiring]:
            await session.close()
        self.runner.close()


def _record(event: str, **fields: object) -> str:
    """One JSON log line (the controller logs the same way)."""
    return json.dumps({"event": event, **fields}, separators=(",", ":"))


BRIDGE_KEY: web.AppKey[Bridge] = web.AppKey("bridge", Bridge)
METRICS_KEY: web.AppKey[BridgeMetrics] = web.AppKey("bridge_metrics", BridgeMetrics)


async def media_socket(request: web.Request) -> web.StreamResponse:
    bridge = request.app[BRIDGE_KEY]
    session_id, leg_id = request.match_info["session_id"], request.match_info["leg_id"]
    ws = web.WebSocketResponse(max_msg_size=MAX_MSG_BYTES, heartbeat=None)
    await ws.prepare(request)
    bridge.websockets.add(ws)
    try:
        await _serve_leg(bridge, ws, session_id, leg_id)
    finally:
        bridge.websockets.discard(ws)
    return ws


async def _receive_metadata(bridge: Bridge, ws: web.WebSocketResponse,
                            early: list[bytes]) -> WSMessage | None:
    """The metadata text frame; audio that arrives before it is kept in ``early`` (bounded).

    mod_audio_stream (MIT edition, ec2a781) sends the metadata from its websocket's open
    callback, while the media thread starts writing audio as soon as the socket reports
    connected: on a real FreeSWITCH a first audio frame sometimes wins that race. That is the
    call's first speech, not a protocol error."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    kept = 0
    while True:
        try:
            msg = await ws.receive(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await bridge.close_ws(ws, CloseCode.METADATA_TIMEOUT, "no metadata frame within 10 s")
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if msg.type == WSMsgType.TEXT:
            return msg
        kept += len(msg.data) if msg.type == WSMsgType.BINARY else 0
        if msg.type != WSMsgType.BINARY or kept > EARLY_AUDIO_MAX_BYTES:
            await bridge.close_ws(ws, CloseCode.BAD_METADATA,
                                  "bad metadata: no JSON text frame before the audio")
            return None
        early.append(msg.data)


async def _serve_leg(bridge: Bridge, ws: web.WebSocketResponse, session_id: str, leg_id: str) -> None:
    early: list[bytes] = []
    first = await _receive_metadata(bridge, ws, early)
    if first is None:
        return
    try:
        meta = parse_metadata(first.data, session_id, leg_id)
    except MetadataError as exc:
        await bridge.close_ws(ws, CloseCode.BAD_METADATA, f"bad metadata: {exc}")
        return
    info = await asyncio.to_thread(load_session, bridge.store, session_id)
    if info is None:
        await bridge.close_ws(ws, CloseCode.UNKNOWN_SESSION, f"unknown session {session_id}")
        return
    if not info.is_open:
        await bridge.close_ws(ws, CloseCode.SESSION_ENDED, f"session {session_id} has ended")
        return

    session = bridge.sessions.get(session_id)
    if session is None:
        session = BridgeSession(
            info, bridge.store, bridge.runner, bridge.config, bridge.metrics, bridge._remove_session
        )
        bridge.sessions[session_id] = session
        bridge.metrics.sessions.set(len(bridge.sessions))
    cfg = bridge.config
    leg = LegStream(
        leg_id=leg_id,
        role=meta.role,
        sample_rate=meta.sample_rate,
        ws=ws,
        segmenter=SpeechSegmenter(
            meta.sample_rate,
            cfg.vad_aggressiveness,
            cfg.vad_silence_ms,
            cfg.vad_min_speech_ms,
            cfg.vad_max_utterance_ms,
            cfg.vad_energy_floor_dbfs,
            cfg.vad_engine,
            cfg.vad_speculate_ms,
        ),
        max_frames=cfg.leg_queue_frames,
        metrics=bridge.metrics,
        call_uuid=meta.call_uuid,
    )
    log.info(
        _record(
            "leg_connected",
            session_id=session_id,
            leg_id=leg_id,
            role=meta.role,
            sample_rate=meta.sample_rate,
            call_uuid=meta.call_uuid,
        )
    )
    replaced = session.attach(leg)
    if replaced is not None:
        await bridge.close_ws(replaced.ws, CloseCode.REPLACED, f"leg {leg_id} connected again")
    bridge.metrics.legs.inc()
    try:
        await _receive_audio(bridge, session, leg, early)
    finally:
        bridge.metrics.legs.dec()
        await session.detach(leg)
        log.info(_record("leg_disconnected", session_id=session_id, leg_id=leg_id, role=meta.role))


async def _receive_audio(bridge: Bridge, session: BridgeSession, leg: LegStream,
                         early: list[bytes]) -> None:
    ws, frame = leg.ws, frame_bytes(leg.sample_rate)
    max_bytes = frame * MAX_FRAME_MS // 20

    async def take(data: bytes) -> bool:
        size = len(data)
        if size == 0 or size % frame or size > max_bytes:
            await bridge.close_ws(
                ws,
                CloseCode.BAD_FRAME,
                f"malformed audio frame: {size} bytes is not a multiple of {frame} "
                f"(20 ms at {leg.sample_rate} Hz) up to {MAX_FRAME_MS} ms",
            )
            return False
        leg.enqueue(data, time.time())
        if not session.audio_seen or time.monotonic() - session.last_mark >= MARK_AUDIO_EVERY_S:
            session.last_mark = time.monotonic()
            bridge.spawn(bridge.mark_audio(session))
        return True

    for data in early:
        if not await take(data):
            return
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            if not await take(msg.data):
                return
        elif msg.type == WSMsgType.TEXT:
            await bridge.close_ws(ws, CloseCode.BAD_FRAME, "unexpected text frame after metadata")
            return
        elif msg.type == WSMsgType.ERROR:
            return


async def healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    return web.json_response(
        {
            "status": "ok",
            "engine": bridge.runner.engine.name,
            "engine_ready": bridge.engine_ready,
            "engine_error": bridge.engine_error,
            "sessions": len(bridge.sessions),
            "legs": sum(len(s.legs) for s in bridge.sessions.values()),
        }
    )


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    settings: Settings, store: Store, engine: Engine, config: BridgeConfig | None = None
) -> web.Application:
    """The bridge app. ``engine`` is warmed up (models loaded) in a worker thread at startup."""
    del settings  # host/port are the runner's business; kept for the common create_app shape
    config = config or BridgeConfig.from_env()
    metrics = BridgeMetrics()
    bridge = Bridge(store, engine, config, metrics)
    app = web.Application()
    app[BRIDGE_KEY] = bridge
    app[METRICS_KEY] = metrics
    app.router.add_get("/v1/media/{session_id}/{leg_id}", media_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)

    async def warm_up(app: web.Application) -> None:
        async def load() -> None:
            try:
                await bridge.runner.warm_up()
                bridge.engine_ready = True
            except Exception as exc:
                bridge.engine_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("engine warm-up failed; utterances will retry loading")

        bridge.warm_up_task = asyncio.create_task(load())

    async def on_shutdown(app: web.Application) -> None:
        await bridge.shutdown()

    app.on_startup.append(warm_up)
    app.on_shutdown.append(on_shutdown)
    return app


def cli_run(args: argparse.Namespace, settings: Settings) -> int:
    """``kallglot bridge``: serve on settings.bridge_host:bridge_port with the configured engine."""
    del args
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = BridgeConfig.from_env()
    except BridgeConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        engine = build_engine(config)
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    store = open_store(settings.db_path)
    app = create_app(settings, store, engine, config)
    web.run_app(app, host=settings.bridge_host, port=settings.bridge_port, print=None)
    store.close()
    return 0

"""Test helpers: session rows, espeak-ng speech, a real bridge server on 127.0.0.1:0, and a
client that behaves like mod_audio_stream (metadata text frame, then 20 ms L16 frames)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import numpy as np
from aiohttp import web

from controller.ids import new_id
from controller.settings import Settings
from controller.store import Store
from media_bridge.audio import parse_wav, resample
from media_bridge.config import BridgeConfig
from media_bridge.engines.base import Engine
from media_bridge.server import BRIDGE_KEY, Bridge, create_app


def make_session(
    store: Store,
    mode: str = "bidirectional_translation",
    source: str = "en",
    target: str = "es",
    status: str = "connecting",
) -> str:
    now = time.time()
    org_id = new_id("org")
    session_id = new_id("sess")
    with store.transaction() as conn:
        conn.execute("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)", (org_id, "t", now))
        conn.execute(
            "INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,"
            " status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'eu', 'sip', ?, ?, ?)",
            (session_id, org_id, mode, source, target, status, now, now),
        )
    return session_id


def speak(text: str, language: str, rate: int = 16000) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", language, "--stdout", text], capture_output=True, check=True
    ).stdout
    samples, wav_rate = parse_wav(wav)
    return resample(samples, wav_rate, rate)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def frames_of(samples: np.ndarray, rate: int = 16000) -> list[bytes]:
    size = rate // 50
    padded = np.concatenate([samples, np.zeros((-samples.size) % size, dtype=np.int16)])
    return [padded[i : i + size].astype("<i2").tobytes() for i in range(0, padded.size, size)]


@dataclass
class RunningBridge:
    url: str
    app: web.Application

    @property
    def bridge(self) -> Bridge:
        return self.app[BRIDGE_KEY]


@asynccontextmanager
async def running_bridge(store: Store, engine: Engine, config: BridgeConfig) -> AsyncIterator[RunningBridge]:
    app = create_app(Settings(), store, engine, config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield RunningBridge(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


async def connect_leg(
    http: aiohttp.ClientSession,
    url: str,
    session_id: str,
    leg_id: str,
    role: str,
    rate: int = 16000,
    metadata: object | None = None,
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{url}/v1/media/{session_id}/{leg_id}")
    meta = (
        metadata
        if metadata is not None
        else {
            "session_id": session_id,
            "leg_id": leg_id,
            "role": role,
            "sample_rate": rate,
            "call_uuid": f"uuid-{leg_id}",
            "peer_leg_id": None,
        }
    )
    await ws.send_str(meta if isinstance(meta, str) else json.dumps(meta, separators=(",", ":")))
    return ws


async def send_audio(ws: aiohttp.ClientWebSocketResponse, samples: np.ndarray, rate: int = 16000) -> None:
    for i, frame in enumerate(frames_of(samples, rate)):
        await ws.send_bytes(frame)
        if i % 25 == 24:
            await asyncio.sleep(0.005)  # faster than real time, but let the server breathe


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r}"
    return json.loads(msg.data)


def decode_stream_audio(message: dict) -> tuple[np.ndarray, int]:
    assert message["type"] == "streamAudio"
    data = message["data"]
    assert data["audioDataType"] == "raw"
    return np.frombuffer(base64.b64decode(data["audioData"]), dtype="<i2"), int(data["sampleRate"])


async def wait_for(predicate, timeout: float, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)

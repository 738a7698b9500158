"""The whole call path for integration tests: store → rendered FreeSWITCH config → the FreeSWITCH
double (tests/fsdouble) → the real ``kallglot controller`` subprocess → a websocket bridge."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from controller.fsconfig.service import FsConfigService
from controller.settings import Settings
from controller.store import Store
from tests.calls.controller_proc import ControllerProcess
from tests.calls.factories import sip_username
from tests.fsdouble import FreeSwitchDouble

SIP_DOMAIN = "sip.test.example"


def set_sip_password(store: Store, org_id: str, password: str) -> str:
    """Store the a1-hash FreeSWITCH's directory uses (what POST /v1/sip/credentials does)."""
    user = sip_username(store, org_id)
    a1 = hashlib.md5(f"{user}:{SIP_DOMAIN}:{password}".encode()).hexdigest()  # SIP digest's A1
    store.conn.execute("UPDATE sip_settings SET a1_hash = ?, password_set_at = 1 WHERE org_id = ?",
                       (a1, org_id))
    return user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BridgeLeg:
    path: str
    metadata: dict[str, Any] | None = None
    frames: int = 0
    pcm: bytearray = field(default_factory=bytearray)
    ws: web.WebSocketResponse | None = None

    def rms(self) -> float:
        samples = np.frombuffer(bytes(self.pcm[: len(self.pcm) // 2 * 2]), dtype="<i2").astype(np.float64)
        return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


class TestBridge:
    """A small mod_audio_stream websocket server: records each leg, can send it streamAudio."""

    __test__ = False

    def __init__(self) -> None:
        self.legs: dict[str, BridgeLeg] = {}
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("bridge did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v1/media/{session_id}/{leg_id}", self._handle)
        self._runner = web.AppRunner(app)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        leg = self.legs.setdefault(request.match_info["leg_id"], BridgeLeg(request.path))
        leg.ws = ws
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and leg.metadata is None:
                leg.metadata = json.loads(msg.data)
            elif msg.type == WSMsgType.BINARY:
                leg.frames += 1
                leg.pcm.extend(msg.data)
        return ws

    def send_audio(self, leg_id: str, pcm: bytes, rate: int = 16000) -> None:
        message = {"type": "streamAudio", "data": {"audioDataType": "raw", "sampleRate": rate,
                                                     "audioData": base64.b64encode(pcm).decode()}}
        self.send_text(leg_id, json.dumps(message))

    def send_text(self, leg_id: str, text: str) -> None:
        ws = self.legs[leg_id].ws
        assert ws is not None
        asyncio.run_coroutine_threadsafe(ws.send_str(text), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class CallStack:
    """Render the store's config, start the controller and the double against it."""

    def __init__(self, tmp: Path, db: Path, store: Store, *, bridge_url: str = "ws://127.0.0.1:9",
                 extra_env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.db = db
        self.store = store
        self.conf = tmp / "conf"
        FsConfigService(store, Settings(sip_domain=SIP_DOMAIN, db_path=db)).render_to(self.conf)
        self.esl_port = free_port()
        self.bridge_url = bridge_url
        self.extra_env = extra_env
        self.controller = self.start_controller()
        self.fs = FreeSwitchDouble(self.conf, controller_addr=self.controller_addr,
                                   esl_port=self.esl_port).start()

    @property
    def controller_addr(self) -> str:
        host, port = self.controller.address
        return f"{host}:{port}"

    def start_controller(self, port: int | None = None) -> ControllerProcess:
        env = dict(self.extra_env or {})
        if port is not None:
            env["KALLGLOT_CONTROLLER_PORT"] = str(port)
        return ControllerProcess(self.db, self.esl_port, bridge_url=self.bridge_url, extra_env=env)

    def call(self, destination: str, user: str, password: str, **spec: Any) -> Any:
        spec.setdefault("domain", SIP_DOMAIN)
        return self.fs.place_call(destination, user=user, password=password, **spec)

    def stop(self) -> int:
        self.fs.stop()
        return self.controller.stop()

"""A scripted websocket server (aiohttp, own thread) playing the fixture's bridge side."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.conftest import FIXTURES_DIR


def fixture_texts_out(name: str) -> list[str]:
    path = FIXTURES_DIR / "ws" / f"{name}.ws.jsonl"
    return [d["text"] for d in map(json.loads, path.read_text().splitlines()) if d["kind"] == "text_out"]


@dataclass
class ScriptedWsServer:
    """``send_after`` frames: send ``texts`` after that many binary frames; ``close_after``: close
    with (code, reason) after that many frames."""

    texts: list[str] = field(default_factory=list)
    send_after: int = 3
    close_after: int | None = None
    close_code: int = 4000
    close_reason: str = "bye from server"
    handshakes: list[list[tuple[str, str]]] = field(default_factory=list)
    texts_in: list[str] = field(default_factory=list)
    frames_in: list[bytes] = field(default_factory=list)
    close_in: list[tuple[int | None, str]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: Any = None

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        self.handshakes.append(list(request.headers.items()))
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        frames = 0
        sent = False
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                break
            if msg.type == WSMsgType.TEXT:
                self.texts_in.append(msg.data)
            elif msg.type == WSMsgType.BINARY:
                frames += 1
                self.frames_in.append(msg.data)
                if not sent and frames >= self.send_after:
                    sent = True
                    for t in self.texts:
                        await ws.send_str(t)
                if self.close_after is not None and frames >= self.close_after:
                    await ws.close(code=self.close_code, message=self.close_reason.encode())
                    break
            elif msg.type == WSMsgType.CLOSE:
                self.close_in.append((msg.data, msg.extra))
                await ws.close()
                break
        return ws

    def start(self) -> ScriptedWsServer:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/{tail:.*}", self._handler)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

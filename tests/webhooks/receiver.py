"""A real webhook receiver (aiohttp on 127.0.0.1) in a background thread, and a bare TCP
listener that only counts connections (to prove a refused delivery never connected)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controller.webhooks.signing import verify_signature


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


async def _cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Receiver:
    """Answers each request by the next entry of ``script``: an int is a status, a float is a
    delay in seconds before a 200 (a request the client times out on, or is killed during).
    When the script is exhausted, 200."""

    def __init__(self, script: list[int | float] | None = None, host: str = "127.0.0.1") -> None:
        self.script = list(script or [])
        self.requests: list[Received] = []
        self.answered: list[int] = []
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2)
        self._run(self.runner.setup())
        self._run(web.TCPSite(self.runner, host, 0).start())
        self.port = self.runner.addresses[0][1]
        self.host = host

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hooks"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests.append(Received(dict(request.headers), body, time.time()))
            step = self.script.pop(0) if self.script else 200
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = 200
        with self._lock:
            self.answered.append(step)
        return web.Response(status=step, text="ok")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} webhook requests, got {len(self.requests)}")

    def verified(self, secret: str) -> bool:
        return all(
            verify_signature(secret, r.headers["Kallglot-Signature"], r.body) for r in self.requests
        )

    def stop(self) -> None:
        self._run(self.runner.cleanup())
        self._run(_cancel_others())  # handlers still holding a request (a client that was killed)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class ConnectionCounter:
    """A listening TCP socket that accepts and counts connections, never answering."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()

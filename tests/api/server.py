"""A real API server on 127.0.0.1 (port 0) in a background thread, and a small HTTP client."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from aiohttp import web

from controller.api.server import create_app
from controller.appkeys import CallControl
from controller.domain import api_keys, organizations
from controller.settings import Settings
from controller.store import Store

SIP_DOMAIN = "sip.test.example"


@dataclass
class Org:
    id: str
    key: str


@dataclass
class ApiServer:
    base: str
    store: Store
    settings: Settings
    app: web.Application
    notified: list[str] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    def org(self, name: str = "Acme") -> Org:
        org = organizations.create_organization(self.store, name)
        return Org(org.id, api_keys.create_key(self.store, org.id).secret)

    def call(
        self,
        method: str,
        path: str,
        org: Org | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if org is not None:
            hdrs.setdefault("Authorization", f"Bearer {org.key}")
        return self.http.request(method, self.base + path, json=body, headers=hdrs, timeout=30, **kwargs)


class RunningServer:
    """Owns the event loop thread; ``stop()`` cleans up the runner (and the janitor task)."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)
        self._run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._run(site.start())
        self.port = self.runner.addresses[0][1]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. a janitor sweep)."""
        return self._run(coro)

    def stop(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def start_api(store: Store, *, call_control: CallControl | None = None) -> tuple[ApiServer, RunningServer]:
    settings = Settings(sip_domain=SIP_DOMAIN, db_path=store.path)
    app = create_app(settings, store, call_control=call_control)
    server = ApiServer(base="", store=store, settings=settings, app=app)
    from controller.appkeys import SETTINGS_LISTENERS_KEY

    app[SETTINGS_LISTENERS_KEY].append(server.notified.append)
    running = RunningServer(app)
    server.base = f"http://127.0.0.1:{running.port}"
    return server, running

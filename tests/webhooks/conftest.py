from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from controller.api.server import create_app
from controller.domain import api_keys, organizations
from controller.settings import Settings
from controller.store import Store
from controller.webhooks import endpoints
from controller.webhooks.requests import WebhookEndpointCreate
from controller.webhooks.worker import DeliveryWorker
from tests.api.server import ApiServer, RunningServer
from tests.webhooks.receiver import Receiver

# Short schedule and timeout so retries take fractions of a second.
FAST = Settings(
    sip_domain="sip.test.example",
    webhook_allow_private_targets=True,
    webhook_retry_schedule="0,0.1,0.1,0.1",
    webhook_timeout_s=0.5,
    webhook_poll_interval_s=0.05,
)


def fast_settings(store: Store, **overrides: object) -> Settings:
    return replace(FAST, db_path=store.path, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def new_org(store: Store) -> tuple[str, str]:
    org = organizations.create_organization(store, "Acme")
    return org.id, api_keys.create_key(store, org.id).secret


def add_endpoint(
    store: Store, org_id: str, url: str, events: list[str] | None = None
) -> endpoints.WebhookEndpoint:
    body = WebhookEndpointCreate(url=url, enabled_events=events or ["session.created"])
    return endpoints.create_endpoint(store, org_id, body, allow_private=True)


def deliver_until(store: Store, settings: Settings, done: Callable[[], bool], timeout: float = 10.0,
                  **worker_kwargs: object) -> None:
    """Run a worker in this thread until ``done()`` (checked between rounds)."""

    async def go() -> None:
        async with DeliveryWorker(store, settings, **worker_kwargs) as worker:  # type: ignore[arg-type]
            deadline = time.monotonic() + timeout
            while not done():
                if time.monotonic() > deadline:
                    raise AssertionError("deliveries did not finish in time")
                await worker.run_once()
                await asyncio.sleep(0.02)

    asyncio.run(go())


def delivery_rows(store: Store) -> list[dict[str, object]]:
    return [dict(r) for r in store.query("SELECT * FROM webhook_deliveries ORDER BY created_at")]


def all_finished(store: Store) -> Callable[[], bool]:
    return lambda: all(r["status"] != "pending" for r in delivery_rows(store))


def start_api_with(store: Store, settings: Settings) -> tuple[ApiServer, RunningServer]:
    """A real API (its own webhook worker included) with these settings, on 127.0.0.1."""
    app = create_app(settings, store)
    running = RunningServer(app)
    api = ApiServer(base=f"http://127.0.0.1:{running.port}", store=store, settings=settings, app=app)
    return api, running


@pytest.fixture
def strict_api(store: Store) -> Iterator[ApiServer]:
    """The API with the install's default policy: private targets refused."""
    api, running = start_api_with(store, fast_settings(store, webhook_allow_private_targets=False))
    yield api
    running.stop()


@pytest.fixture
def open_api(store: Store) -> Iterator[ApiServer]:
    """The API of an install that allows private targets (receivers on 127.0.0.1)."""
    api, running = start_api_with(store, fast_settings(store))
    yield api
    running.stop()

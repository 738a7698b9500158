from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.store import Store
from tests.api.server import ApiServer, RunningServer, start_api
from tests.portal.client import Portal


@pytest.fixture
def running(store: Store) -> Iterator[tuple[ApiServer, RunningServer]]:
    api, server = start_api(store)
    yield api, server
    server.stop()


@pytest.fixture
def api(running: tuple[ApiServer, RunningServer]) -> ApiServer:
    return running[0]


@pytest.fixture
def portal(api: ApiServer) -> Portal:
    return Portal(api)

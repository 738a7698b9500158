from __future__ import annotations

import pytest

from tests.api.conftest import api, running  # noqa: F401 -- the same running API server as tests/api
from tests.api.server import ApiServer
from tests.portal.client import Portal


@pytest.fixture
def portal(api: ApiServer) -> Portal:  # noqa: F811
    return Portal(api)

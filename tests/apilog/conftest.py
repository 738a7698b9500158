from tests.webhooks.conftest import open_api, receiver  # noqa: F401 -- shared fixtures

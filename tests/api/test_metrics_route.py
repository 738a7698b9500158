"""GET /metrics of the API process: public, the default registry, request counters by route."""

from __future__ import annotations

from tests.api.server import ApiServer
from tests.scrape import scrape

REQUESTS = "kallglot_api_requests_total"


def test_metrics_is_public_and_counts_requests_by_route_template(api: ApiServer) -> None:
    org = api.org()
    before = scrape(api.base + "/metrics")
    assert api.call("GET", "/v1/sessions/sess_doesnotexist0001", org).status_code == 404
    assert api.call("GET", "/v1/sessions").status_code == 401  # no key
    assert api.call("GET", "/v1/sessions", org).status_code == 200
    assert api.call("GET", "/no/such/path").status_code == 404

    raw = api.http.get(api.base + "/metrics", timeout=10)  # no Authorization header
    assert raw.status_code == 200
    assert raw.headers["Content-Type"].startswith("text/plain; version=")
    after = scrape(api.base + "/metrics")

    def delta(**labels: str) -> float:
        return after.value(REQUESTS, **labels) - before.value(REQUESTS, **labels)

    assert delta(method="GET", route="/v1/sessions/{id}", status="404") == 1
    assert delta(method="GET", route="/v1/sessions", status="401") == 1
    assert delta(method="GET", route="/v1/sessions", status="200") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    # Routes are templates, never raw paths with ids.
    assert not any("sess_" in route or "no/such" in route
                   for route in after.label_values(REQUESTS, "route"))
    assert after.has("kallglot_api_request_duration_seconds_count", method="GET", route="/v1/sessions/{id}")
    # The webhook engineer's delivery counter lives on the same (default) registry.
    assert after.has("kallglot_webhook_deliveries_total", outcome="failed")

"""The SIP operations metrics (docs/operations.md) through the whole edge, on the double and on a
real FreeSWITCH: the controller's and the API's /metrics after real SIP calls."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.conftest import Edge
from tests.scrape import Scrape, scrape


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_checklist_metrics_after_real_calls(edge: Edge) -> None:
    ctl_url = f"http://127.0.0.1:{edge.stack.controller_metrics_port}/metrics"
    api_url = f"http://127.0.0.1:{edge.stack.api_port}/metrics"
    org = edge.acme.org_id
    edge.configure(max_concurrent_calls=1)
    before = scrape(ctl_url)

    def delta(now: Scrape, name: str, **labels: str) -> float:
        return now.value(name, **labels) - before.value(name, **labels)

    wrong = edge.stack.place_call(edge.new_session(), **edge.acme.credentials("not-the-password"))
    assert (wrong.challenged, wrong.code) == (True, 403)
    assert edge.stack.place_call(edge.new_session()).code == 407
    first_session = edge.new_session()
    first = edge.stack.place_call(first_session, **edge.acme.credentials())
    assert first.code == 200
    try:
        during = scrape(ctl_url)
        assert during.value("kallglot_org_live_calls", org=org) == 1
        assert during.value("kallglot_org_call_cap", org=org) == 1
        over = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
        assert over.code == 503
    finally:
        first.hangup()
        assert first.wait_ended(10)
    edge.wait_session_status(first_session, "ended")
    _wait(lambda: delta(scrape(ctl_url), "kallglot_sip_auth_challenges_total", method="INVITE") >= 4,
          "sofia's four challenges")
    after = scrape(ctl_url)
    assert after.value("kallglot_org_live_calls", org=org) == 0
    assert delta(after, "kallglot_calls_admitted_total", org=org) == 1
    assert delta(after, "kallglot_calls_refused_total", org=org, sip_code="503") == 1
    assert delta(after, "kallglot_call_setup_seconds_count", direction="inbound") == 1
    assert delta(after, "kallglot_sip_auth_challenges_total", method="INVITE") == 4
    assert delta(after, "kallglot_sip_auth_failures_total", method="INVITE", org=org) == 1
    api = scrape(api_url)
    assert api.value("kallglot_api_requests_total", method="POST", route="/v1/sessions", status="201") >= 4
    assert api.has("kallglot_webhook_deliveries_total", outcome="delivered")

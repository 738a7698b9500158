"""The controller's /metrics, scraped over HTTP from the real ``kallglot controller`` after calls
through the FreeSWITCH double (rendered config, real ESL, sofia's auth events as captured)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.store import Store, open_store
from tests.calls.factories import live_leg_count, make_org, make_session
from tests.calls.stack import CallStack, set_sip_password
from tests.scrape import Scrape, scrape

PASSWORD = "correct-horse-9"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def store_db(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    db = tmp_path / "k.db"
    store = open_store(db)
    yield store, db
    store.close()


def test_controller_metrics_after_calls_through_the_double(tmp_path: Path,
                                                           store_db: tuple[Store, Path]) -> None:
    store, db = store_db
    acme = make_org(store, cap=1)
    tls_only = make_org(store, transports=("tls",))
    other = make_org(store)
    users = {org: set_sip_password(store, org, PASSWORD) for org in (acme, tls_only, other)}
    first, second = make_session(store, acme), make_session(store, acme)
    others_session = make_session(store, other)
    # The default bridge URL is refused: every stream fails and is retried (3 retries).
    stack = CallStack(tmp_path, db, store)
    try:
        assert stack.controller.metrics_port
        url = f"http://127.0.0.1:{stack.controller.metrics_port}/metrics"
        # The controller's inbound connection subscribes to sofia's auth events once connected.
        wait_until(lambda: any("sofia::register_failure" in lst.subclasses for lst in stack.fs._listeners),
                   "the controller's sofia::… subscription")

        answered = stack.call(first, users[acme], PASSWORD)
        assert answered.code == 200
        wait_until(lambda: scrape(url).value("kallglot_stream_retries_total") == 3, "three stream retries")
        during = scrape(url)
        assert during.value("kallglot_org_live_calls", org=acme) == 1
        assert during.value("kallglot_org_call_cap", org=acme) == 1
        assert during.value("kallglot_org_live_calls", org=other) == 0
        assert during.value("kallglot_org_call_cap", org=other) == 10

        outcomes = [
            (stack.call(second, users[acme], PASSWORD), 503),  # over the cap of 1
            (stack.call(others_session, users[acme], PASSWORD), 404),  # not acme's session
            (stack.call(make_session(store, tls_only), users[tls_only], PASSWORD), 403),  # udp, tls only
            (stack.call(first, users[acme], "wrong-password"), 403),  # FreeSWITCH's digest check
            # Neither the From user nor the dialled user is ours: the failure's org is "unknown".
            (stack.call("nosuchdest", "nosuchuser", "whatever"), 403),
            (stack.call(first, None, None), 407),  # no credentials: the challenge stays final
        ]
        assert [o.code for o, _ in outcomes] == [code for _, code in outcomes]

        answered.hangup()
        assert answered.wait_ended(10)
        wait_until(lambda: live_leg_count(store) == 0, "the leg ended")
        wait_until(lambda: scrape(url).value("kallglot_sip_auth_failures_total", method="INVITE",
                                             org="unknown") == 1, "the last auth failure counted")
        after = scrape(url)
    finally:
        stack.stop()

    _assert_call_counts(after, acme=acme, tls_only=tls_only)
    assert after.value("kallglot_org_live_calls", org=acme) == 0
    assert after.value("kallglot_org_call_cap", org=acme) == 1
    # sofia challenged every INVITE (7) and refused two sets of credentials with 403.
    assert after.value("kallglot_sip_auth_challenges_total", method="INVITE") == 7
    assert after.value("kallglot_sip_auth_failures_total", method="INVITE", org=acme) == 1
    assert after.value("kallglot_sip_auth_failures_total", method="INVITE", org="unknown") == 1
    # A bridge that refuses: the first attempt and three retries each failed.
    assert after.value("kallglot_stream_failures_total", reason="bridge_refused") == 4
    assert after.value("kallglot_stream_retries_total") == 3
    # No SIP username or password ever becomes a label value.
    assert all(users[o] not in after.text for o in users) and PASSWORD not in after.text


def _assert_call_counts(after: Scrape, *, acme: str, tls_only: str) -> None:
    assert after.value("kallglot_calls_admitted_total", org=acme) == 1
    assert after.value("kallglot_calls_refused_total", org=acme, sip_code="503") == 1
    assert after.value("kallglot_calls_refused_total", org=acme, sip_code="404") == 1
    assert after.value("kallglot_calls_refused_total", org=tls_only, sip_code="403") == 1
    assert after.label_values("kallglot_calls_refused_total", "sip_code") == {"403", "404", "503"}
    # One answered call, one setup latency observation.
    assert after.value("kallglot_call_setup_seconds_count", direction="inbound") == 1
    assert after.value("kallglot_call_setup_seconds_bucket", direction="inbound", le="+Inf") == 1

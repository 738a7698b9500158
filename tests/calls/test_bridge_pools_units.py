"""Bridge pools per region: KALLGLOT_BRIDGE_POOLS parsing, the choice rule, the health probe, the
session's stored bridge (both stores), and a call refused 503 when its region has no healthy bridge."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from controller.bridges.health import HealthChecker, health_url, probe_bridge
from controller.bridges.pool import BridgePool, ProbeResult
from controller.bridges.routing import BridgeRouter
from controller.calls.call_handler import CallConfig, CallSession
from controller.metrics.registry import REGISTRY, org_label
from controller.settings import Settings, SettingsError, parse_bridge_pools
from controller.store import Store
from tests.calls.factories import live_leg_count, make_org, make_session, sip_channel, sip_username
from tests.calls.fake_socket import FakeCallSocket

EU1, EU2, US1 = "ws://eu-1.example:8765", "ws://eu-2.example:8765", "wss://us-1.example/bridge"


# --- settings ---------------------------------------------------------------------------------


def test_pools_parse_regions_in_order_and_drop_trailing_slashes() -> None:
    raw = f" eu={EU1}, {EU2}/ ; us={US1} ;"
    assert parse_bridge_pools(raw) == {"eu": (EU1, EU2), "us": (US1,)}
    assert parse_bridge_pools("") == {}
    settings = Settings.from_env({"KALLGLOT_BRIDGE_POOLS": raw, "KALLGLOT_BRIDGE_HEALTH_INTERVAL_S": "2"})
    assert settings.bridge_pools == raw and settings.bridge_health_interval_s == 2.0


@pytest.mark.parametrize("raw, words", [
    ("eu", "<region>=<ws url>"),
    ("mars=ws://a:1", "region of eu, us, ap"),
    ("eu=", "lists no bridge URL"),
    ("eu=http://a:1", "not a ws:// or wss:// URL"),
    ("eu=ws://bridge_1:8765", "only letters, digits"),  # mod_audio_stream refuses '_' in the host
    ("eu=ws://a:99999", "not a ws:// or wss:// URL"),
    ("eu=ws://a:1;eu=ws://b:1", "names region eu twice"),
    (";;", "must be <region>="),
])
def test_bad_pools_name_the_variable(raw: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KALLGLOT_BRIDGE_POOLS": raw})
    assert "KALLGLOT_BRIDGE_POOLS" in str(err.value) and words in str(err.value)


def test_bad_health_interval_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="KALLGLOT_BRIDGE_HEALTH_INTERVAL_S"):
        Settings.from_env({"KALLGLOT_BRIDGE_HEALTH_INTERVAL_S": "0"})


# --- the choice rule ----------------------------------------------------------------------------


def _pool(**health: tuple[bool, int]) -> BridgePool:
    pool = BridgePool({"eu": (EU1, EU2), "us": (US1,)})
    names = {"eu1": EU1, "eu2": EU2, "us1": US1}
    for name, (healthy, legs) in health.items():
        pool.record_probe(names[name], ProbeResult(healthy, legs))
    return pool


def test_least_loaded_healthy_bridge_of_the_region_wins() -> None:
    pool = _pool(eu1=(True, 7), eu2=(True, 3), us1=(True, 0))
    assert pool.choose("eu") == EU2
    assert pool.choose("us") == US1
    assert pool.choose("ap") is None  # not configured


def test_unhealthy_and_never_probed_bridges_are_skipped() -> None:
    pool = _pool(eu1=(True, 50), eu2=(False, 0))
    assert [pool.choose("eu") for _ in range(3)] == [EU1] * 3
    assert _pool(eu1=(True, 1)).choose("eu") == EU1  # eu2 has no probe yet
    assert _pool(eu1=(False, 0), eu2=(False, 0)).choose("eu") is None


def test_equal_loads_take_turns() -> None:
    pool = _pool(eu1=(True, 4), eu2=(True, 4))
    assert [pool.choose("eu") for _ in range(4)] == [EU1, EU2, EU1, EU2]


def test_legs_sent_since_the_probe_count_as_load_until_the_next_probe() -> None:
    pool = _pool(eu1=(True, 0), eu2=(True, 1))
    first = pool.choose("eu")
    pool.note_sent(first)  # eu1: 0 + 1
    pool.note_sent(first)  # eu1: 2 > eu2: 1
    assert first == EU1 and pool.choose("eu") == EU2
    pool.record_probe(EU1, ProbeResult(True, 0))  # the probe's figure replaces the guess
    assert pool.choose("eu") == EU1


def test_health_change_is_reported_once() -> None:
    pool = _pool()
    assert pool.record_probe(EU1, ProbeResult(True, 0)) is True
    assert pool.record_probe(EU1, ProbeResult(True, 2)) is False
    assert pool.record_probe(EU1, ProbeResult(False, error="refused")) is True
    assert pool.describe("eu")[0] == {"url": EU1, "healthy": False, "legs": 2, "error": "refused"}


def test_checker_probes_every_bridge_and_survives_a_crashing_probe() -> None:
    pool = _pool()

    def probe(url: str, timeout: float) -> ProbeResult:
        if url == EU2:
            raise RuntimeError("boom")
        return ProbeResult(True, 5)

    checker = HealthChecker(pool, 5.0, probe=probe)
    checker.check_once()
    assert pool.is_healthy(EU1) and pool.is_healthy(US1) and not pool.is_healthy(EU2)
    assert pool.states[EU1].reported_legs == 5 and checker.rounds == 1


# --- the health probe (real HTTP) ------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b'{"status":"ok","legs":3,"sessions":2}')
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        code, body = type(self).answer
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {"paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_health_url_follows_the_stream_url() -> None:
    assert health_url("ws://b:8765") == "http://b:8765/healthz"
    assert health_url("wss://edge.example/bridge-1/") == "https://edge.example/bridge-1/healthz"


def test_probe_reads_the_bridges_legs(health_server: tuple[int, type[_Health]]) -> None:
    port, handler = health_server
    assert probe_bridge(f"ws://127.0.0.1:{port}", 2.0) == ProbeResult(True, 3)
    assert handler.paths == ["/healthz"]
    handler.answer = (503, b'{"status":"down"}')
    result = probe_bridge(f"ws://127.0.0.1:{port}", 2.0)
    assert not result.healthy and "503" in (result.error or "")
    handler.answer = (200, b'{"status":"starting"}')
    assert not probe_bridge(f"ws://127.0.0.1:{port}", 2.0).healthy
    handler.answer = (200, b"not json")
    assert not probe_bridge(f"ws://127.0.0.1:{port}", 2.0).healthy


def test_probe_of_a_closed_port_is_unhealthy(health_server: tuple[int, type[_Health]]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = probe_bridge(f"ws://127.0.0.1:{port}", 1.0)
    assert not result.healthy and result.error


# --- the session's bridge, in the store --------------------------------------------------------------


def _session(store: Store, org: str, region: str) -> str:
    sid = make_session(store, org)
    with store.transaction() as conn:
        conn.execute("UPDATE sessions SET region = ? WHERE id = ?", (region, sid))
    return sid


def _leg(store: Store, org: str, sid: str, leg_id: str, status: str = "answered") -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status, created_at)"
            " VALUES (?, ?, ?, ?, 'customer', 'inbound', ?, 0)", (leg_id, sid, org, f"uuid-{leg_id}", status))


def _stored(store: Store, sid: str) -> str | None:
    row = store.query_one("SELECT bridge_url FROM sessions WHERE id = ?", (sid,))
    return row["bridge_url"] if row else None


def test_both_legs_of_a_session_get_the_bridge_the_first_chose(any_store: Store) -> None:
    store = any_store
    org = make_org(store)
    pool = _pool(eu1=(True, 0), eu2=(True, 0), us1=(True, 0))
    router = BridgeRouter(store, pool)
    eu_a, eu_b, us = _session(store, org, "eu"), _session(store, org, "eu"), _session(store, org, "us")
    first = router.route(eu_a, "leg_1")
    assert (first.region, first.url) == ("eu", EU1) and _stored(store, eu_a) == EU1
    # EU1 now carries a leg more than EU2, but the second leg must meet the first one.
    assert router.route(eu_a, "leg_2").url == EU1
    assert router.route(eu_b, "leg_3").url == EU2  # another session: least loaded
    assert router.route(us, "leg_4").url == US1 and _stored(store, us) == US1


def test_a_dead_stored_bridge_is_replaced_unless_the_other_leg_streams_to_it(any_store: Store) -> None:
    store = any_store
    org = make_org(store)
    pool = _pool(eu1=(True, 0), eu2=(True, 9))
    router = BridgeRouter(store, pool)
    sid = _session(store, org, "eu")
    assert router.route(sid, "leg_1").url == EU1
    pool.record_probe(EU1, ProbeResult(False, error="timed out"))
    _leg(store, org, sid, "leg_1", status="streaming")
    # The first leg's stream is up on EU1: it is alive whatever the probe said, and pairing wins.
    assert router.route(sid, "leg_2").url == EU1
    with store.transaction() as conn:
        conn.execute("UPDATE call_legs SET status = 'answered' WHERE id = 'leg_1'")
    # Nobody streams there any more: move the session (the other leg follows on its re-start).
    assert router.route(sid, "leg_2").url == EU2 and _stored(store, sid) == EU2
    assert router.route(sid, "leg_1").url == EU2


def test_no_healthy_bridge_in_the_region_routes_nowhere(any_store: Store) -> None:
    store = any_store
    org = make_org(store)
    router = BridgeRouter(store, _pool(eu1=(True, 0), eu2=(True, 0), us1=(False, 0)))
    sid = _session(store, org, "us")
    route = router.route(sid, "leg_1")
    assert (route.region, route.url) == ("us", None) and _stored(store, sid) is None
    assert router.route(_session(store, org, "ap"), "leg_2").url is None  # no pool for ap


# --- the call ------------------------------------------------------------------------------------------

CONFIG = CallConfig(bridge_url="ws://unused:1", answer_timeout_s=5, reject_timeout_s=2)


def test_call_in_a_region_without_a_healthy_bridge_gets_503_before_answer(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    org = make_org(store, cap=1)
    sid = _session(store, org, "us")
    with store.transaction() as conn:  # an endpoint wanting call.rejected: the outbox keeps it
        conn.execute("INSERT INTO webhook_endpoints (id, org_id, url, enabled_events, secret, created_at,"
                     " updated_at) VALUES ('we_1', ?, 'https://hooks.example.com/k', '[\"call.rejected\"]',"
                     " 'whsec_test', 0, 0)", (org,))
    sock = FakeCallSocket(dict(sip_channel(org, sip_username(store, org), sid).headers))
    router = BridgeRouter(store, _pool(eu1=(True, 0), us1=(False, 0)))
    refused = {"org": org_label(org), "sip_code": "503"}
    before = REGISTRY.get_sample_value("kallglot_calls_refused_total", refused) or 0.0
    with caplog.at_level("WARNING", logger="kallglot.calls.handler"):
        CallSession(sock, store, CONFIG, bridges=router).run()
    assert REGISTRY.get_sample_value("kallglot_calls_refused_total", refused) == before + 1
    assert sock.commands[-1] == "execute respond 503"
    assert "execute answer" not in sock.commands
    assert not any(c.startswith("api uuid_audio_stream") for c in sock.commands)
    assert live_leg_count(store) == 0  # the slot is free again
    leg = store.query_one("SELECT status, sip_code FROM call_legs WHERE session_id = ?", (sid,))
    assert leg is not None and (leg["status"], leg["sip_code"]) == ("failed", 503)
    line = next(json.loads(r.getMessage()) for r in caplog.records
                if "call_refused_no_bridge" in r.getMessage())
    assert line["session_id"] == sid and line["call_uuid"] == sock.uuid and line["region"] == "us"
    [event] = store.query("SELECT body FROM webhook_events WHERE type = 'call.rejected'")
    data = json.loads(event["body"])["data"]
    assert (data["sip_code"], data["session_id"], data["call_uuid"]) == (503, sid, sock.uuid)
    assert data["reason"] == "no healthy bridge in region us"


def test_call_streams_to_its_regions_bridge(store: Store) -> None:
    org = make_org(store)
    sid = _session(store, org, "us")
    sock = FakeCallSocket(dict(sip_channel(org, sip_username(store, org), sid).headers))
    router = BridgeRouter(store, _pool(eu1=(True, 0), us1=(True, 0)))
    thread = threading.Thread(target=CallSession(sock, store, CONFIG, bridges=router).run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if sock.stream_count:
                break
            threading.Event().wait(0.01)
        start = next(c for c in sock.commands if c.startswith("api uuid_audio_stream"))
        assert start.split(" ")[4].startswith(f"{US1}/v1/media/{sid}/leg_")
    finally:
        sock.hangup()
        thread.join(10)

"""Bridge pools end to end: the real ``kallglot controller`` with KALLGLOT_BRIDGE_POOLS, the
FreeSWITCH double streaming with mod_audio_stream, and three real media bridges (the passthrough
engine) on 127.0.0.1 — two for eu, one for us."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from controller.settings import Settings
from controller.store import Store, open_store
from media_bridge.config import BridgeConfig
from media_bridge.engines.passthrough import PassthroughEngine
from media_bridge.server import BRIDGE_KEY, create_app
from tests.calls.factories import live_leg_count, make_org, make_session
from tests.calls.stack import CallStack, free_port, set_sip_password
from tests.calls.test_integration_fsdouble import square_wav, wait_until

PASSWORD = "correct-horse-9"


class RealBridge:
    """``media_bridge``'s app with the passthrough engine on its own thread and event loop."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.store = open_store(db)
        self.loop = asyncio.new_event_loop()
        self.app = create_app(Settings(), self.store, PassthroughEngine(), BridgeConfig(engine="passthrough"))
        self._runner = web.AppRunner(self.app)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._runner.setup())
            self.loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10), "bridge did not start"
        self.stopped = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def legs_of(self, session_id: str) -> int:
        session = self.app[BRIDGE_KEY].sessions.get(session_id)
        return len(session.legs) if session is not None else 0

    def legs(self) -> int:
        return sum(len(s.legs) for s in list(self.app[BRIDGE_KEY].sessions.values()))

    def stop(self) -> None:
        """Close every leg (1001 going away) and stop listening, as a stopped bridge does."""
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.store.close()


@pytest.fixture
def store_db(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    db = tmp_path / "k.db"
    store = open_store(db)
    yield store, db
    store.close()


def _session(store: Store, org: str, region: str) -> str:
    sid = make_session(store, org)
    with store.transaction() as conn:
        conn.execute("UPDATE sessions SET region = ? WHERE id = ?", (region, sid))
    return sid


def _stored_bridge(store: Store, sid: str) -> str | None:
    row = store.query_one("SELECT bridge_url FROM sessions WHERE id = ?", (sid,))
    return row["bridge_url"] if row else None


def test_sessions_stream_to_their_regions_bridges_fail_over_and_refuse_503_without_one(
        tmp_path: Path, store_db: tuple[Store, Path]) -> None:
    store, db = store_db
    org = make_org(store, codecs=("PCMU",))
    user = set_sip_password(store, org, PASSWORD)
    with store.transaction() as conn:  # an endpoint wanting call.rejected: the outbox keeps it
        conn.execute("INSERT INTO webhook_endpoints (id, org_id, url, enabled_events, secret, created_at,"
                     " updated_at) VALUES ('we_1', ?, 'https://hooks.example.com/k', '[\"call.rejected\"]',"
                     " 'whsec_test', 0, 0)", (org,))
    bridges = [RealBridge(db) for _ in range(3)]
    eu_a, eu_b, us = bridges
    stack: CallStack | None = None
    calls: list[object] = []
    try:
        stack = CallStack(tmp_path, db, store, extra_env={
            "KALLGLOT_BRIDGE_POOLS": f"eu={eu_a.url},{eu_b.url};us={us.url}",
            "KALLGLOT_BRIDGE_HEALTH_INTERVAL_S": "0.5",
            # Re-starts at 0.5, 1.5 and 3.5 s: the health check notices a dead bridge meanwhile.
            "KALLGLOT_STREAM_RETRY_BASE_S": "0.5",
        })

        def call(sid: str, **spec: object) -> object:
            outcome = stack.call(sid, user, PASSWORD, audio=square_wav(4000, seconds=30), **spec)
            calls.append(outcome)
            return outcome

        def unhealthy(bridge: RealBridge) -> bool:
            return any(r["bridge"] == bridge.url for r in stack.controller.json_logs("bridge_unhealthy"))

        # An eu session: both legs on one eu bridge, which the session row remembers.
        s_eu = _session(store, org, "eu")
        assert call(s_eu).code == 200  # type: ignore[attr-defined]
        assert call(s_eu).code == 200  # type: ignore[attr-defined]
        wait_until(lambda: eu_a.legs_of(s_eu) + eu_b.legs_of(s_eu) == 2, "both eu legs on a bridge")
        first, other = (eu_a, eu_b) if eu_a.legs_of(s_eu) else (eu_b, eu_a)
        assert first.legs_of(s_eu) == 2 and _stored_bridge(store, s_eu) == first.url
        # A us session streams to the us bridge only.
        s_us = _session(store, org, "us")
        assert call(s_us).code == 200  # type: ignore[attr-defined]
        wait_until(lambda: us.legs_of(s_us) == 1, "the us leg on the us bridge")
        assert eu_a.legs_of(s_us) == eu_b.legs_of(s_us) == 0 and _stored_bridge(store, s_us) == us.url
        # Another eu session goes to the less loaded eu bridge (two probes after the legs are up).
        time.sleep(1.2)
        s_eu2 = _session(store, org, "eu")
        assert call(s_eu2).code == 200  # type: ignore[attr-defined]
        wait_until(lambda: other.legs_of(s_eu2) == 1, "the new eu session on the idle eu bridge")
        assert first.legs_of(s_eu2) == 0

        # The first eu bridge stops: the health check notices, new eu sessions skip it, and the
        # live session's legs re-start their streams on the other eu bridge — together.
        first.stop()
        wait_until(lambda: unhealthy(first), "the health check to notice the stopped bridge", 10)
        s_eu3 = _session(store, org, "eu")
        assert call(s_eu3).code == 200  # type: ignore[attr-defined]
        wait_until(lambda: other.legs_of(s_eu3) == 1, "the next eu session on the live bridge")
        wait_until(lambda: other.legs_of(s_eu) == 2, "the first session's legs moved to the live bridge", 15)
        assert _stored_bridge(store, s_eu) == other.url

        # No healthy bridge for the region: 503 before answer, a log line, call.rejected.
        us.stop()
        wait_until(lambda: unhealthy(us), "the health check to notice the stopped us bridge", 10)
        s_us2 = _session(store, org, "us")
        refused = call(s_us2)
        assert refused.code == 503  # type: ignore[attr-defined]
        s_ap = _session(store, org, "ap")  # no pool configured for ap at all
        assert call(s_ap).code == 503  # type: ignore[attr-defined]
        wait_until(lambda: len(stack.controller.json_logs("call_refused_no_bridge")) == 2,
                   "refusal log lines")
        lines = {line["session_id"]: line for line in stack.controller.json_logs("call_refused_no_bridge")}
        assert lines[s_us2]["call_uuid"] == refused.uuid  # type: ignore[attr-defined]
        assert lines[s_us2]["region"] == "us" and lines[s_ap]["region"] == "ap"
        assert lines[s_us2]["bridges"][0]["healthy"] is False
        wait_until(lambda: len(store.query("SELECT 1 FROM webhook_events WHERE type = 'call.rejected'")) == 2,
                   "call.rejected events")
        events = [json.loads(r["body"])["data"] for r in
                  store.query("SELECT body FROM webhook_events WHERE type = 'call.rejected'")]
        assert {(e["session_id"], e["sip_code"]) for e in events} == {(s_us2, 503), (s_ap, 503)}
        legs = store.query("SELECT sip_code, ended_at FROM call_legs WHERE session_id IN (?, ?)",
                           (s_us2, s_ap))
        assert [(r["sip_code"], r["ended_at"] is not None) for r in legs] == [(503, True)] * 2

        for outcome in calls:
            if outcome.code == 200:  # type: ignore[attr-defined]
                outcome.hangup()  # type: ignore[attr-defined]
        wait_until(lambda: live_leg_count(store) == 0, "every leg ended")
    finally:
        if stack is not None:
            stack.stop()
        for bridge in bridges:
            bridge.stop()

"""Two real ``kallglot controller`` processes — two nodes, each with its own scripted FreeSWITCH —
sharing one PostgreSQL store (docs/multi-node.md): the cap holds across them; a node killed with
calls up has its slots reclaimed by the other after the heartbeat window, never before; and a
node whose controller died but whose FreeSWITCH still carries calls keeps their slots."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from controller.store import Store, open_store
from tests.calls.controller_proc import ControllerProcess
from tests.calls.factories import live_leg_count, make_org, make_session
from tests.calls.test_controller_wire import _vars, wait_until
from tests.calls.wire_fs import ScriptedInboundEsl, WireCall


@pytest.fixture
def shared(pg_url: str) -> Iterator[tuple[str, Store]]:
    store = open_store(pg_url)
    yield pg_url, store
    store.close()


@pytest.fixture
def fs_nodes() -> Iterator[tuple[ScriptedInboundEsl, ScriptedInboundEsl]]:
    a, b = ScriptedInboundEsl(), ScriptedInboundEsl()
    yield a, b
    a.close()
    b.close()


def _power_off(fs: ScriptedInboundEsl) -> None:
    """The host is gone: the ESL port refuses at once (close() alone leaves a blocked accept()
    taking one more connection, which would still list the calls)."""
    fs._stop = True
    with contextlib.suppress(OSError):
        fs.server.shutdown(socket.SHUT_RDWR)
    fs.server.close()
    for conn in fs._conns:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()


def _streaming(c: WireCall) -> bool:
    return any(x.startswith("api uuid_audio_stream") for x in c.command_lines())


def test_burst_of_50_over_two_controllers_admits_exactly_the_cap(
        shared: tuple[str, Store], fs_nodes: tuple[ScriptedInboundEsl, ScriptedInboundEsl]) -> None:
    url, store = shared
    org = make_org(store, cap=5)
    sessions = [make_session(store, org) for _ in range(50)]
    ctls = [ControllerProcess(url, fs.port, extra_env={"KALLGLOT_NODE_ID": f"node-{i}"})  # type: ignore[arg-type]
            for i, fs in enumerate(fs_nodes)]
    try:
        calls: list[list[WireCall]] = [[], []]
        start = threading.Barrier(2)

        def place(i: int) -> None:
            start.wait()  # both nodes get their 25 calls at the same moment
            calls[i].extend(WireCall(ctls[i].address, _vars(store, org, s)) for s in sessions[i::2])

        threads = [threading.Thread(target=place, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = calls[0] + calls[1]

        def settled(c: WireCall) -> bool:
            return any(x.startswith(("sendmsg respond", "api uuid_audio_stream")) for x in c.command_lines())

        wait_until(lambda: all(settled(c) for c in every), "every call answered or rejected", timeout=60)
        answered = [c for c in every if _streaming(c)]
        rejected = [c for c in every if "sendmsg respond 503" in c.command_lines()]
        assert len(answered) == 5 and len(rejected) == 45
        assert live_leg_count(store, org) == 5
        # Each leg is held by the node whose controller admitted it.
        for i in (0, 1):
            mine = {c.uuid for c in calls[i] if _streaming(c)}
            held = {r["call_uuid"] for r in store.query(
                "SELECT call_uuid FROM call_legs WHERE node_id = ? AND ended_at IS NULL", (f"node-{i}",))}
            assert held == mine
        for c in answered:
            c.hangup()
        wait_until(lambda: live_leg_count(store) == 0, "all legs ended")
        outcomes = sorted(a["outcome"] for ctl in ctls for a in ctl.json_logs("call_admission"))
        assert outcomes == sorted(["admitted"] * 5 + ["rejected"] * 45)
    finally:
        for ctl in ctls:
            ctl.stop()


HEARTBEAT_S = 0.5
DEAD_AFTER_S = 3.0


def test_kill_9_of_a_node_frees_its_slots_after_the_window_and_not_before(
        shared: tuple[str, Store], fs_nodes: tuple[ScriptedInboundEsl, ScriptedInboundEsl]) -> None:
    url, store = shared
    fs_a, fs_b = fs_nodes
    org = make_org(store, cap=3)
    # Node B reconciles every 0.3 s against its own FreeSWITCH, which never lists A's calls:
    # only the heartbeat rule may end them.
    env = {"KALLGLOT_NODE_HEARTBEAT_S": str(HEARTBEAT_S), "KALLGLOT_NODE_DEAD_AFTER_S": str(DEAD_AFTER_S),
           "KALLGLOT_RECONCILE_INTERVAL_S": "0.3"}
    a = ControllerProcess(url, fs_a.port, extra_env={**env, "KALLGLOT_NODE_ID": "node-a"})  # type: ignore[arg-type]
    b = ControllerProcess(url, fs_b.port, extra_env={**env, "KALLGLOT_NODE_ID": "node-b"})  # type: ignore[arg-type]
    try:
        on_a = [WireCall(a.address, _vars(store, org, make_session(store, org))) for _ in range(2)]
        on_b = WireCall(b.address, _vars(store, org, make_session(store, org)))
        for c, fs in ((on_a[0], fs_a), (on_a[1], fs_a), (on_b, fs_b)):
            c.wait_command("api uuid_audio_stream")
            fs.live_uuids.add(c.uuid)
        wait_until(lambda: len(store.query("SELECT id FROM nodes WHERE state = 'up'")) == 2, "both nodes up")
        a.kill9()
        _power_off(fs_a)  # the whole node is gone: B's probe of A's FreeSWITCH is refused
        killed = time.time()
        last = store.query_one("SELECT last_heartbeat FROM nodes WHERE id = 'node-a'")["last_heartbeat"]
        assert killed - last < 2 * HEARTBEAT_S

        # Inside the window: A's slots still count (B reconciled several times meanwhile).
        time.sleep(max(0.0, last + DEAD_AFTER_S - 0.5 - time.time()))
        assert live_leg_count(store, org) == 3
        refused = WireCall(b.address, _vars(store, org, make_session(store, org)))
        refused.wait_command("sendmsg respond 503")

        wait_until(lambda: live_leg_count(store, org) == 1, "node-a's legs reclaimed",
                   timeout=DEAD_AFTER_S + 10)
        rows = store.query("SELECT hangup_cause, ended_at FROM call_legs WHERE node_id = 'node-a'")
        assert len(rows) == 2
        for r in rows:
            assert r["hangup_cause"] == "NODE_LOST"
            assert r["ended_at"] >= last + DEAD_AFTER_S  # never sooner than the window
            assert r["ended_at"] <= last + DEAD_AFTER_S + HEARTBEAT_S + 5.0  # bounded: a beat later (+ load)
        assert store.query_one("SELECT state FROM nodes WHERE id = 'node-a'")["state"] == "dead"
        def logged() -> tuple[int, int]:
            return len(b.json_logs("node_declared_dead")), len(b.json_logs("leg_reclaimed"))

        wait_until(lambda: logged() == (1, 2), "B's log lines (read by a thread)")
        # B's own call was never touched; the freed slots take new calls.
        row = store.query_one("SELECT ended_at FROM call_legs WHERE call_uuid = ?", (on_b.uuid,))
        assert row["ended_at"] is None
        admitted = WireCall(b.address, _vars(store, org, make_session(store, org)))
        admitted.wait_command("api uuid_audio_stream")
    finally:
        a.stop()
        b.stop()


def test_controller_gone_but_its_freeswitch_up_keeps_the_slots_of_the_calls_still_there(
        shared: tuple[str, Store], fs_nodes: tuple[ScriptedInboundEsl, ScriptedInboundEsl]) -> None:
    url, store = shared
    fs_a, fs_b = fs_nodes
    org = make_org(store, cap=3)
    env = {"KALLGLOT_NODE_HEARTBEAT_S": str(HEARTBEAT_S), "KALLGLOT_NODE_DEAD_AFTER_S": str(DEAD_AFTER_S)}
    a = ControllerProcess(url, fs_a.port, extra_env={**env, "KALLGLOT_NODE_ID": "node-a"})  # type: ignore[arg-type]
    b = ControllerProcess(url, fs_b.port, extra_env={**env, "KALLGLOT_NODE_ID": "node-b"})  # type: ignore[arg-type]
    try:
        on_a = [WireCall(a.address, _vars(store, org, make_session(store, org))) for _ in range(2)]
        for c in on_a:
            c.wait_command("api uuid_audio_stream")
            fs_a.live_uuids.add(c.uuid)
        wait_until(lambda: len(store.query("SELECT id FROM nodes WHERE state = 'up'")) == 2, "both nodes up")
        a.kill9()
        asked_before = fs_a.requests.count("api show calls as json")  # A's own reconciliations
        fs_a.live_uuids.discard(on_a[0].uuid)  # A's FreeSWITCH lost one call; the other stays parked
        wait_until(lambda: live_leg_count(store, org) == 1, "the lost call's slot freed",
                   timeout=DEAD_AFTER_S + 10)
        row = store.query_one("SELECT hangup_cause FROM call_legs WHERE call_uuid = ?", (on_a[0].uuid,))
        assert row["hangup_cause"] == "LOST_CHANNEL"
        assert fs_a.requests.count("api show calls as json") > asked_before  # B asked A's FreeSWITCH
        time.sleep(4 * HEARTBEAT_S)  # several more passes: the parked call keeps its slot
        assert live_leg_count(store, org) == 1
        assert store.query_one("SELECT state FROM nodes WHERE id = 'node-a'")["state"] != "dead"
    finally:
        a.stop()
        b.stop()

"""The nodes table, heartbeats and the reclaim rule, on SQLite and PostgreSQL, with explicit clocks."""

from __future__ import annotations

import pytest

from controller.calls.admission import Admitted, admit
from controller.calls.legs import reconcile
from controller.cluster import (
    NodeAgent,
    NodeInfo,
    heartbeat,
    list_nodes,
    mark_stopped,
    reclaim_dead_nodes,
    register,
)
from controller.store import Store
from tests.calls.factories import live_leg_count, make_org, make_session, sip_channel, sip_username

DEAD_AFTER = 30.0
T0 = 1_800_000_000.0


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


def _admit(store: Store, org: str, node: str | None, uuid: str, now: float) -> None:
    channel = sip_channel(org, sip_username(store, org), make_session(store, org), call_uuid=uuid)
    result = admit(store, channel, now=now, node_id=node)
    assert isinstance(result, Admitted), result


def test_register_heartbeat_stop(store: Store) -> None:
    register(store, NodeInfo("fs-a", "10.0.0.1:8021", "10.0.0.1:5060", "eu"), now=T0)
    assert heartbeat(store, "fs-a", now=T0 + 5) == "up"
    assert heartbeat(store, "nobody", now=T0 + 5) is None
    mark_stopped(store, "fs-a")
    [row] = list_nodes(store)
    assert (row.id, row.esl_address, row.sip_address, row.region, row.state) == (
        "fs-a", "10.0.0.1:8021", "10.0.0.1:5060", "eu", "stopped")
    assert (row.started_at, row.last_heartbeat) == (T0, T0 + 5)
    register(store, NodeInfo("fs-a", "10.0.0.9:8021"), now=T0 + 60)  # a restart refreshes the row
    [row] = list_nodes(store)
    assert (row.esl_address, row.state, row.region, row.last_heartbeat) == (
        "10.0.0.9:8021", "up", None, T0 + 60)


def test_a_silent_node_loses_its_slots_after_the_window_and_not_before(store: Store) -> None:
    org = make_org(store, cap=3)
    register(store, NodeInfo("fs-a", "a:8021"), now=T0)
    register(store, NodeInfo("fs-b", "b:8021"), now=T0)
    _admit(store, org, "fs-a", "a-1", T0 + 1)
    _admit(store, org, "fs-a", "a-2", T0 + 1)
    _admit(store, org, "fs-b", "b-1", T0 + 1)
    heartbeat(store, "fs-a", now=T0 + 10)  # fs-a's last word
    # fs-b keeps beating and reclaiming; 0.1 s before the window closes nothing happens.
    window_ends = T0 + 10 + DEAD_AFTER
    assert reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=window_ends - 0.1) == []
    assert live_leg_count(store, org) == 3
    [reclaimed] = reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=window_ends + 0.1)
    assert reclaimed.node_id == "fs-a" and reclaimed.last_heartbeat == T0 + 10
    assert sorted(leg.call_uuid for leg in reclaimed.legs) == ["a-1", "a-2"]
    assert all(leg.session_ended for leg in reclaimed.legs)
    assert live_leg_count(store, org) == 1
    rows = store.query("SELECT hangup_cause, status, ended_at FROM call_legs WHERE node_id = 'fs-a'")
    assert {(r["hangup_cause"], r["status"]) for r in rows} == {("NODE_LOST", "failed")}
    assert {n.id: n.state for n in list_nodes(store)} == {"fs-a": "dead", "fs-b": "up"}
    # A second pass (or another live node) finds nothing more to do.
    assert reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 100) == []
    # The node comes back: it learns it was declared dead and is up again; its old legs stay ended.
    assert heartbeat(store, "fs-a", now=T0 + 101) == "dead"
    assert {n.id: n.state for n in list_nodes(store)} == {"fs-a": "up", "fs-b": "up"}


def test_a_node_never_reclaims_itself_nor_legs_no_node_holds(store: Store) -> None:
    org = make_org(store, cap=5)
    register(store, NodeInfo("fs-a", "a:8021"), now=T0)
    _admit(store, org, "fs-a", "a-1", T0 + 1)
    _admit(store, org, None, "legacy-1", T0 + 1)  # single-node / pre-migration leg
    assert reclaim_dead_nodes(store, by_node="fs-a", dead_after_s=DEAD_AFTER, now=T0 + 1000) == []
    assert live_leg_count(store, org) == 2


def test_a_stopped_node_is_reclaimed_too_once_silent(store: Store) -> None:
    """A graceful stop parks the calls for the node's next controller; if none comes back within
    the window the slots are reclaimed like a crashed node's."""
    org = make_org(store)
    register(store, NodeInfo("fs-a", "a:8021"), now=T0)
    register(store, NodeInfo("fs-b", "b:8021"), now=T0)
    _admit(store, org, "fs-a", "a-1", T0 + 1)
    mark_stopped(store, "fs-a")
    assert reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 20) == []
    assert len(reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 31)) == 1
    assert live_leg_count(store, org) == 0


def test_reconcile_of_one_node_leaves_other_nodes_legs_alone(store: Store) -> None:
    """Node B's FreeSWITCH does not list node A's calls; B's reconciliation must not end them."""
    org = make_org(store, cap=5)
    _admit(store, org, "fs-a", "a-1", T0)
    _admit(store, org, "fs-b", "b-1", T0)
    _admit(store, org, "fs-b", "b-gone", T0)
    _admit(store, org, None, "legacy-gone", T0)
    ended = reconcile(store, {"b-1"}, now=T0 + 10, grace_s=2.0, node_id="fs-b")
    assert sorted(e.call_uuid for e in ended) == ["b-gone", "legacy-gone"]
    assert live_leg_count(store, org) == 2


def test_agent_beats_reclaims_and_survives_a_store_error(store: Store) -> None:
    clock = [T0]
    org = make_org(store)
    register(store, NodeInfo("fs-a", "a:8021"), now=T0)
    _admit(store, org, "fs-a", "a-1", T0)
    agent = NodeAgent(store, NodeInfo("fs-b", "b:8021"), heartbeat_s=5, dead_after_s=DEAD_AFTER,
                      clock=lambda: clock[0])
    agent.start()
    clock[0] = T0 + 31
    agent.beat()
    assert live_leg_count(store, org) == 0 and agent.beats == 1

    class Stop:
        calls = 0

        def wait(self, timeout: float | None = None) -> bool:
            self.calls += 1
            return self.calls > 2

    store.conn.execute("DROP TABLE nodes")  # every beat now fails; the loop logs and goes on
    agent.run(Stop())
    assert agent.beats == 1


def test_a_silent_node_whose_freeswitch_answers_keeps_the_calls_it_still_has(store: Store) -> None:
    """The controller is gone but its FreeSWITCH is not: calls outlive their controller
    (parked), so the slots of the calls it lists stay taken; the others are freed."""
    org = make_org(store, cap=5)
    register(store, NodeInfo("fs-a", "10.0.0.1:8021"), now=T0)
    _admit(store, org, "fs-a", "a-up", T0)
    _admit(store, org, "fs-a", "a-gone", T0)
    asked: list[str] = []

    def probe(address: str) -> set[str] | None:
        asked.append(address)
        return {"a-up"}

    assert reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 29, probe=probe) == []
    assert asked == []  # not silent yet: not even asked
    [reclaimed] = reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 31, probe=probe)
    assert asked == ["10.0.0.1:8021"]
    assert [leg.call_uuid for leg in reclaimed.legs] == ["a-gone"]
    row = store.query_one("SELECT hangup_cause FROM call_legs WHERE call_uuid = 'a-gone'")
    assert row["hangup_cause"] == "LOST_CHANNEL"
    assert live_leg_count(store, org) == 1
    assert [n.state for n in list_nodes(store)] == ["up"]  # not dead: its FreeSWITCH answers
    # Once its FreeSWITCH stops answering too, the node is dead and the last slot is freed.
    [reclaimed] = reclaim_dead_nodes(store, by_node="fs-b", dead_after_s=DEAD_AFTER, now=T0 + 40,
                                     probe=lambda address: None)
    assert [leg.call_uuid for leg in reclaimed.legs] == ["a-up"]
    assert live_leg_count(store, org) == 0
    assert [n.state for n in list_nodes(store)] == ["dead"]


def test_a_node_whose_own_freeswitch_is_gone_frees_its_slots_after_the_window(store: Store) -> None:
    """Its controller lives on and beats, so no other node reclaims its legs, and its own
    reconciliation cannot ask the switch (seen with a real FreeSWITCH killed under a live
    controller, tests/e2e/test_two_nodes.py): the node ends them itself after the window."""
    clock = [T0]
    org = make_org(store, cap=5)
    answers: list[set[str] | None] = [{"b-1"}]
    agent = NodeAgent(store, NodeInfo("fs-b", "b:8021"), heartbeat_s=5, dead_after_s=DEAD_AFTER,
                      clock=lambda: clock[0],
                      probe=lambda address: answers[0] if address == "b:8021" else None)
    agent.start()
    _admit(store, org, "fs-b", "b-1", T0)
    _admit(store, org, "fs-b", "b-2", T0)
    clock[0] = T0 + 5
    agent.beat()  # the switch answers: nothing happens (reconciliation is the controller's job)
    assert live_leg_count(store, org) == 2
    answers[0] = None  # the switch is gone
    clock[0] = T0 + 5 + DEAD_AFTER - 0.1
    agent.beat()
    assert live_leg_count(store, org) == 2  # not before the window
    clock[0] = T0 + 5 + DEAD_AFTER
    agent.beat()
    assert live_leg_count(store, org) == 0
    rows = store.query("SELECT hangup_cause, ended_at FROM call_legs WHERE node_id = 'fs-b'")
    assert [(r["hangup_cause"], r["ended_at"]) for r in rows] == [("NODE_LOST", T0 + 5 + DEAD_AFTER)] * 2
    assert [n.state for n in list_nodes(store)] == ["up"]  # still beating: the node itself is alive
    # An answer resets the window: a brief ESL hiccup frees nothing.
    _admit(store, org, "fs-b", "b-3", T0 + 40)
    answers[0] = {"b-3"}
    clock[0] = T0 + 100
    agent.beat()
    answers[0] = None
    clock[0] = T0 + 100 + DEAD_AFTER - 1
    agent.beat()
    assert live_leg_count(store, org) == 1


def test_an_agent_without_a_probe_never_ends_its_own_legs(store: Store) -> None:
    clock = [T0]
    org = make_org(store)
    agent = NodeAgent(store, NodeInfo("fs-b", "b:8021"), heartbeat_s=5, dead_after_s=DEAD_AFTER,
                      clock=lambda: clock[0])
    agent.start()
    _admit(store, org, "fs-b", "b-1", T0)
    clock[0] = T0 + 10 * DEAD_AFTER
    agent.beat()
    assert live_leg_count(store, org) == 1

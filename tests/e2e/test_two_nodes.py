"""Two real FreeSWITCH 1.10.12 nodes behind the rendered Kamailio front, sharing one PostgreSQL
store (docs/multi-node.md, "Two nodes behind Kamailio, end to end"): calls spread over both; a node
whose FreeSWITCH dies mid-run gets no new calls once the front's OPTIONS probes mark it down (and
none fails meanwhile: the front retries the next node); the organization's cap holds across both,
and its 503 + X-Call-Limit reaches the caller without being retried on the other node.

Needs a local FreeSWITCH build (KALLGLOT_FREESWITCH_PREFIX, docs/real-freeswitch.md), Debian's
kamailio + kamcmd, and PostgreSQL's initdb; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.kamailio.render import kamailio_binary
from tests.e2e.multinode_stack import Placed, TwoNodeEdge, ds_hash, two_node_edge, wait_for
from tests.e2e.real_switch import PREFIX_ENV, local_build_problem
from tests.pg import PgCluster


def _skip_reason() -> str:
    prefix = os.environ.get(PREFIX_ENV)
    if not prefix:
        return f"{PREFIX_ENV} is not set (a local FreeSWITCH build: docs/real-freeswitch.md)"
    if kamailio_binary() is None or shutil.which("kamcmd") is None:
        return "kamailio / kamcmd missing (Debian kamailio)"
    return local_build_problem(Path(prefix))


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "-")


@pytest.fixture(scope="module")
def edge(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodeEdge]:
    prefix = Path(os.environ[PREFIX_ENV])
    with two_node_edge(tmp_path_factory.mktemp("two-nodes"), prefix,
                       pg_cluster.create_database(migrated=True)) as e:
        e.api_ok("PATCH", "/v1/sip", {"max_concurrent_calls": 20})
        yield e


def _index_of(edge: TwoNodeEdge) -> dict[int, str]:
    """Dispatcher index → node id. Kamailio 5.6 holds a set's destinations in the reverse order of
    dispatcher.list (seen here: the first test checks it against where calls landed)."""
    names = [str(n["name"]) for n in edge.render_summary["nodes"]]
    return dict(enumerate(reversed(names)))


def _call_ids_for(edge: TwoNodeEdge, node: str, count: int, tag: str) -> list[str]:
    index = {v: k for k, v in _index_of(edge).items()}[node]
    out: list[str] = []
    while len(out) < count:
        cid = f"{tag}-{secrets.token_hex(6)}@127.0.0.1"
        if ds_hash(cid) % 2 == index:
            out.append(cid)
    return out


def _hang_up_all(edge: TwoNodeEdge, calls: list[Placed]) -> None:
    for c in calls:
        assert edge.hang_up(c) in (200, None)
    wait_for("every leg ended", lambda: edge.live_legs() == 0, 15)


def test_calls_through_the_front_land_on_both_nodes(edge: TwoNodeEdge) -> None:
    calls = [edge.place(f"spread-{i}-{secrets.token_hex(4)}@127.0.0.1") for i in range(10)]
    try:
        assert [c.code for c in calls] == [200] * 10, [(c.code, c.result.error) for c in calls]
        landed = [c.node_id for c in calls]
        assert set(landed) == {"fs-a", "fs-b"}, landed
        # The front hashes the Call-ID (ds_select_dst algorithm 0): the tests below rely on it.
        index = _index_of(edge)
        assert landed == [index[ds_hash(c.call.call_id) % 2] for c in calls]
        # Each FreeSWITCH carries the calls its controller admitted (legs' node_id); its channel
        # list lags a new channel by ~200 ms (DESIGN §4).
        for node in edge.nodes:
            node.wait_channels(landed.count(node.name))
    finally:
        _hang_up_all(edge, calls)
    for node in edge.nodes:
        node.wait_channels(0)


def test_the_cap_holds_across_both_nodes_and_its_503_is_not_retried(edge: TwoNodeEdge) -> None:
    edge.api_ok("PATCH", "/v1/sip", {"max_concurrent_calls": 2})
    before = {n.name: len(n.json_logs("call_admission")) for n in edge.nodes}
    ids = _call_ids_for(edge, "fs-a", 2, "cap") + _call_ids_for(edge, "fs-b", 2, "cap")
    placed: list[Placed | None] = [None] * 4
    start, done = threading.Barrier(4), threading.Barrier(4)

    def caller(i: int) -> None:
        start.wait()
        placed[i] = edge.place(ids[i])
        done.wait()  # answered calls stay up until every caller has its answer

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        calls = [p for p in placed if p is not None]
        assert len(calls) == 4
        assert sorted(c.code or 0 for c in calls) == [200, 200, 503, 503], [(c.code, c.result.error)
                                                                            for c in calls]
        for c in calls:
            if c.code == 503:
                assert c.result.headers.get("X-Call-Limit") == "2", c.result.headers
        # Two calls reached each node, and each call was judged once: the front did not retry
        # a 503 carrying X-Call-Limit on the other node.
        lines = {n.name: n.json_logs("call_admission")[before[n.name]:] for n in edge.nodes}
        assert {name: len(v) for name, v in lines.items()} == {"fs-a": 2, "fs-b": 2}, lines
        outcomes = sorted(str(x["outcome"]) for v in lines.values() for x in v)
        assert outcomes == ["admitted", "admitted", "rejected", "rejected"]
        assert edge.live_legs() == 2
    finally:
        _hang_up_all(edge, [p for p in placed if p is not None])
        edge.api_ok("PATCH", "/v1/sip", {"max_concurrent_calls": 20})


def test_a_node_whose_freeswitch_dies_gets_no_new_calls(edge: TwoNodeEdge) -> None:
    node_b = edge.nodes[1]
    assert node_b.fs is not None
    held = edge.place(_call_ids_for(edge, "fs-b", 1, "held")[0])
    assert (held.code, held.node_id) == (200, "fs-b")

    # Calls keep coming through the front while B dies: every one must be answered.
    log: list[tuple[float, int | None, str | None, float]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            c = edge.place()
            log.append((t0, c.code, c.node_id, time.monotonic() - t0))
            edge.hang_up(c)

    loop = threading.Thread(target=traffic)
    loop.start()
    try:
        time.sleep(1.5)
        killed, killed_at = time.monotonic(), time.time()
        node_b.kill_switch()
        down_after = wait_for("the front to mark fs-b inactive",
                              lambda: edge.dispatcher_flags().get(node_b.sip_address, "").startswith("I"), 30)
        marked_down = killed + down_after
        time.sleep(3)
    finally:
        stop.set()
        loop.join(timeout=60)

    failed = [(round(t0 - killed, 2), code, node, round(took, 2)) for t0, code, node, took in log
              if code != 200]
    assert log and not failed, (f"{len(failed)} of {len(log)} calls not answered "
                                f"(s after the kill, code, node, took): {failed}")
    after = [node for t0, _, node, _ in log if t0 > marked_down]
    assert after and set(after) == {"fs-a"}, log
    # Calls whose Call-ID hashes to B now go to A, and are answered there.
    moved = [edge.place(cid) for cid in _call_ids_for(edge, "fs-b", 4, "moved")]
    try:
        assert [(c.code, c.node_id) for c in moved] == [(200, "fs-a")] * 4
    finally:
        for c in moved:
            edge.hang_up(c)
    # The call that was up on B is lost (its media lived there). B's controller is alive and
    # beating, so no other node reclaims it: B frees the slot itself once its own FreeSWITCH has
    # not answered for the window (KALLGLOT_NODE_DEAD_AFTER_S).
    store = edge.store
    assert store is not None

    def lost_leg() -> dict[str, object] | None:
        row = store.query_one("SELECT hangup_cause, ended_at FROM call_legs WHERE session_id = ?",
                              (held.session_id,))
        return dict(row) if row is not None and row["ended_at"] is not None else None

    wait_for("the lost call's slot to be freed", lambda: lost_leg() is not None, edge.dead_after_s + 10)
    held.call.close()
    leg = lost_leg()
    assert leg is not None and leg["hangup_cause"] == "NODE_LOST"
    freed_s = float(str(leg["ended_at"])) - killed_at
    assert freed_s >= edge.dead_after_s - edge.heartbeat_s  # its switch last answered ≤ 1 beat before
    assert node_b.json_logs("own_freeswitch_lost")
    slowest = max(d for *_, d in log)
    retried = sum(1 for *_, d in log if d > 1.5)  # sent to fs-b first: 2 s without an answer, then fs-a
    print(f"\nfs-b marked inactive {down_after:.2f} s after SIGKILL; {len(log)} calls meanwhile, all 200 "
          f"({retried} retried on fs-a after the 2 s timeout, slowest {slowest:.2f} s); the lost call's slot "
          f"freed by fs-b after {freed_s:.1f} s (NODE_LOST)")

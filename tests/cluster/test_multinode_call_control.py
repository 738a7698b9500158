"""Ending and dialling with several FreeSWITCH nodes: each leg is hung up on the node that holds
it, a dial is originated on the node chosen for it, a dead node costs a bounded wait and is
reported. Real API server, EslCallControl, scripted FreeSWITCH event sockets (real ESL framing);
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from controller.api.server import create_app
from controller.calls.esl_control import EslCallControl
from controller.calls.legs import reserve_outbound_leg
from controller.cluster import NodeInfo, register
from controller.cluster.routing import choose_dial_node, targets_for_calls
from controller.domain import api_keys, organizations
from controller.ids import new_id
from controller.settings import Settings
from controller.store import Store
from tests.api.server import RunningServer
from tests.calls.factories import make_session
from tests.calls.wire_fs import ScriptedInboundEsl

PASSWORD = "s3cret-esl"
T0 = 1_800_000_000.0


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


@dataclass
class Cluster:
    a: ScriptedInboundEsl
    b: ScriptedInboundEsl
    default: ScriptedInboundEsl  # KALLGLOT_ESL_HOST/PORT of the API
    settings: Settings


@pytest.fixture
def cluster(store: Store) -> Iterator[Cluster]:
    a, b, default = (ScriptedInboundEsl(PASSWORD) for _ in range(3))
    settings = Settings(sip_domain="sip.test.example", db_path=store.path, esl_port=default.port,
                        esl_password=PASSWORD)
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}", region="us"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{b.port}", region="eu"))
    yield Cluster(a, b, default, settings)
    for server in (a, b, default):
        server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _org(store: Store) -> tuple[str, str]:
    org = organizations.create_organization(store, "Acme")
    with store.transaction() as conn:
        conn.execute("UPDATE sip_settings SET max_concurrent_calls = 10 WHERE org_id = ?", (org.id,))
    return org.id, api_keys.create_key(store, org.id).secret


def _connection(store: Store, org: str) -> str:
    cid = new_id("pcon")
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO connections (id, org_id, provider, name, credentials, sip, status, created_at,"
            " updated_at) VALUES (?, ?, 'telnyx', 'trunk', '{}', ?, 'active', ?, ?)",
            (cid, org, json.dumps({"host": "sip.provider.example", "username": "u", "password": "p"}),
             now, now))
    return cid


def _leg(store: Store, org: str, sid: str, role: str, node: str | None, fs: ScriptedInboundEsl) -> str:
    """A live leg of ``sid`` held by ``node``, whose FreeSWITCH ``fs`` has the channel."""
    leg = reserve_outbound_leg(store, org, sid, role, "+4930123", node_id=node)
    fs.live_uuids.add(leg.call_uuid)
    return leg.call_uuid


def _kills(fs: ScriptedInboundEsl) -> list[str]:
    return [r.split(" ")[2] for r in fs.requests if r.startswith("api uuid_kill ")]


def _control(store: Store, settings: Settings) -> EslCallControl:
    return EslCallControl(settings, store, timeout=5.0, originate_timeout_s=5, connect_timeout=1.0)


def _serve(store: Store, cluster: Cluster) -> RunningServer:
    return RunningServer(create_app(cluster.settings, store, call_control=_control(store, cluster.settings)))


def test_end_hangs_up_each_leg_through_its_own_node(store: Store, cluster: Cluster) -> None:
    org, key = _org(store)
    sid = make_session(store, org)
    on_a = _leg(store, org, sid, "customer", "fs-a", cluster.a)
    on_b = _leg(store, org, sid, "agent", "fs-b", cluster.b)
    server = _serve(store, cluster)
    try:
        r = requests.post(f"http://127.0.0.1:{server.port}/v1/sessions/{sid}/end", timeout=30,
                          headers={"Authorization": f"Bearer {key}"})
    finally:
        server.stop()
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert _kills(cluster.a) == [on_a] and _kills(cluster.b) == [on_b]
    assert not cluster.a.live_uuids and not cluster.b.live_uuids
    assert cluster.default.requests == []
    assert not any(PASSWORD in line for line in cluster.a.requests if not line.startswith("auth "))


def test_a_dead_node_costs_a_bounded_wait_and_is_reported(store: Store, cluster: Cluster,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    dead = _closed_port()
    register(store, NodeInfo("fs-dead", f"127.0.0.1:{dead}", region="eu"))
    org, _ = _org(store)
    s1, s2 = make_session(store, org), make_session(store, org)
    on_a = _leg(store, org, s1, "customer", "fs-a", cluster.a)
    on_dead = _leg(store, org, s1, "agent", "fs-dead", cluster.b)  # nobody will kill it
    unowned = _leg(store, org, s2, "customer", None, cluster.default)  # single-node leg: configured ESL
    control = _control(store, cluster.settings)
    caplog.set_level(logging.WARNING, logger="kallglot.calls.esl_control")
    started = time.monotonic()
    done = control.hangup([on_a, on_dead, unowned])
    assert time.monotonic() - started < 4.0
    assert done == [on_a, unowned]
    assert _kills(cluster.a) == [on_a] and _kills(cluster.default) == [unowned]
    messages = [r.getMessage() for r in caplog.records]
    [event] = [json.loads(m) for m in messages if "hangup_node_unreachable" in m]
    assert (event["node_id"], event["esl_address"], event["call_uuids"]) == (
        "fs-dead", f"127.0.0.1:{dead}", [on_dead])
    assert PASSWORD not in caplog.text
    # Only the dead node: the error reaches the caller (the API logs it; the session is ended anyway).
    with pytest.raises(Exception, match="ESL connect"):
        control.hangup([on_dead])


def test_uuids_group_by_node_and_unknown_nodes_use_the_configured_address(store: Store,
                                                                          cluster: Cluster) -> None:
    org, _ = _org(store)
    sid, other = make_session(store, org), make_session(store, org)
    on_a = _leg(store, org, sid, "customer", "fs-a", cluster.a)
    ghost = _leg(store, org, sid, "agent", "fs-never-registered", cluster.default)
    plain = _leg(store, org, other, "customer", None, cluster.default)
    groups = {t.node_id: (t.address, uuids) for t, uuids in
              targets_for_calls(store, cluster.settings, [on_a, ghost, plain, "not-a-leg"]).items()}
    assert groups == {"fs-a": (f"127.0.0.1:{cluster.a.port}", [on_a]),
                      None: (f"127.0.0.1:{cluster.default.port}", [ghost, plain, "not-a-leg"])}


def _wait(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_dial_originates_on_the_node_of_the_sessions_other_leg(store: Store, cluster: Cluster) -> None:
    org, key = _org(store)
    sid = make_session(store, org, connection_id=_connection(store, org))
    _leg(store, org, sid, "customer", "fs-a", cluster.a)  # fs-a is in "us", the session in "eu"
    server = _serve(store, cluster)
    try:
        r = requests.post(f"http://127.0.0.1:{server.port}/v1/sessions/{sid}/dial", timeout=30,
                          json={"to": "+4930999"}, headers={"Authorization": f"Bearer {key}"})
    finally:
        server.stop()
    assert r.status_code == 202, r.text
    leg = r.json()
    _wait(lambda: any(q.startswith("bgapi originate") for q in cluster.a.requests), "originate on fs-a")
    assert leg["call_uuid"] in next(q for q in cluster.a.requests if q.startswith("bgapi originate"))
    assert not any(q.startswith("bgapi") for q in cluster.b.requests + cluster.default.requests)
    row = store.query_one("SELECT node_id FROM call_legs WHERE id = ?", (leg["id"],))
    assert row is not None and row["node_id"] == "fs-a"


def test_dial_without_another_leg_goes_to_a_healthy_node_of_the_region(store: Store,
                                                                       cluster: Cluster) -> None:
    org, key = _org(store)
    sid = make_session(store, org, connection_id=_connection(store, org))  # region eu: fs-b
    server = _serve(store, cluster)
    try:
        r = requests.post(f"http://127.0.0.1:{server.port}/v1/sessions/{sid}/dial", timeout=30,
                          json={"to": "+4930999", "role": "agent"},
                          headers={"Authorization": f"Bearer {key}"})
    finally:
        server.stop()
    assert r.status_code == 202, r.text
    _wait(lambda: any(q.startswith("bgapi originate") for q in cluster.b.requests), "originate on fs-b")
    assert not any(q.startswith("bgapi") for q in cluster.a.requests + cluster.default.requests)
    row = store.query_one("SELECT node_id FROM call_legs WHERE id = ?", (r.json()["id"],))
    assert row is not None and row["node_id"] == "fs-b"


def test_choose_dial_node_rules(store: Store) -> None:
    settings = Settings(node_dead_after_s=30.0)
    org, _ = _org(store)
    sid = make_session(store, org)  # region eu
    assert choose_dial_node(store, settings, sid, now=T0) is None  # no nodes: configured ESL
    own = Settings(node_id="fs-own", node_dead_after_s=30.0)
    assert choose_dial_node(store, own, sid, now=T0) == "fs-own"
    register(store, NodeInfo("fs-us", "u:8021", region="us"), now=T0)
    register(store, NodeInfo("fs-eu-stale", "s:8021", region="eu"), now=T0 - 31)
    assert choose_dial_node(store, settings, sid, now=T0) is None  # none healthy in eu
    register(store, NodeInfo("fs-eu-1", "e1:8021", region="eu"), now=T0)
    register(store, NodeInfo("fs-eu-2", "e2:8021", region="eu"), now=T0)
    busy = make_session(store, org)
    reserve_outbound_leg(store, org, busy, "customer", "+4930123", node_id="fs-eu-1")
    assert choose_dial_node(store, settings, sid, now=T0) == "fs-eu-2"  # the least loaded
    register(store, NodeInfo("fs-own", "o:8021", region="eu"), now=T0)
    assert choose_dial_node(store, own, sid, now=T0) == "fs-own"  # this API's node, in region
    reserve_outbound_leg(store, org, sid, "customer", "+4930123", node_id="fs-us")
    assert choose_dial_node(store, own, sid, now=T0) == "fs-us"  # the other leg's node wins
    assert choose_dial_node(store, settings, sid, now=T0 + 31) is None  # nobody healthy: configured

"""The ``nodes`` table: who shares the store, and when each was last heard from.

A node is one FreeSWITCH and its controller. It registers on start, heartbeats every
``KALLGLOT_NODE_HEARTBEAT_S`` and is marked ``stopped`` on a graceful exit (its parked calls
wait for the next controller of the same node). A node whose last heartbeat is older than
``KALLGLOT_NODE_DEAD_AFTER_S`` — whatever its state — is *silent*. A live node then asks the
silent node's FreeSWITCH (its recorded ESL address) for its calls: calls outlive their
controller (parked), so while that FreeSWITCH answers, the legs it lists keep their slots and
only those it no longer has are ended (``LOST_CHANNEL``). When it does not answer either, the
node is declared ``dead`` and all its live legs are ended (``NODE_LOST``). Never sooner than
the window: the cutoff is measured from the silent node's own last heartbeat.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.calls.legs import LegEnded, end_leg, reconcile
from controller.store import Store

log = logging.getLogger("kallglot.cluster")

NODE_LOST_CAUSE = "NODE_LOST"

# ESL address → the uuids its FreeSWITCH lists now, or None when it cannot be asked.
Probe = Callable[[str], set[str] | None]


@dataclass(frozen=True)
class NodeInfo:
    id: str
    esl_address: str
    sip_address: str = ""
    region: str = ""


@dataclass(frozen=True)
class NodeRow:
    id: str
    esl_address: str
    sip_address: str | None
    region: str | None
    state: str
    started_at: float
    last_heartbeat: float


@dataclass(frozen=True)
class Reclaimed:
    node_id: str
    last_heartbeat: float
    legs: tuple[LegEnded, ...]


def register(store: Store, node: NodeInfo, *, now: float | None = None) -> None:
    """Insert or refresh this node's row (state ``up``)."""
    now = time.time() if now is None else now
    with store.transaction() as conn:
        previous = conn.execute("SELECT state FROM nodes WHERE id = ?", (node.id,)).fetchone()
        conn.execute(
            """INSERT INTO nodes (id, esl_address, sip_address, region, state, started_at, last_heartbeat)
               VALUES (?, ?, ?, ?, 'up', ?, ?)
               ON CONFLICT (id) DO UPDATE SET esl_address = excluded.esl_address,
                   sip_address = excluded.sip_address, region = excluded.region, state = 'up',
                   started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat""",
            (node.id, node.esl_address, node.sip_address or None, node.region or None, now, now),
        )
    _log("node_registered", node_id=node.id, esl_address=node.esl_address,
         previous_state=previous["state"] if previous else None)


def heartbeat(store: Store, node_id: str, *, now: float | None = None) -> str | None:
    """Refresh ``last_heartbeat``; returns the state the node had (``dead`` means its legs were
    reclaimed while it was silent), None when it had no row."""
    now = time.time() if now is None else now
    with store.transaction() as conn:
        row = conn.execute("SELECT state FROM nodes WHERE id = ?", (node_id,)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE nodes SET last_heartbeat = ?, state = 'up' WHERE id = ?", (now, node_id))
    return str(row["state"])


def mark_stopped(store: Store, node_id: str) -> None:
    """A graceful exit: the node's calls stay up (parked) for its next controller."""
    with store.transaction() as conn:
        conn.execute("UPDATE nodes SET state = 'stopped' WHERE id = ? AND state = 'up'", (node_id,))


def list_nodes(store: Store) -> list[NodeRow]:
    rows = store.query("SELECT id, esl_address, sip_address, region, state, started_at, last_heartbeat"
                       " FROM nodes ORDER BY id")
    return [NodeRow(r["id"], r["esl_address"], r["sip_address"], r["region"], r["state"],
                    float(r["started_at"]), float(r["last_heartbeat"])) for r in rows]


def reclaim_dead_nodes(store: Store, *, by_node: str, dead_after_s: float, now: float | None = None,
                       probe: Probe | None = None, grace_s: float = 2.0) -> list[Reclaimed]:
    """Free the slots of every other node silent for ``dead_after_s``.

    With ``probe``, a silent node whose FreeSWITCH still answers keeps the legs it lists (only
    the others end); without one, or when it does not answer, the node is declared dead and all
    its live legs end. Marking a node dead is one conditional UPDATE, so of several live nodes
    exactly one claims it. Legs of nodes already ``dead`` are ended too: a reclaimer that died
    half-way leaves nothing behind for long.
    """
    now = time.time() if now is None else now
    cutoff = now - dead_after_s
    silent = store.query(
        "SELECT id, esl_address, last_heartbeat FROM nodes WHERE state != 'dead' AND last_heartbeat < ?"
        " AND id != ?", (cutoff, by_node))
    out: list[Reclaimed] = []
    unreachable = []
    for row in silent:
        # Outside any transaction: asking a FreeSWITCH takes network time.
        live = probe(str(row["esl_address"])) if probe is not None else None
        if live is None:
            unreachable.append(row)
            continue
        ended = reconcile(store, live, now=now, grace_s=grace_s, node_id=str(row["id"]),
                          include_unowned=False)
        for leg in ended:
            _log("leg_reclaimed", node_id=row["id"], call_uuid=leg.call_uuid, leg_id=leg.leg_id,
                 session_id=leg.session_id, by_node=by_node, cause="LOST_CHANNEL")
        if ended:
            out.append(Reclaimed(str(row["id"]), float(row["last_heartbeat"]), tuple(ended)))
    with store.transaction() as conn:
        for row in unreachable:
            claimed = conn.execute("UPDATE nodes SET state = 'dead' WHERE id = ? AND state != 'dead'"
                                   " AND last_heartbeat < ?", (row["id"], cutoff)).rowcount
            if claimed:
                _log("node_declared_dead", node_id=row["id"], by_node=by_node,
                     silent_s=round(now - float(row["last_heartbeat"]), 3), freeswitch_answered=False)
        dead_legs = conn.execute(
            "SELECT l.call_uuid, n.id AS node_id, n.last_heartbeat FROM call_legs l"
            " JOIN nodes n ON n.id = l.node_id"
            " WHERE n.state = 'dead' AND n.id != ? AND l.ended_at IS NULL ORDER BY l.created_at",
            (by_node,)).fetchall()
    by_dead: dict[str, tuple[float, list[LegEnded]]] = {}
    for leg in dead_legs:
        # One transaction per leg (end_leg): its session ends and session.ended is queued as
        # for any other lost leg; end_leg is idempotent. Only legs of nodes dead at the read
        # above are ended (a node back since then keeps the legs it admitted afterwards).
        ended = end_leg(store, leg["call_uuid"], hangup_cause=NODE_LOST_CAUSE, now=now,
                        end_reason="node_lost", force_session_end=True)
        entry = by_dead.setdefault(leg["node_id"], (float(leg["last_heartbeat"]), []))
        if ended is not None:
            entry[1].append(ended)
            _log("leg_reclaimed", node_id=leg["node_id"], call_uuid=leg["call_uuid"], leg_id=ended.leg_id,
                 session_id=ended.session_id, by_node=by_node, cause=NODE_LOST_CAUSE)
    return out + [Reclaimed(node_id, last, tuple(legs)) for node_id, (last, legs) in by_dead.items()]


def end_own_legs(store: Store, node_id: str, *, now: float | None = None,
                 silent_s: float = 0.0) -> list[LegEnded]:
    """This node's FreeSWITCH has not answered for the window: its calls died with it (calls live in
    FreeSWITCH), so every live leg of the node ends (``NODE_LOST``, ``node_lost``), its session too."""
    now = time.time() if now is None else now
    legs = store.query("SELECT call_uuid FROM call_legs WHERE node_id = ? AND ended_at IS NULL"
                       " ORDER BY created_at", (node_id,))
    out = []
    for leg in legs:
        ended = end_leg(store, leg["call_uuid"], hangup_cause=NODE_LOST_CAUSE, now=now,
                        end_reason="node_lost", force_session_end=True)
        if ended is not None:
            out.append(ended)
            _log("leg_reclaimed", node_id=node_id, call_uuid=leg["call_uuid"], leg_id=ended.leg_id,
                 session_id=ended.session_id, by_node=node_id, cause=NODE_LOST_CAUSE)
    if out:
        _log("own_freeswitch_lost", node_id=node_id, silent_s=round(silent_s, 3), legs_ended=len(out))
    return out


def _log(event: str, **fields: object) -> None:
    log.info(json.dumps({"event": event, **fields}, separators=(",", ":")))

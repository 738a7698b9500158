"""Which FreeSWITCH an API action goes to when several nodes share the store.

The API process has one configured ESL address (KALLGLOT_ESL_HOST/PORT). With nodes, a leg's
``call_legs.node_id`` names the FreeSWITCH that carries it, and the ``nodes`` table that node's
ESL address. Everything here falls back to the configured address when there is nothing better
(no node recorded, node unknown): a single-node install behaves exactly as before nodes existed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from controller.settings import Settings
from controller.store import Store


@dataclass(frozen=True)
class EslTarget:
    """One FreeSWITCH event socket: ``node_id`` None means the configured default."""

    host: str
    port: int
    node_id: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_dict(self) -> dict[str, object]:
        return {"id": self.node_id, "esl_address": self.address}


def default_target(settings: Settings) -> EslTarget:
    return EslTarget(settings.esl_host, settings.esl_port, None)


def parse_esl_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as the nodes table stores it; ValueError when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not an ESL address (host:port): {address[:80]!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _node_target(node_id: str, esl_address: str) -> EslTarget | None:
    try:
        host, port = parse_esl_address(esl_address)
    except ValueError:
        return None
    return EslTarget(host, port, node_id)


def target_for_node(store: Store, settings: Settings, node_id: str | None) -> EslTarget:
    """The ESL address of ``node_id``'s FreeSWITCH; the configured one when the node is None or
    unknown (or recorded with an address that does not parse)."""
    if not node_id:
        return default_target(settings)
    row = store.query_one("SELECT esl_address FROM nodes WHERE id = ?", (node_id,))
    target = _node_target(node_id, str(row["esl_address"])) if row is not None else None
    return target or default_target(settings)


def targets_for_calls(store: Store, settings: Settings, call_uuids: Sequence[str]
                      ) -> dict[EslTarget, list[str]]:
    """Group call uuids by the FreeSWITCH that holds them (order kept within each group)."""
    if not call_uuids:
        return {}
    marks = ",".join("?" * len(call_uuids))
    rows = store.query(
        f"SELECT l.call_uuid, l.node_id, n.esl_address FROM call_legs l"  # noqa: S608 -- placeholders only
        f" LEFT JOIN nodes n ON n.id = l.node_id WHERE l.call_uuid IN ({marks})", tuple(call_uuids))
    where: dict[str, EslTarget] = {}
    for row in rows:
        target = None
        if row["node_id"] and row["esl_address"]:
            target = _node_target(str(row["node_id"]), str(row["esl_address"]))
        where[str(row["call_uuid"])] = target or default_target(settings)
    out: dict[EslTarget, list[str]] = {}
    for call_uuid in call_uuids:
        out.setdefault(where.get(call_uuid) or default_target(settings), []).append(call_uuid)
    return out


def choose_dial_node(store: Store, settings: Settings, session_id: str, *,
                     now: float | None = None) -> str | None:
    """The node a new outbound leg of ``session_id`` is originated on.

    1. the node holding the session's other live leg, while it is healthy (both legs on one
       FreeSWITCH: one hop less for media, and one node's loss ends one session, not two);
    2. this API's own node (KALLGLOT_NODE_ID) when healthy and in the session's region;
    3. the healthy node of the session's region carrying the fewest live legs (ties: by id);
    4. this API's own node id, or None: the configured ESL address, as on a single node.

    Healthy: state ``up`` and a heartbeat within KALLGLOT_NODE_DEAD_AFTER_S.
    """
    now = time.time() if now is None else now
    fresh_after = now - settings.node_dead_after_s
    healthy = "n.state = 'up' AND n.last_heartbeat >= ?"
    other = store.query_one(
        f"SELECT n.id FROM call_legs l JOIN nodes n ON n.id = l.node_id"  # noqa: S608 -- fixed clause
        f" WHERE l.session_id = ? AND l.ended_at IS NULL AND {healthy} ORDER BY l.created_at LIMIT 1",
        (session_id, fresh_after))
    if other is not None:
        return str(other["id"])
    session = store.query_one("SELECT region FROM sessions WHERE id = ?", (session_id,))
    region = str(session["region"]) if session is not None and session["region"] else None
    own = settings.node_id or None
    if region is not None:
        rows = store.query(
            f"SELECT n.id, (SELECT COUNT(*) FROM call_legs l WHERE l.node_id = n.id"  # noqa: S608
            f" AND l.ended_at IS NULL) AS live FROM nodes n WHERE n.region = ? AND {healthy}"
            " ORDER BY live, n.id", (region, fresh_after))
        ids = [str(r["id"]) for r in rows]
        if own in ids:
            return own
        if ids:
            return ids[0]
    return own


def reload_targets(store: Store, settings: Settings) -> tuple[list[EslTarget], list[dict[str, object]]]:
    """The FreeSWITCHes ``/admin/reload`` tells, and the nodes it leaves out (with why).

    Every ``up`` node at its registered ESL address; with no ``up`` node (a single-node install
    whose controller has not registered, or none at all), or with KALLGLOT_RELOAD_NODES=local
    (each node renders a conf dir of its own), the configured address alone.
    """
    if settings.reload_nodes == "local":
        return [default_target(settings)], []
    rows = store.query("SELECT id, esl_address, state FROM nodes ORDER BY id")
    targets: list[EslTarget] = []
    skipped: list[dict[str, object]] = []
    for row in rows:
        node_id, address, state = str(row["id"]), str(row["esl_address"]), str(row["state"])
        if state != "up":
            skipped.append({"id": node_id, "esl_address": address, "state": state})
            continue
        target = _node_target(node_id, address)
        if target is None:
            skipped.append({"id": node_id, "esl_address": address, "state": state,
                            "error": "esl_address is not host:port"})
            continue
        targets.append(target)
    if not targets:
        return [default_target(settings)], skipped
    return targets, skipped

"""The controller's node loop: register, heartbeat, reclaim the slots of dead nodes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from controller.cluster.nodes import (
    NodeInfo,
    Probe,
    end_own_legs,
    heartbeat,
    mark_stopped,
    reclaim_dead_nodes,
    register,
)
from controller.store import DatabaseError, Store

log = logging.getLogger("kallglot.cluster")


class _Stop(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...  # True once stopping


class NodeAgent:
    """Runs in its own greenlet (or thread): every ``heartbeat_s`` a heartbeat, then a reclaim
    pass. A store error is logged and retried at the next beat: the node's calls go on."""

    def __init__(self, store: Store, node: NodeInfo, *, heartbeat_s: float, dead_after_s: float,
                 clock: Callable[[], float] = time.time, probe: Probe | None = None) -> None:
        self.store = store
        self.node = node
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        self.clock = clock
        self.probe = probe  # asks a silent node's FreeSWITCH for its calls (controller: over ESL)
        self.beats = 0
        self.switch_answered_at = clock()  # when this node's own FreeSWITCH last answered

    def start(self) -> None:
        register(self.store, self.node, now=self.clock())
        self.switch_answered_at = self.clock()

    def beat(self) -> None:
        state = heartbeat(self.store, self.node.id, now=self.clock())
        if state is None or state == "dead":
            # Declared dead while silent (its legs were reclaimed), or its row was removed.
            log.warning(json.dumps({"event": "node_was_declared_dead" if state else "node_row_missing",
                                    "node_id": self.node.id}, separators=(",", ":")))
            if state is None:
                register(self.store, self.node, now=self.clock())
        self.check_own_switch()
        reclaim_dead_nodes(self.store, by_node=self.node.id, dead_after_s=self.dead_after_s, now=self.clock(),
                           probe=self.probe)
        self.beats += 1

    def check_own_switch(self) -> None:
        """A controller that outlives its FreeSWITCH keeps beating, so no other node reclaims its
        legs, and its own reconciliation cannot ask the switch: the slots of calls that died with
        the switch would stay taken until it came back. After the same window without an answer
        from its own FreeSWITCH, the node frees them itself, as another node would for a silent one."""
        if self.probe is None:
            return
        now = self.clock()
        if self.probe(self.node.esl_address) is not None:
            self.switch_answered_at = now
            return
        if now - self.switch_answered_at >= self.dead_after_s:
            end_own_legs(self.store, self.node.id, now=now, silent_s=now - self.switch_answered_at)

    def run(self, stopping: _Stop) -> None:
        while not stopping.wait(self.heartbeat_s):
            try:
                self.beat()
            except DatabaseError as exc:
                log.warning(json.dumps({"event": "node_heartbeat_failed", "node_id": self.node.id,
                                        "error": type(exc).__name__}, separators=(",", ":")))

    def stop(self) -> None:
        try:
            mark_stopped(self.store, self.node.id)
        except DatabaseError as exc:
            log.warning(json.dumps({"event": "node_stop_unrecorded", "node_id": self.node.id,
                                    "error": type(exc).__name__}, separators=(",", ":")))

"""Several controller nodes (one per FreeSWITCH) sharing one PostgreSQL store: the nodes table,
heartbeats, and reclaiming the call slots of a node that died (docs/multi-node.md)."""

from controller.cluster.agent import NodeAgent
from controller.cluster.nodes import (
    NodeInfo,
    Reclaimed,
    end_own_legs,
    heartbeat,
    list_nodes,
    mark_stopped,
    reclaim_dead_nodes,
    register,
)

__all__ = ["NodeAgent", "NodeInfo", "Reclaimed", "end_own_legs", "heartbeat", "list_nodes", "mark_stopped",
           "reclaim_dead_nodes", "register"]

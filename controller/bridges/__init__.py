"""Bridge pools per session region (KALLGLOT_BRIDGE_POOLS): which media bridge a session's legs
stream to. ``pool`` is the model and the choice rule (pure), ``health`` probes the bridges
(the transport), ``routing`` ties a session to its bridge in the store."""

from controller.bridges.pool import BridgePool, BridgeState
from controller.bridges.routing import BridgeRouter, NoBridge

__all__ = ["BridgePool", "BridgeRouter", "BridgeState", "NoBridge"]

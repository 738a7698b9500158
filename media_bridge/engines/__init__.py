"""Speech-to-speech engines behind one interface (:class:`media_bridge.engines.base.Engine`)."""

from __future__ import annotations

from media_bridge.config import BridgeConfig
from media_bridge.engines.base import Engine


def build_engine(config: BridgeConfig) -> Engine:
    """The engine ``KALLGLOT_ENGINE`` names (``offline`` by default)."""
    if config.engine == "passthrough":
        from media_bridge.engines.passthrough import PassthroughEngine

        return PassthroughEngine()
    from media_bridge.engines.offline import OfflineEngine

    return OfflineEngine(config)

"""The controller's bridge pools, from settings: the router calls use and the health checker."""

from __future__ import annotations

from dataclasses import dataclass

import gevent
import gevent.event

from controller.bridges.health import HealthChecker
from controller.bridges.pool import BridgePool
from controller.bridges.routing import BridgeRouter
from controller.settings import Settings, parse_bridge_pools
from controller.store import Store


@dataclass
class BridgePools:
    router: BridgeRouter
    checker: HealthChecker

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> BridgePools | None:
        """None when KALLGLOT_BRIDGE_POOLS is unset: KALLGLOT_BRIDGE_URL serves every region."""
        regions = parse_bridge_pools(settings.bridge_pools)
        if not regions:
            return None
        pool = BridgePool(regions)
        return cls(BridgeRouter(store, pool), HealthChecker(pool, settings.bridge_health_interval_s))

    def start(self, stopping: gevent.event.Event) -> gevent.Greenlet:
        """Probe once before calls are taken (no call is refused for want of a first probe),
        then every interval until ``stopping``."""
        self.checker.check_once()
        return gevent.spawn(self.checker.run, stopping)

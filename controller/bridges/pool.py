"""The bridges of each region, their health and load, and the choice rule. Pure: no I/O, no clock.

Choice: among the region's healthy bridges, the least loaded wins; equal loads take turns
(round robin per region, in the configured order). Load is the leg count the bridge reported
in its last ``/healthz`` plus the legs this controller sent it since then — without the second
term every call between two probes would land on the same bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class BridgeState:
    url: str
    # None until the first probe answered or failed: such a bridge is not chosen.
    healthy: bool | None = None
    reported_legs: int = 0
    sent_since_probe: int = 0
    error: str | None = None

    @property
    def load(self) -> int:
        return self.reported_legs + self.sent_since_probe


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    legs: int = 0
    error: str | None = None


class BridgePool:
    """Region → bridge URLs (a URL may serve several regions; its state is kept once)."""

    def __init__(self, regions: Mapping[str, tuple[str, ...]]) -> None:
        self.regions: dict[str, tuple[str, ...]] = {r: tuple(urls) for r, urls in regions.items()}
        self.states: dict[str, BridgeState] = {
            url: BridgeState(url) for urls in self.regions.values() for url in urls}
        self._turn: dict[str, int] = {}

    @property
    def urls(self) -> list[str]:
        return list(self.states)

    def is_healthy(self, url: str) -> bool:
        state = self.states.get(url)
        return bool(state and state.healthy)

    def record_probe(self, url: str, result: ProbeResult) -> bool:
        """Store a probe's outcome; True when the bridge's health changed (worth a log line)."""
        state = self.states[url]
        changed = state.healthy is not result.healthy
        state.healthy = result.healthy
        state.error = result.error
        state.sent_since_probe = 0
        if result.healthy:
            state.reported_legs = result.legs
        return changed

    def note_sent(self, url: str) -> None:
        """A leg was sent to ``url``: counts as load until the next probe reports it."""
        state = self.states.get(url)
        if state is not None:
            state.sent_since_probe += 1

    def choose(self, region: str) -> str | None:
        """The least-loaded healthy bridge of ``region`` (ties in turn), or None."""
        healthy = [self.states[u] for u in self.regions.get(region, ()) if self.states[u].healthy]
        if not healthy:
            return None
        least = min(s.load for s in healthy)
        tied = [s.url for s in healthy if s.load == least]
        turn = self._turn.get(region, 0)
        self._turn[region] = turn + 1
        return tied[turn % len(tied)]

    def describe(self, region: str) -> list[dict[str, object]]:
        """The region's bridges as a log line shows them."""
        return [{"url": u, "healthy": self.states[u].healthy, "legs": self.states[u].load,
                 "error": self.states[u].error} for u in self.regions.get(region, ())]

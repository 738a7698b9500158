"""Which bridge a session's legs stream to, kept on the session row (``sessions.bridge_url``).

The bridge pairs a session's legs in its memory, so both legs must reach the same bridge — also
when they arrive on different controllers (nodes) sharing the store. The first leg chooses
(least-loaded healthy bridge of the session's region) and stores the choice under the store's
write lock; later legs and stream re-starts use the stored bridge while it is healthy, or while
the other leg is streaming to it (then it is up, whatever the last probe said). Otherwise a new
bridge is chosen and stored, and the other leg follows it on its next stream re-start.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.bridges.pool import BridgePool
from controller.store import Store


@dataclass(frozen=True)
class BridgeRoute:
    region: str
    url: str | None  # None: no healthy bridge in the region


class NoBridge(Exception):
    """No healthy bridge serves the session's region."""

    def __init__(self, route: BridgeRoute) -> None:
        super().__init__(f"no healthy bridge in region {route.region}")
        self.route = route


class BridgeRouter:
    def __init__(self, store: Store, pool: BridgePool) -> None:
        self.store = store
        self.pool = pool

    def route(self, session_id: str, leg_id: str) -> BridgeRoute:
        """The bridge for ``leg_id`` of ``session_id`` (its choice stored); ``url`` None if none."""
        row = self.store.query_one("SELECT region, bridge_url FROM sessions WHERE id = ?", (session_id,))
        region = str(row["region"]) if row is not None else ""
        if row is not None and self._keep(region, row["bridge_url"], session_id, leg_id):
            url: str | None = row["bridge_url"]
        else:
            with self.store.transaction() as conn:  # the write lock: one choice per session
                row = conn.execute("SELECT region, bridge_url FROM sessions WHERE id = ?",
                                   (session_id,)).fetchone()
                if row is None:
                    return BridgeRoute(region, None)
                region, url = str(row["region"]), row["bridge_url"]
                if not self._keep(region, url, session_id, leg_id):
                    url = self.pool.choose(region)
                    if url is not None:
                        conn.execute("UPDATE sessions SET bridge_url = ? WHERE id = ?", (url, session_id))
        if url is not None:
            self.pool.note_sent(url)
        return BridgeRoute(region, url)

    def _keep(self, region: str, url: str | None, session_id: str, leg_id: str) -> bool:
        if not url or url not in self.pool.regions.get(region, ()):
            return False
        if self.pool.is_healthy(url):
            return True
        peer = self.store.query_one(
            "SELECT 1 FROM call_legs WHERE session_id = ? AND id != ? AND ended_at IS NULL"
            " AND status = 'streaming' LIMIT 1", (session_id, leg_id))
        return peer is not None

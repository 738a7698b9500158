"""Live calls and the call cap per organization, read from the store at scrape time.

The store is what admission counts against (a session with a live leg, ``call_legs.ended_at IS
NULL``, holds one slot), so these gauges are exact across every process sharing it and need no
bookkeeping in call logic. ``kallglot_org_live_calls / kallglot_org_call_cap`` is "calls vs cap".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.store import DatabaseError, Store

log = logging.getLogger("kallglot.metrics.store")

# Every organization has a sip_settings row (created with it), which holds its cap.
ORG_CALLS_SQL = """
    SELECT s.org_id, s.max_concurrent_calls AS cap, COALESCE(l.live, 0) AS live
      FROM sip_settings s
      LEFT JOIN (SELECT org_id, COUNT(DISTINCT session_id) AS live FROM call_legs
                  WHERE ended_at IS NULL GROUP BY org_id) l ON l.org_id = s.org_id
     ORDER BY s.org_id
"""


class OrgCallsCollector(Collector):
    """``kallglot_org_live_calls{org}`` and ``kallglot_org_call_cap{org}``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        live = GaugeMetricFamily("kallglot_org_live_calls",
                                 "Sessions of the organization with a live call leg (what its cap counts)",
                                 labels=["org"])
        cap = GaugeMetricFamily("kallglot_org_call_cap", "The organization's max_concurrent_calls",
                                labels=["org"])
        return live, cap

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live, cap = self._families()
        try:
            rows = self.store.query(ORG_CALLS_SQL)
        except DatabaseError as exc:
            # A scrape must not fail for a busy store: the series are absent this time.
            log.warning("org call gauges skipped: %s", exc)
            rows = []
        for row in rows:
            live.add_metric([row["org_id"]], float(row["live"]))
            cap.add_metric([row["org_id"]], float(row["cap"]))
        yield live
        yield cap

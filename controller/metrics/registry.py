"""The controller's own registry: the process's metrics only (a test process may hold several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

# The org label when a call cannot be tied to an organization (e.g. no SIP user resolved).
UNKNOWN_ORG = "unknown"

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)


def org_label(org_id: str | None) -> str:
    return org_id or UNKNOWN_ORG

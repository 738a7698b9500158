"""The controller process's Prometheus metrics (the SIP operations checklist, docs/operations.md).

Call logic calls the small ``record_*``/``observe_*`` functions below and never imports
prometheus_client; ``serve_metrics`` exposes ``REGISTRY`` over HTTP (``GET /metrics``).
"""

from controller.metrics.calls import (
    observe_call_setup,
    record_call_admitted,
    record_call_refused,
    record_stream_failure,
    record_stream_retry,
)
from controller.metrics.http import MetricsServer, serve_metrics
from controller.metrics.quality import observe_call_quality, record_rtp_timeout
from controller.metrics.registry import REGISTRY, UNKNOWN_ORG
from controller.metrics.sip_auth import SIP_AUTH_EVENTS, SipAuthWatcher
from controller.metrics.store_gauges import OrgCallsCollector

__all__ = [
    "REGISTRY",
    "SIP_AUTH_EVENTS",
    "UNKNOWN_ORG",
    "MetricsServer",
    "OrgCallsCollector",
    "SipAuthWatcher",
    "observe_call_quality",
    "observe_call_setup",
    "record_call_admitted",
    "record_call_refused",
    "record_rtp_timeout",
    "record_stream_failure",
    "record_stream_retry",
    "serve_metrics",
]

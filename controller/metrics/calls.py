"""Call admission, setup latency and media-stream metrics, filled by controller/calls/call_handler.py."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from controller.metrics.registry import REGISTRY, org_label

# A few ms (admission + answer on a quiet switch) up to the answer timeout (15 s by default).
SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# The label values record_stream_failure accepts; anything else is counted as "other" so that a
# caller's free text can never grow the series count.
STREAM_FAILURE_REASONS = frozenset({"start_refused", "bridge_refused", "bridge_closed", "no_bridge"})

CALL_SETUP = Histogram(
    "kallglot_call_setup_seconds",
    "From the call reaching the controller (outbound socket connected) to FreeSWITCH confirming the answer",
    ["direction"], buckets=SETUP_BUCKETS, registry=REGISTRY)
CALLS_ADMITTED = Counter(
    "kallglot_calls_admitted", "Call legs admitted by the controller", ["org"], registry=REGISTRY)
CALLS_REFUSED = Counter(
    "kallglot_calls_refused", "Call legs the controller refused, by the SIP code sent (respond)",
    ["org", "sip_code"], registry=REGISTRY)
STREAM_FAILURES = Counter(
    "kallglot_stream_failures",
    "Audio streams to the bridge that failed: start_refused (uuid_audio_stream said -ERR), "
    "bridge_refused (::error), bridge_closed (::disconnect), "
    "no_bridge (no healthy bridge in the session's region)",
    ["reason"], registry=REGISTRY)
STREAM_RETRIES = Counter(
    "kallglot_stream_retries", "Audio streams re-started after a failure", registry=REGISTRY)


def observe_call_setup(seconds: float, direction: str = "inbound") -> None:
    """One answered call: ``seconds`` from the controller taking the call to the answer confirmed."""
    CALL_SETUP.labels("outbound" if direction == "outbound" else "inbound").observe(max(0.0, seconds))


def record_call_admitted(org_id: str | None) -> None:
    CALLS_ADMITTED.labels(org_label(org_id)).inc()


def record_call_refused(org_id: str | None, sip_code: int) -> None:
    CALLS_REFUSED.labels(org_label(org_id), str(int(sip_code))).inc()


def record_stream_failure(reason: str) -> None:
    STREAM_FAILURES.labels(reason if reason in STREAM_FAILURE_REASONS else "other").inc()


def record_stream_retry() -> None:
    STREAM_RETRIES.inc()

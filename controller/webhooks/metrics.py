"""Prometheus metrics of webhook delivery (prometheus_client's default REGISTRY, served by the
process's /metrics route where it has one)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OUTCOMES = ("delivered", "retry", "failed", "refused")

# One increment per attempt: delivered (2xx), retry (failed, another attempt is scheduled),
# failed (the last scheduled attempt failed), refused (the address policy refused the target;
# no connection was made; retried on the schedule like any failed attempt).
DELIVERIES = Counter(
    "kallglot_webhook_deliveries_total",
    "Webhook delivery attempts by outcome",
    ["outcome"],
)
# Time from the start of an attempt to its response or failure (not counting refusals).
DELIVERY_SECONDS = Histogram(
    "kallglot_webhook_delivery_duration_seconds",
    "Duration of webhook delivery attempts",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

for _outcome in OUTCOMES:
    DELIVERIES.labels(outcome=_outcome)  # export every outcome from the start, at 0


def count(outcome: str) -> None:
    DELIVERIES.labels(outcome=outcome).inc()


def observe(seconds: float) -> None:
    DELIVERY_SECONDS.observe(seconds)

"""Probing the pooled bridges: ``GET <bridge>/healthz`` (media_bridge/server.py) every
KALLGLOT_BRIDGE_HEALTH_INTERVAL_S, all bridges at once, in a greenlet of the controller.

A bridge is healthy when it answers 200 with ``"status": "ok"`` in time; its load is the
``legs`` it reports. A bridge whose engine is still loading counts as healthy: it accepts legs
and translates once the models are in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit
from urllib.request import ProxyHandler, Request, build_opener

import gevent
import gevent.event

from controller.bridges.pool import BridgePool, ProbeResult

log = logging.getLogger("kallglot.bridges.health")

Probe = Callable[[str, float], ProbeResult]
# Straight to the bridge: an HTTP(S)_PROXY in the controller's environment must not answer for it.
_OPENER = build_opener(ProxyHandler({}))


def health_url(bridge_url: str) -> str:
    """``ws://h:p[/prefix]`` → ``http://h:p[/prefix]/healthz`` (``wss`` → ``https``)."""
    parts = urlsplit(bridge_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/healthz", "", ""))


def probe_bridge(bridge_url: str, timeout_s: float) -> ProbeResult:
    try:
        request = Request(health_url(bridge_url))  # noqa: S310 -- http(s) only, from a ws(s) URL
        with _OPENER.open(request, timeout=timeout_s) as resp:
            body = json.loads(resp.read(65536))
    except (OSError, ValueError) as exc:  # refused, timed out, HTTP error (URLError ⊂ OSError), bad JSON
        return ProbeResult(False, error=f"{type(exc).__name__}: {exc}"[:200])
    if not isinstance(body, dict) or body.get("status") != "ok":
        return ProbeResult(False, error=f"unhealthy answer: {str(body)[:120]}")
    try:
        legs = max(0, int(body.get("legs") or 0))
    except (TypeError, ValueError):
        legs = 0
    return ProbeResult(True, legs=legs)


class HealthChecker:
    def __init__(self, pool: BridgePool, interval_s: float, *, probe: Probe = probe_bridge,
                 timeout_s: float | None = None) -> None:
        self.pool = pool
        self.interval_s = interval_s
        # A probe must end before the next one is due.
        self.timeout_s = timeout_s if timeout_s is not None else min(2.0, interval_s)
        self._probe = probe
        self.rounds = 0

    def check_once(self) -> None:
        """Probe every bridge concurrently; log each bridge whose health changed."""
        urls = self.pool.urls
        jobs = [gevent.spawn(self._probe, url, self.timeout_s) for url in urls]
        gevent.joinall(jobs)
        for url, job in zip(urls, jobs, strict=True):
            result = job.value if job.successful() else ProbeResult(False, error=repr(job.exception)[:200])
            if self.pool.record_probe(url, result):
                record = {"event": "bridge_healthy" if result.healthy else "bridge_unhealthy", "bridge": url,
                          "legs": result.legs, "error": result.error}
                line = json.dumps(record, separators=(",", ":"))
                log.info(line) if result.healthy else log.warning(line)
        self.rounds += 1

    def run(self, stopping: gevent.event.Event) -> None:
        while not stopping.wait(self.interval_s):
            try:
                self.check_once()
            except Exception:  # never let the checker die: stale health would route calls wrongly
                log.exception("bridge health check failed")

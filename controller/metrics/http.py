"""The controller's ``GET /metrics`` listener: a gevent WSGI server (the controller is gevent)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("kallglot.metrics.http")


@dataclass
class MetricsServer:
    server: WSGIServer

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self.server.stop(timeout=1)


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> MetricsServer:
    """Start serving ``registry`` in the exposition format on host:port (0 = a free port); raises
    OSError when the address cannot be bound."""
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None, error_log=log)
    server.start()
    return MetricsServer(server)

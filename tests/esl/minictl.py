"""A minimal call controller for tests: our OutboundServer on gevent in a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.esl.outbound import OutboundCall, OutboundServer


class MiniController:
    """An OutboundServer on gevent in its own thread running ``handle`` per call."""

    def __init__(self, handle: Callable[[OutboundCall], None]) -> None:
        self.handle = handle
        self.errors: list[BaseException] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _wrapped(self, call: OutboundCall) -> None:
        try:
            self.handle(call)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def _run(self) -> None:
        import gevent

        server = OutboundServer("127.0.0.1", 0, self._wrapped)
        server.start()
        self.port = server.address[1]
        self._ready.set()
        while not self._stop.is_set():
            gevent.sleep(0.02)
        server.stop()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

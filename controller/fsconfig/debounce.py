"""Coalesces bursts of settings changes into one render + reload, run in a worker thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 1.0


class Debouncer:
    """``notify()`` schedules ``action`` ``delay`` seconds later; notifications arriving before it
    runs are folded into that run; one arriving while it runs schedules exactly one more."""

    def __init__(self, action: Callable[[], object], delay: float = DEFAULT_DELAY_S) -> None:
        self.action = action
        self.delay = delay
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._running = False
        self._dirty = False
        self._closed = False
        self.runs = 0

    def notify(self, *_: object) -> None:
        with self._lock:
            if self._closed:
                return
            if self._running:
                self._dirty = True
            elif self._timer is None:
                self._schedule()

    def _schedule(self) -> None:
        timer = threading.Timer(self.delay, self._fire)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
            self._running = True
        try:
            self.action()
        except Exception:
            log.exception("debounced config reload failed")
        finally:
            with self._lock:
                self.runs += 1
                self._running = False
                if self._dirty and not self._closed:
                    self._dirty = False
                    self._schedule()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

"""Coalesces bursts of settings changes into one render + reload, run in one worker thread.

One long-lived thread (not a thread per change) so that the ESL client's per-thread gevent hub
is created once and reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 1.0


class Debouncer:
    """``notify()`` schedules ``action`` ``delay`` seconds later; notifications arriving before it
    runs are folded into that run; one arriving while it runs schedules exactly one more."""

    def __init__(self, action: Callable[[], object], delay: float = DEFAULT_DELAY_S) -> None:
        self.action = action
        self.delay = delay
        self._cond = threading.Condition()
        self._due: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.runs = 0

    def notify(self, *_: object) -> None:
        with self._cond:
            if self._closed:
                return
            if self._due is None:
                self._due = time.monotonic() + self.delay
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="fsconfig-reload", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._due is None or time.monotonic() < self._due):
                    timeout = None if self._due is None else max(self._due - time.monotonic(), 0.0)
                    self._cond.wait(timeout)
                if self._closed:
                    return
                self._due = None
            try:
                self.action()
            except Exception:
                log.exception("debounced config reload failed")
            with self._cond:
                self.runs += 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no run is due (for shutdown and tests); True if idle in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._due is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

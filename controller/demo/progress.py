"""Progress for the long steps of ``kallglot demo``: a spinner with elapsed time on a terminal,
one plain line per step otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

FRAMES = "|/-\\"


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._label = ""
        self._started = 0.0
        self._frame = 0
        self._last_draw = 0.0

    def begin(self, label: str) -> None:
        self._label = label
        self._started = time.monotonic()
        self._frame = 0
        if not self.tty:
            print(f"… {label}", file=self.stream, flush=True)
        else:
            self.tick()

    def tick(self) -> None:
        """Redraw the spinner (at most ten times a second); a no-op when not a terminal."""
        if not self.tty or not self._label:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._frame = (self._frame + 1) % len(FRAMES)
        self.stream.write(f"\r{FRAMES[self._frame]} {self._label} ({now - self._started:4.1f} s)\033[K")
        self.stream.flush()

    def end(self, outcome: str = "done") -> float:
        elapsed = time.monotonic() - self._started if self._label else 0.0
        if self._label:
            if self.tty:
                self.stream.write(f"\r✓ {self._label}: {outcome} ({elapsed:.1f} s)\033[K\n")
            else:
                self.stream.write(f"  {self._label}: {outcome} ({elapsed:.1f} s)\n")
            self.stream.flush()
        self._label = ""
        return elapsed

    def clear(self) -> None:
        """Wipe a half-drawn spinner line before other output (e.g. an error message)."""
        if self.tty and self._label:
            self.stream.write("\r\033[K")
            self.stream.flush()

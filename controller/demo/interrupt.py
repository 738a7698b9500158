"""Ctrl-C for ``kallglot demo``, made reliable.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives;
when that is a finalizer (``__del__``, a weakref callback), the exception is printed as
"Exception ignored" and the demo carries on — seen once in CI: a Ctrl-C lost, the demo ran to
the end and exited 0. So the handler also records the signal, and the demo's waiting loops call
:func:`raise_if_interrupted`, which raises it (once) if it was swallowed.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_pending = threading.Event()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _pending.set()
    raise KeyboardInterrupt


def install() -> Any:
    """Install the SIGINT handler (main thread); returns the previous one for ``restore``."""
    _pending.clear()
    return signal.signal(signal.SIGINT, _on_sigint)


def restore(previous: Any) -> None:
    signal.signal(signal.SIGINT, previous)
    _pending.clear()


def raise_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that has not stopped the demo yet."""
    if _pending.is_set():
        _pending.clear()
        raise KeyboardInterrupt

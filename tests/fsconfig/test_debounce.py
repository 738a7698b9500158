"""The debouncer folds bursts into one run and never loses a change that arrives mid-run."""

from __future__ import annotations

import threading

from controller.fsconfig.debounce import Debouncer


def test_burst_is_one_run_and_a_change_during_a_run_gets_one_more() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def action() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            started.set()
            assert release.wait(10)

    debouncer = Debouncer(action, delay=0.01)
    for _ in range(50):
        debouncer.notify("org_x")
    assert started.wait(10)
    for _ in range(10):
        debouncer.notify("org_y")  # while the first run is busy
    release.set()
    with debouncer._cond:
        assert debouncer._cond.wait_for(lambda: debouncer.runs == 2, timeout=10)
    assert debouncer.wait_idle(10)
    debouncer.close()
    assert calls == [0, 1]


def test_closed_debouncer_ignores_notifications() -> None:
    calls: list[int] = []
    debouncer = Debouncer(lambda: calls.append(1), delay=0.01)
    debouncer.close()
    debouncer.notify("org_x")
    assert debouncer._thread is None and calls == []

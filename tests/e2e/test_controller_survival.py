"""A live call survives its controller: a crash (SIGKILL) or a graceful stop (SIGTERM, e.g. an
upgrade) of ``kallglot controller`` hangs up nobody.

Seen on a real FreeSWITCH 1.10.12 before: two translated calls up, the controller killed, and 3 s
later FreeSWITCH had 0 channels. Now the dialplan parks a call whose socket closed, its audio
stream still running; new calls get ``503`` with ``Retry-After`` while no controller listens; the
next controller adopts the parked calls, plays translations to them again, counts them against
the cap and ends them normally."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import numpy as np
import pytest

from controller.demo.audio import speak
from controller.demo.procs import wait_until
from controller.demo.run import SpeakOnCue
from tests.e2e.conftest import Edge
from tests.e2e.rtp import RATE, speech_span_s

LINE = "Hello, I would like to change the delivery address of my order."
GAP_S = 10.0


def _controller(edge: Edge) -> Any:
    return next(s for s in reversed(edge.stack.services.services) if s.name == "controller")


def _log_events(service: Any, event: str) -> list[dict[str, Any]]:
    found = []
    for line in service.log_path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start >= 0 and f'"event":"{event}"' in line:
            found.append(json.loads(line[start:]))
    return found


def _say(edge: Edge, call: Any, text: str) -> None:
    if edge.backend == "freeswitch":
        silence = np.zeros(RATE // 2, np.int16)
        pcm = np.frombuffer(speak(text, "en", rate=RATE), dtype="<i2")
        call.rtp.say(np.concatenate([silence, pcm, silence]))
    else:
        voice = SpeakOnCue(speak(text, "en"))
        edge.stack.fs.stream(call.uuid).source = voice
        voice.cue()


def _clips_heard(edge: Edge, call: Any) -> int:
    if edge.backend == "freeswitch":
        return sum(1 for clip in call.rtp.clips() if speech_span_s(clip) > 0.5)
    return sum(1 for p in edge.stack.fs.played_audio(call.uuid) if p.ended is not None)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_calls_survive_the_controller_and_are_adopted_by_the_next(edge: Edge, how: signal.Signals) -> None:
    edge.configure(max_concurrent_calls=1)
    sid = edge.new_session()
    rtp = {"rtp": True} if edge.backend == "freeswitch" else {}
    customer = edge.stack.place_call(sid, headers={"X-Kallglot-Role": "customer"}, **rtp,
                                     **edge.acme.credentials())
    agent = edge.stack.place_call(sid, headers={"X-Kallglot-Role": "agent"}, **rtp, **edge.acme.credentials())
    assert (customer.code, agent.code) == (200, 200)
    try:
        edge.wait_session_status(sid, "active")
        wait_until("both channels listed", lambda: edge.live_channels() == 2, 5)

        old = _controller(edge)
        os.kill(old.proc.pid, how)
        assert old.proc.wait(timeout=15) in (0, -signal.SIGKILL)
        gone_at = time.monotonic()
        if how == signal.SIGTERM:
            mine = [e for e in _log_events(old, "call_handed_over") if e["session_id"] == sid]
            assert len(mine) == 2
            assert not [e for e in _log_events(old, "call_ended") if e["session_id"] == sid]

        # New calls while no controller listens: 503 with Retry-After, no slot taken.
        for _ in range(3):
            refused = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
            got = (refused.code, refused.headers.get("Retry-After"))
            assert got == (503, "5"), (refused.code, refused.reason)

        time.sleep(max(0.0, GAP_S - (time.monotonic() - gone_at)))
        assert edge.live_channels() == 2, "a caller was cut off while the controller was away"
        assert edge.stack.api_ok("GET", f"/v1/sessions/{sid}")["status"] == "active"

        new = edge.stack.services.start("controller")
        wait_until("the new controller to adopt both calls",
                   lambda: len([e for e in _log_events(new, "call_adopted") if e["session_id"] == sid]) == 2,
                   20, alive=[new])

        heard_before = _clips_heard(edge, agent)
        _say(edge, customer, LINE)
        wait_until("the agent to hear the customer again",
                   lambda: _clips_heard(edge, agent) > heard_before, 40, alive=[new])
    finally:
        customer.hangup()
        agent.hangup()
    edge.wait_session_status(sid, "ended", timeout=15)
    # The cap (1) is free again: the burst leaked no slot, the adopted session released its own.
    after = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
    assert after.code == 200, (after.code, after.reason)
    after.hangup()
    assert after.wait_ended(10)
    edge.configure()

"""Call quality per leg, measured by FreeSWITCH (its RTP statistics at hangup) and shown in the
session resource and ``session.ended``; a caller whose RTP stops is hung up (MEDIA_TIMEOUT).

On the real switch the caller is tests/e2e/rtp.py sending real RTP with packets dropped and
delayed on purpose; the double reports what its CallSpec says the caller did."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.demo.procs import Service, wait_until
from tests.e2e.conftest import Edge

CUSTOMER = {"X-Kallglot-Role": "customer"}


def _listening(controller: Service) -> bool:
    return '"event": "listening"' in controller.log_path.read_text(errors="replace")


def _controller(edge: Edge) -> Service:
    return next(s for s in reversed(edge.stack.services.services) if s.name == "controller")


@pytest.fixture
def media_timeout_2s(edge: Edge) -> Iterator[None]:
    """The edge's controller, restarted with KALLGLOT_MEDIA_TIMEOUT_S=2 for one test (SIGTERM
    hands nothing over: no call is up between tests), then as it was."""

    def restart(extra: dict[str, str]) -> None:
        old = _controller(edge)
        os.kill(old.proc.pid, signal.SIGTERM)
        old.proc.wait(timeout=15)
        new = edge.stack.services.start("controller", extra_env=extra)
        # Listening before the next INVITE (FreeSWITCH answers 503 meanwhile).
        wait_until("the controller to listen", lambda: _listening(new), 20)

    restart({"KALLGLOT_MEDIA_TIMEOUT_S": "2"})
    try:
        yield
    finally:
        restart({})


def _leg(edge: Edge, session_id: str) -> dict[str, Any]:
    [leg] = edge.stack.api_ok("GET", f"/v1/sessions/{session_id}", key=edge.acme.key)["legs"]
    return leg


def test_lossy_caller_quality_reaches_the_session(edge: Edge) -> None:
    edge.configure(allowed_codecs=["PCMU"])
    sid = edge.new_session()
    call = edge.stack.place_call(sid, headers=CUSTOMER, codecs=("PCMU",), rtp_loss_pct=10.0,
                                 rtp_jitter_ms=8.0, **edge.acme.credentials())
    assert call.code == 200, (call.code, call.reason)
    try:
        edge.wait_session_status(sid, "active")
        time.sleep(6.0)  # FreeSWITCH refreshes its loss rate every 5 s of media
    finally:
        call.hangup()
    edge.wait_session_status(sid, "ended")
    leg = _leg(edge, sid)
    quality = leg["quality"]
    assert quality is not None, leg
    assert quality["codec"] == "PCMU" and quality["media_flowed"] and not quality["rtp_timeout"]
    # ≈6.5 s of 20 ms packets from answer to BYE, one in ten never arrived: each costs 3 flaws.
    assert 270 <= quality["packets_received"] <= 360, quality
    assert quality["flaws"] == pytest.approx(3 * quality["packets_received"] / 9, rel=0.15), quality
    assert quality["packet_loss_pct"] == pytest.approx(11.0, abs=2.0), quality  # lost / received
    assert 2.5 < quality["mos"] < 4.0, quality
    assert quality["jitter_max_ms"] >= quality["jitter_min_ms"] > 0, quality
    print(f"\n[{edge.backend}] leg quality: {quality}")


def test_caller_whose_rtp_stops_is_hung_up_with_media_timeout(edge: Edge, media_timeout_2s: None) -> None:
    edge.configure()
    sid = edge.new_session()
    call = edge.stack.place_call(sid, headers=CUSTOMER, codecs=("PCMU",), rtp_stops_after_s=1.0,
                                 **edge.acme.credentials())
    assert call.code == 200, (call.code, call.reason)
    started = time.monotonic()
    if edge.backend == "freeswitch":
        assert call.wait_switch_bye(15), "FreeSWITCH never hung up the silent caller"
    else:
        assert call.wait_ended(15) and call.bye_from_switch
    took = time.monotonic() - started
    edge.wait_session_status(sid, "ended")
    leg = _leg(edge, sid)
    assert leg["hangup_cause"] == "MEDIA_TIMEOUT", leg
    assert leg["quality"]["rtp_timeout"] and leg["quality"]["media_flowed"], leg
    print(f"\n[{edge.backend}] hung up {took:.1f} s after answer (RTP stopped at 1 s, timeout 2 s): "
          f"{leg['quality']}")

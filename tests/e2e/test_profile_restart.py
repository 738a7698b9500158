"""A reload that restarts the SIP profile answers only once the profile serves again.

Seen on a real FreeSWITCH 1.10.12: ``sofia profile kallglot restart`` answers at once, then the
profile is gone from ``sofia status`` for ~2 s, and a call placed right after the reload had
answered got ``503 Maximum Calls In Progress`` or no answer at all."""

from __future__ import annotations

from tests.e2e.conftest import Edge


def test_a_call_placed_the_moment_a_restart_reload_answers_is_answered(edge: Edge) -> None:
    edge.configure()
    for _ in range(2):  # the second restart also waits out FreeSWITCH's 10-second restart rule
        outcome = edge.stack.reload(restart_profile=True)
        assert outcome["restarted"] is True
        assert [c["command"] for c in outcome["commands"]][-1] == "sofia profile kallglot restart"
        assert outcome["profile_ready_ms"] > 0 and outcome["profile_transports"] == ["tcp", "tls", "udp"]
        call = edge.stack.place_call(edge.new_session(), **edge.acme.credentials())
        assert (call.code, call.reason) == (200, "OK"), (call.code, call.reason, call.transport_error)
        call.hangup()
        assert call.wait_ended(10)

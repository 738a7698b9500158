"""mod_audio_stream's first audio frame can beat its metadata frame to the bridge (the metadata
goes out from the websocket's open callback, the audio from the media thread as soon as the
socket reports connected). Seen on a real FreeSWITCH 1.10.12: the bridge closed such a leg
4400 and that caller was never translated. The double reproduces the race on demand."""

from __future__ import annotations

import pytest

from controller.demo.audio import speak
from controller.demo.procs import wait_until
from controller.demo.run import SpeakOnCue
from tests.e2e.conftest import Edge


def test_audio_ahead_of_the_metadata_still_reaches_the_other_party(edge: Edge) -> None:
    if edge.backend != "double":
        pytest.skip("the real switch races by itself, now and then; the double races every time")
    edge.configure()
    edge.stack.fs.audio_before_metadata = 3
    try:
        sid = edge.new_session()
        creds = edge.acme.credentials()
        customer = edge.stack.place_call(sid, headers={"X-Kallglot-Role": "customer"}, **creds)
        agent = edge.stack.place_call(sid, headers={"X-Kallglot-Role": "agent"}, **creds)
        assert (customer.code, agent.code) == (200, 200)
        edge.wait_session_status(sid, "active")
        voice = SpeakOnCue(speak("Hello, I would like to change my address.", "en"))
        edge.stack.fs.stream(customer.uuid).source = voice
        voice.cue()
        wait_until("the agent to hear the customer",
                   lambda: any(p.ended is not None for p in edge.stack.fs.played_audio(agent.uuid)), 30)
        customer.hangup()
        agent.hangup()
        edge.wait_session_status(sid, "ended")
    finally:
        edge.stack.fs.audio_before_metadata = 0

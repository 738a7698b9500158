"""Audio over real RTP through a real FreeSWITCH: what one party says reaches the other party.

The callers are tests/e2e/sip_ua.py with tests/e2e/rtp.py (G.711 at 8 kHz, a packet every 20 ms
for the whole call, like a phone). The double has no RTP (its audio path is checked by
tests/e2e/test_demo.py), so these run on the real switch only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from controller.demo.audio import speak
from controller.demo.run import AGENT_LINE, CUSTOMER_LINE
from controller.demo.stack import DemoStack
from media_bridge.engines.tts_espeak import EspeakTTS
from tests.e2e.conftest import Edge, Tenant, _tenant
from tests.e2e.rtp import RATE, speech_span_s

SILENCE = np.zeros(RATE // 2, dtype=np.int16)  # 0.5 s


def _voice(text: str, language: str) -> np.ndarray:
    """``text`` spoken at 8 kHz, with half a second of silence on either side."""
    pcm = np.frombuffer(speak(text, language, rate=RATE), dtype="<i2")
    return np.concatenate([SILENCE, pcm, SILENCE])


def _wait_heard(call: object, timeout: float, min_clips: int = 1) -> np.ndarray:
    """What ``call`` heard, once ``min_clips`` clips with speech arrived and then 1.5 s in which
    nothing new did (FreeSWITCH sends RTP only while it plays something)."""
    rtp = call.rtp  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spoken = [c for c in rtp.clips() if speech_span_s(c) > 0.5]
        quiet = not rtp.packets or time.monotonic() - rtp.packets[-1].arrival > 1.5
        if len(spoken) >= min_clips and quiet:
            return rtp.heard()
        time.sleep(0.1)
    raise AssertionError(f"heard {len(rtp.clips())} clip(s), {speech_span_s(rtp.heard()):.2f} s of speech, "
                         f"within {timeout:g} s; {min_clips} expected")


def _two_legs(stack: DemoStack, session_id: str, tenant: Tenant) -> tuple[object, object]:
    legs = []
    for role in ("customer", "agent"):
        call = stack.place_call(session_id, rtp=True, headers={"X-Kallglot-Role": role},
                                **tenant.credentials())
        assert call.code == 200, (role, call.code, call.reason)
        legs.append(call)
    return legs[0], legs[1]


def _wait_status(stack: DemoStack, session_id: str, status: str, key: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while stack.api_ok("GET", f"/v1/sessions/{session_id}", key=key)["status"] != status:
        assert time.monotonic() < deadline, f"session {session_id} never became {status}"
        time.sleep(0.1)


LINES = ("Hello, I would like to change the delivery address of my order.",
         "Thank you very much, that is all for today.")


def test_the_start_of_each_clip_is_heard(edge: Edge) -> None:
    """Passthrough engine: the agent hears exactly the customer's speech, first syllable included,
    clip after clip (seen on the real switch: a 4.1 s utterance arrived as 3.9 s)."""
    if edge.backend != "freeswitch":
        pytest.skip("RTP needs the real switch; the double's playback is covered by test_demo.py")
    edge.configure()
    sid = edge.new_session()
    customer, agent = _two_legs(edge.stack, sid, edge.acme)
    try:
        _wait_status(edge.stack, sid, "active", edge.acme.key)
        time.sleep(1.0)  # both streams running
        said = [_voice(line, "en") for line in LINES]
        for n, pcm in enumerate(said, start=1):
            customer.rtp.say(pcm)  # type: ignore[attr-defined]
            _wait_heard(agent, min_clips=n, timeout=30)
        heard = agent.rtp.clips()  # type: ignore[attr-defined]
        spans = [(round(float(speech_span_s(s)), 2), round(float(speech_span_s(h)), 2))
                 for s, h in zip(said, heard, strict=False)]
        print(f"speech said → heard by the agent, per clip (s): {spans}")
        assert len(heard) == len(said)
        for said_s, heard_s in spans:
            assert abs(heard_s - said_s) <= 0.06, f"said {said_s:.2f} s, the agent heard {heard_s:.2f} s"
        # And the customer heard nothing of their own voice (bidirectional: only the agent gets it).
        assert speech_span_s(customer.rtp.heard()) == 0.0  # type: ignore[attr-defined]
    finally:
        customer.hangup()  # type: ignore[attr-defined]
        agent.hangup()  # type: ignore[attr-defined]
    edge.wait_session_status(sid, "ended")


def test_after_a_barge_in_the_next_clip_is_heard_whole(edge: Edge) -> None:
    """The agent talks over a translation (barge-in: ``uuid_break``); the next clip played to the
    agent (after the 20 ms CF_BREAK sink) is heard from its first syllable."""
    if edge.backend != "freeswitch":
        pytest.skip("RTP needs the real switch; the double's barge-in is covered by tests/calls")
    edge.configure()
    sid = edge.new_session()
    customer, agent = _two_legs(edge.stack, sid, edge.acme)
    try:
        _wait_status(edge.stack, sid, "active", edge.acme.key)
        time.sleep(1.0)
        long_turn = _voice(" ".join(LINES * 2), "en")
        customer.rtp.say(long_turn)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while speech_span_s(agent.rtp.heard()) < 1.0:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the agent never heard the customer"
            time.sleep(0.05)
        agent.rtp.say(_voice("Sorry, one moment please.", "en"))  # type: ignore[attr-defined]
        _wait_heard(agent, timeout=40)  # the broken clip, then quiet
        cut = speech_span_s(agent.rtp.clips()[-1])  # type: ignore[attr-defined]
        assert cut < speech_span_s(long_turn) - 1.0, "the barge-in did not stop the playback"
        after = _voice(LINES[1], "en")
        customer.rtp.say(after)  # type: ignore[attr-defined]
        _wait_heard(agent, timeout=30, min_clips=2)
        last_clip = agent.rtp.clips()[-1]  # type: ignore[attr-defined]
        said_s, heard_s = speech_span_s(after), speech_span_s(last_clip)
        print(f"after the barge-in: said {said_s:.2f} s of speech, the agent heard {heard_s:.2f} s")
        assert abs(heard_s - said_s) <= 0.06, f"said {said_s:.2f} s, the agent heard {heard_s:.2f} s"
    finally:
        customer.hangup()  # type: ignore[attr-defined]
        agent.hangup()  # type: ignore[attr-defined]
    edge.wait_session_status(sid, "ended")


@pytest.fixture(scope="module")
def translating_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, Tenant]]:
    """A stack with the real offline engine (ASR → MT → TTS) on the real switch."""
    from tests.e2e.real_switch import available

    factory, why = available()
    if factory is None:
        pytest.skip(f"real FreeSWITCH: {why}")
    # espeak-ng for English too (the default is the Piper voice): the test compares what the
    # listener heard with the translation re-spoken by the same voice, and only espeak-ng speaks
    # a text the same length every time (Piper's durations are sampled).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KALLGLOT_ENGLISH_VOICE", "espeak")
        stack = DemoStack(tmp_path_factory.mktemp("translate"), engine="offline", switch_factory=factory)
    with stack:
        tenant = _tenant(stack, stack.org_id, stack.api_key)
        stack.api_ok("PATCH", "/v1/sip", {"session_defaults": {
            "source_language": CUSTOMER_LINE[0], "target_language": AGENT_LINE[0]}})
        stack.reload()
        stack.wait_engine_ready(180)
        yield stack, tenant


def _transcribe(pcm8k: np.ndarray, language: str) -> str:
    """What a listener would understand: the bridge's own Whisper model on the audio heard."""
    from media_bridge.engines.asr_whisper import WhisperASR
    from media_bridge.engines.model_files import whisper_model_dir

    audio = soxr.resample(pcm8k.astype(np.float32) / 32768.0, RATE, 16000)
    asr = WhisperASR(whisper_model_dir(None, Path.home() / ".cache" / "kallglot"))
    return asr.transcribe(audio, language).text


def _words(text: str) -> list[str]:
    return [w.strip(".,;:¿?¡!\"'").lower() for w in text.split() if w.strip(".,;:¿?¡!\"'")]


def test_a_translated_two_party_call_over_rtp(translating_stack: tuple[DemoStack, Tenant]) -> None:
    """The customer speaks English and the agent hears Spanish; the agent answers in Spanish and
    the customer hears English: real audio in, translated audio out, both ways, then BYE."""
    stack, tenant = translating_stack
    sid = str(stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}})["id"])
    customer, agent = _two_legs(stack, sid, tenant)
    try:
        _wait_status(stack, sid, "active", stack.api_key)
        time.sleep(1.0)
        customer.rtp.say(_voice(CUSTOMER_LINE[1], CUSTOMER_LINE[0]))  # type: ignore[attr-defined]
        agent_heard = _wait_heard(agent, timeout=90)
        agent.rtp.say(_voice(AGENT_LINE[1], AGENT_LINE[0]))  # type: ignore[attr-defined]
        customer_heard = _wait_heard(customer, timeout=90)
        turns = {t["speaker"]: t for t in stack.api_ok("GET", f"/v1/sessions/{sid}/transcript")["turns"]}
    finally:
        customer.hangup()  # type: ignore[attr-defined]
        agent.hangup()  # type: ignore[attr-defined]
    _wait_status(stack, sid, "ended", stack.api_key)

    assert "address" in turns["customer"]["text"].lower()
    spanish = turns["customer"]["translation"]["text"]
    assert turns["customer"]["translation"]["language"] == "es" and "entrega" in spanish.lower()
    assert turns["agent"]["language"] == "es"
    english = turns["agent"]["translation"]["text"]
    assert turns["agent"]["translation"]["language"] == "en" and english.strip()
    # What each party heard over RTP is the other's translation, whole: as long as the same
    # text spoken by the engine's own voice (espeak-ng is deterministic), first word included.
    for heard, text, language in ((agent_heard, spanish, "es"), (customer_heard, english, "en")):
        samples, rate = EspeakTTS().synthesize(text, language)
        synthesized = soxr.resample(samples.astype(np.float32), rate, RATE).astype(np.int16)
        heard_s, spoken_s = speech_span_s(heard), speech_span_s(synthesized)
        print(f"{language}: the translation lasts {spoken_s:.2f} s, the listener heard {heard_s:.2f} s")
        assert abs(heard_s - spoken_s) <= 0.06, (language, text, spoken_s, heard_s)
    # And the agent understands it. Only this direction: the agent's Spanish, recognized from
    # 8 kHz G.711, comes back as a half-translated sentence that no listener could follow.
    # (Whisper base hears espeak's "Hola" as "ahora" even in the 16 kHz file, and drops it at
    # 8 kHz: that is what had looked like a lost first word; the spans above say nothing is lost.)
    understood = set(_words(_transcribe(agent_heard, "es")))
    expected = _words(spanish)
    assert len(understood & set(expected)) >= 0.6 * len(expected), (understood, spanish)

"""A turn through the real call path: end of the customer's speech (RTP leaving the caller) →
first translated audio arriving over RTP at the agent, on a real FreeSWITCH (8 kHz PCMU both
ways, mod_audio_stream to the bridge, the offline engine, playback back into the agent's leg).

Variants (each its own stack; the bridge reads its settings at start):
  full-600   Whisper's 30 s encoder window (KALLGLOT_ASR_WINDOW=full), webrtcvad 600 ms
  fit-600    the window fitted to the utterance (the default)
  spec-300   fit-600, the engine starting speculatively at 300 ms of silence (KALLGLOT_VAD_SPECULATE_MS)

The utterance: the same ≈4 s two-sentence English one as bench/turn_bench.py, at 8 kHz, espeak's
own leading/trailing silence trimmed so that "end of speech" is the last sample holding speech.

    KALLGLOT_FREESWITCH_PREFIX=/opt/kallglot/freeswitch .venv/bin/python bench/call_turn_bench.py [--runs 5]

Needs a FreeSWITCH build (docker/build-freeswitch.sh; docs/real-freeswitch.md); the double
carries no RTP. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.demo.audio import speak  # noqa: E402
from controller.demo.stack import DemoStack  # noqa: E402
from tests.e2e.conftest import _tenant  # noqa: E402
from tests.e2e.real_switch import available  # noqa: E402
from tests.e2e.rtp import RATE, frame_levels_dbfs  # noqa: E402

TEXT = ("I would like a table for two people tonight.", "Where is the train station, please?")
VARIANTS = {
    "full-600": {"KALLGLOT_ASR_WINDOW": "full"},
    "fit-600": {"KALLGLOT_ASR_WINDOW": "fit"},
    "spec-300": {"KALLGLOT_ASR_WINDOW": "fit", "KALLGLOT_VAD_SPECULATE_MS": "300"},
}
SPEECH_DBFS = -45.0


def utterance() -> tuple[np.ndarray, int]:
    """8 kHz speech with 0.5 s of silence before and 2 s after; the index after its last speech sample."""
    parts = []
    for sentence in TEXT:
        s = np.frombuffer(speak(sentence, "en", rate=RATE), dtype="<i2")
        loud = np.flatnonzero(np.abs(s.astype(np.int32)) > 100)
        parts += [s[loud[0] : loud[-1] + 1], np.zeros(RATE // 5, np.int16)]
    speech = np.concatenate(parts[:-1])
    lead, tail = np.zeros(RATE // 2, np.int16), np.zeros(2 * RATE, np.int16)
    return np.concatenate([lead, speech, tail]), lead.size + speech.size


def first_speech_after(call: object, since: float, timeout: float) -> float | None:
    """Arrival time of the first received RTP packet holding speech after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for packet in list(call.rtp.packets):  # type: ignore[attr-defined]
            if packet.arrival > since and frame_levels_dbfs(packet.samples).max(initial=-120) > SPEECH_DBFS:
                return float(packet.arrival)
        time.sleep(0.01)
    return None


def one_variant(name: str, env: dict[str, str], runs: int, factory: object) -> list[float]:
    audio, end = utterance()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            stack = DemoStack(Path(tmp), engine="offline", switch_factory=factory)  # type: ignore[arg-type]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, stack:
        stack.workdir = Path(tmp)
        tenant = _tenant(stack, stack.org_id, stack.api_key)
        defaults = {"source_language": "en", "target_language": "es"}
        stack.api_ok("PATCH", "/v1/sip", {"session_defaults": defaults})
        stack.reload()
        stack.wait_engine_ready(180)
        for _ in range(runs):
            sid = str(stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}})["id"])
            legs = [stack.place_call(sid, rtp=True, headers={"X-Kallglot-Role": role}, **tenant.credentials())
                    for role in ("customer", "agent")]
            customer, agent = legs
            try:
                time.sleep(1.5)  # both legs streaming
                done = customer.rtp.say(audio)
                speech_end = done - (audio.size - end) / RATE
                heard = first_speech_after(agent, speech_end - 1.0, timeout=30)
                if heard is not None:
                    latencies.append(heard - speech_end)
                time.sleep(max(0.0, done - time.monotonic()) + 2.0)  # let the whole translation play
            finally:
                for call in legs:
                    call.hangup()
        print(f"  {name}: " + " ".join(f"{x * 1000:.0f}" for x in latencies) + " ms", flush=True)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    factory, why = available()
    if factory is None:
        sys.exit(f"no real FreeSWITCH: {why}")
    print(f"en → es over PCMU through a real FreeSWITCH, {args.runs} turns per variant; "
          f"load average {os.getloadavg()[0]:.1f}")
    names = args.variants.split(",")
    results = {name: one_variant(name, VARIANTS[name], args.runs, factory) for name in names}
    print(f"{'variant':<10} {'p50':>8} {'min':>8} {'max':>8}   end of speech → first RTP speech at the agent")
    for name, values in results.items():
        if values:
            ms = np.array(values) * 1000
            print(f"{name:<10} {np.percentile(ms, 50):>6.0f}ms {ms.min():>6.0f}ms {ms.max():>6.0f}ms")
        else:
            print(f"{name:<10} no translated audio heard")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

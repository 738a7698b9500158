"""End-pointing: webrtcvad vs Silero VAD on the same audio, in the same run.

Audio: espeak-ng utterances (English and Spanish), each made of two phrases with a 250 ms pause
inside (a speaker drawing breath: must NOT split the utterance), utterances 1.2 s apart; at
16 kHz, and at 8 kHz through a G.711 µ-law round trip; clean, and with white noise at -45 dBFS
RMS (a quiet line). Per configuration: end of speech → end declared (ms; the true end is the
last sample above -50 dBFS of each utterance's speech), and utterances split or merged.

    .venv/bin/python bench/vad_bench.py

Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media_bridge.audio import parse_wav, resample  # noqa: E402
from media_bridge.vad import SpeechSegmenter, Utterance  # noqa: E402

PHRASES = [
    ("en", "I would like a table", "for two people tonight."),
    ("es", "Buenos días", "mi casa es muy grande."),
    ("en", "Where is the station", "and when does the train leave?"),
    ("es", "Quiero una mesa", "para dos personas."),
    ("en", "The weather is nice", "so we can walk to the park."),
    ("en", "Thank you very much", "see you tomorrow."),
]
INNER_PAUSE_S = 0.25
GAP_S = 1.2
CONFIGS = [("webrtc", 600), ("webrtc", 300), ("silero", 300), ("silero", 200)]


def espeak(text: str, language: str, rate: int) -> np.ndarray:
    import subprocess

    argv = ["espeak-ng", "-v", language, "--stdout", text]
    wav = subprocess.run(argv, capture_output=True, check=True).stdout
    samples, wav_rate = parse_wav(wav)
    return trim(resample(samples, wav_rate, rate))


def trim(samples: np.ndarray) -> np.ndarray:
    """Drop espeak's leading/trailing silence so that the true speech end is the array's end."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 32768 * 10 ** (-50 / 20))
    return samples[loud[0] : loud[-1] + 1] if loud.size else samples


def ulaw_round_trip(samples: np.ndarray) -> np.ndarray:
    """G.711 µ-law encode + decode (what an 8 kHz PSTN leg delivers)."""
    x = samples.astype(np.float64) / 32768.0
    mu = 255.0
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    quantized = np.round(encoded * 127) / 127
    decoded = np.sign(quantized) * ((1 + mu) ** np.abs(quantized) - 1) / mu
    return np.clip(decoded * 32768, -32768, 32767).astype(np.int16)


@dataclass
class Track:
    audio: np.ndarray
    ends_s: list[float]  # true end of each utterance's speech


def build(rate: int, noise_dbfs: float | None, g711: bool, seed: int = 1) -> Track:
    gap, pause = np.zeros(int(GAP_S * rate), np.int16), np.zeros(int(INNER_PAUSE_S * rate), np.int16)
    parts, ends, t = [gap], [], GAP_S
    for language, first, second in PHRASES:
        a, b = espeak(first, language, rate), espeak(second, language, rate)
        parts += [a, pause, b, gap]
        t += (a.size + pause.size + b.size) / rate
        ends.append(t)
        t += GAP_S
    audio = np.concatenate(parts)
    if g711:
        audio = ulaw_round_trip(audio)
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        noise = rng.normal(0, 32768 * 10 ** (noise_dbfs / 20), audio.size)
        audio = np.clip(audio + noise, -32768, 32767).astype(np.int16)
    return Track(audio, ends)


def run(track: Track, rate: int, engine: str, silence_ms: int) -> tuple[list[float], int, float]:
    seg = SpeechSegmenter(rate, silence_ms=silence_ms, engine=engine)
    size = rate // 50
    detected: list[float] = []
    started = time.perf_counter()
    for i in range(0, track.audio.size - size + 1, size):
        for event in seg.push(track.audio[i : i + size].astype("<i2").tobytes(), wall_time=0.0):
            if isinstance(event, Utterance):
                detected.append((i + size) / rate)  # the moment the end was declared
    cpu_us = (time.perf_counter() - started) / (track.audio.size // size) * 1e6
    return detected, len(detected), cpu_us


def main() -> None:
    print(f"{len(PHRASES)} utterances, each two phrases with a {INNER_PAUSE_S * 1000:.0f} ms pause inside, "
          f"{GAP_S * 1000:.0f} ms apart")
    print(f"{'audio':<28} {'vad':<8} {'hangover':>8} {'found':>6} {'end→declared p50 / max (ms)':>28}  "
          f"{'split/merged':>12} {'µs/frame':>9}")
    for rate, g711 in ((16000, False), (8000, True)):
        for noise in (None, -45.0):
            track = build(rate, noise, g711)
            label = f"{rate // 1000} kHz{' G.711' if g711 else ''}{' noise -45 dBFS' if noise else ' clean'}"
            for engine, hangover in CONFIGS:
                detected, count, cpu = run(track, rate, engine, hangover)
                lags = []
                for end in track.ends_s:
                    after = [d for d in detected if d >= end]
                    if after and after[0] - end < GAP_S:
                        lags.append((after[0] - end) * 1000)
                expected = len(track.ends_s)
                verdict = "ok" if count == expected and len(lags) == expected else (
                    f"split {count - expected}" if count > expected else f"merged {expected - count}"
                )
                p50 = f"{np.percentile(lags, 50):.0f} / {max(lags):.0f}" if lags else "n/a"
                print(f"{label:<28} {engine:<8} {hangover:>6}ms {count:>6} {p50:>28}  {verdict:>12}"
                      f" {cpu:>9.0f}")


if __name__ == "__main__":
    main()

"""Per-utterance latency of the default offline engine (faster-whisper + Apertium + espeak-ng).

Two views, same sentences:
1. engine stages, called directly: audio in → transcript → translation → first synthesized chunk;
2. through a real bridge (in-process aiohttp server, real websockets): from the frame at which the
   bridge's VAD declares end of speech (the client runs the same segmenter to know which frame that
   is) to the first streamAudio byte received on the listener's leg.

    .venv/bin/python bench/engine_bench.py [--rounds 2]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.ids import new_id  # noqa: E402
from controller.settings import Settings  # noqa: E402
from controller.store import open_store  # noqa: E402
from media_bridge.audio import parse_wav, resample  # noqa: E402
from media_bridge.config import BridgeConfig  # noqa: E402
from media_bridge.engines.base import SpeechChunk, Transcript, Translation, UtteranceRequest  # noqa: E402
from media_bridge.engines.offline import OfflineEngine  # noqa: E402
from media_bridge.server import create_app  # noqa: E402
from media_bridge.vad import SpeechSegmenter, Utterance  # noqa: E402

RATE = 16000
SENTENCES = [
    ("customer", "en", "es", "I would like a table for two people."),
    ("customer", "en", "es", "Where is the train station?"),
    ("agent", "es", "en", "Buenos días, mi casa es muy grande."),
    ("agent", "es", "en", "La casa es grande."),
]


def speak(text: str, language: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", language, "--stdout", text], capture_output=True, check=True
    ).stdout
    samples, rate = parse_wav(wav)
    return resample(samples, rate, RATE)


def stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {np.percentile(values, 50) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"


def bench_stages(engine: OfflineEngine, audio: dict[str, np.ndarray], rounds: int) -> None:
    asr, mt, tts = [], [], []
    for _ in range(rounds):
        for _, src, tgt, text in SENTENCES:
            t0 = time.perf_counter()
            marks: dict[str, float] = {}
            for result in engine.process(UtteranceRequest(audio[text], RATE, src, tgt, RATE)):
                kind = type(result)
                if kind is Transcript:
                    marks["asr"] = time.perf_counter()
                elif kind is Translation:
                    marks["mt"] = time.perf_counter()
                elif kind is SpeechChunk and "tts" not in marks:
                    marks["tts"] = time.perf_counter()
            if {"asr", "mt", "tts"} <= marks.keys():
                asr.append(marks["asr"] - t0)
                mt.append(marks["mt"] - marks["asr"])
                tts.append(marks["tts"] - marks["mt"])
    print(f"engine stages over {len(asr)} utterances:")
    print(f"  ASR (whisper)             {stats(asr)}")
    print(f"  MT (apertium)             {stats(mt)}")
    print(f"  TTS first chunk (espeak)  {stats(tts)}")


async def bench_bridge(
    engine: OfflineEngine, audio: dict[str, np.ndarray], rounds: int, silence_ms: int
) -> None:
    config = BridgeConfig(engine="offline", vad_silence_ms=silence_ms)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.db")
        now = time.time()
        org, sid = new_id("org"), new_id("sess")
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO organizations (id, name, created_at) VALUES (?, 'bench', ?)", (org, now)
            )
            conn.execute(
                "INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,"
                " status, created_at, updated_at)"
                " VALUES (?, ?, 'bidirectional_translation', 'en', 'es', 'eu', 'sip', 'connecting', ?, ?)",
                (sid, org, now, now),
            )
        runner = web.AppRunner(create_app(Settings(), store, engine, config))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        latencies: list[float] = []
        async with aiohttp.ClientSession() as http:
            legs = {}
            for role in ("customer", "agent"):
                legs[role] = await http.ws_connect(f"ws://127.0.0.1:{port}/v1/media/{sid}/leg_{role}")
                await legs[role].send_str(json.dumps({"session_id": sid, "role": role}))
            for _ in range(rounds):
                for role, _, _, text in SENTENCES:
                    speaker, listener = legs[role], legs["agent" if role == "customer" else "customer"]
                    samples = np.concatenate(
                        [np.zeros(RATE // 2, np.int16), audio[text], np.zeros(RATE, np.int16)]
                    )
                    segmenter = SpeechSegmenter(RATE, silence_ms=silence_ms)
                    ended = None
                    start = time.monotonic()
                    for i in range(0, samples.size - 319, 320):
                        frame = samples[i : i + 320].astype("<i2").tobytes()
                        await speaker.send_bytes(frame)
                        if (
                            any(isinstance(e, Utterance) for e in segmenter.push(frame, 0.0))
                            and ended is None
                        ):
                            ended = time.monotonic()
                        # real time: the bridge sees audio as a phone call would deliver it
                        delay = start + (i // 320 + 1) * 0.02 - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    msg = await listener.receive(timeout=120)
                    if ended is not None and msg.type == aiohttp.WSMsgType.TEXT:
                        latencies.append(time.monotonic() - ended)
                    while True:  # drain the utterance's remaining sentences
                        try:
                            await listener.receive(timeout=1.5)
                        except TimeoutError:
                            break
            metrics = await (await http.get(f"http://127.0.0.1:{port}/metrics")).text()
            for ws in legs.values():
                await ws.close()
        await runner.cleanup()
        store.close()
    print(f"through the bridge, end of speech → first translated audio byte ({len(latencies)} utterances):")
    print(f"  client-measured           {stats(latencies)}")
    for name in ("transcript", "translation", "first_audio"):
        total = count = 0.0
        for line in metrics.splitlines():
            if line.startswith(f"kallglot_bridge_{name}_seconds_sum"):
                total = float(line.split()[-1])
            if line.startswith(f"kallglot_bridge_{name}_seconds_count"):
                count = float(line.split()[-1])
        if count:
            print(f"  server {name:<18} mean {total / count * 1000:7.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--silence-ms", type=int, default=600, help="VAD end-of-speech silence")
    args = parser.parse_args()
    t0 = time.perf_counter()
    engine = OfflineEngine(BridgeConfig.from_env())
    engine.warm_up()
    print(f"model load: {(time.perf_counter() - t0) * 1000:.0f} ms")
    audio = {text: speak(text, lang) for _, lang, _, text in SENTENCES}
    bench_stages(engine, audio, args.rounds)
    asyncio.run(bench_bridge(engine, audio, args.rounds, args.silence_ms))
    print(f"(end-of-speech silence {args.silence_ms} ms comes on top: the VAD waits that long to decide)")


if __name__ == "__main__":
    main()

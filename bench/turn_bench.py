"""A faster turn: end of speech → first translated audio leaving the bridge, on a ≈4 s
two-sentence utterance (English → Spanish), through a real bridge over its websocket.

Variants, same run, same audio, same machine load:
  before      whole-text translation, then speech; Whisper's 30 s window; webrtcvad 600 ms
  full-600    sentence by sentence (the first sentence spoken while the rest is translated); 30 s window
  fit-600     the same with the encoder's window fitted to the utterance (KALLGLOT_ASR_WINDOW=fit, default)
  fit-300     fit-600 with a 300 ms end-of-speech silence (KALLGLOT_VAD_SILENCE_MS=300)
  spec-200    fit-600 with speculation: the engine starts at 200 ms of silence (KALLGLOT_VAD_SPECULATE_MS)
  spec-300    the same, speculating at 300 ms

"End of speech" is when the client sends the last frame holding speech (espeak's own trailing
silence trimmed), so the VAD's hangover is inside the figure. Frames go at real time.

    .venv/bin/python bench/turn_bench.py [--runs 5]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.settings import Settings  # noqa: E402
from controller.store import open_store  # noqa: E402
from media_bridge.config import BridgeConfig  # noqa: E402
from media_bridge.engines.base import EngineResult, Translation, UtteranceRequest  # noqa: E402
from media_bridge.engines.offline import OfflineEngine  # noqa: E402
from media_bridge.server import create_app  # noqa: E402
from media_bridge.translation_paths import TranslationPath  # noqa: E402
from tests.bridge.helpers import make_session, speak  # noqa: E402

RATE = 16000
TEXT = ("I would like a table for two people tonight.", "Where is the train station, please?")


class WholeTextEngine(OfflineEngine):
    """The engine as it was: translate everything, then speak sentence by sentence."""

    def translate_and_speak(
        self, text: str, source: str, target: str, path: TranslationPath, request: UtteranceRequest
    ) -> Iterator[EngineResult]:
        out = self.translate(text, path.mt_source or source, target) if path.mt else text
        yield Translation(out, target, path.name)
        if request.synthesize:
            yield from self.speech_chunks(out, target, request.output_rate)


def utterance() -> tuple[np.ndarray, int]:
    """The audio and the index of the sample after the last one holding speech."""
    parts = []
    for sentence in TEXT:
        s = speak(sentence, "en", RATE)
        loud = np.flatnonzero(np.abs(s.astype(np.int32)) > 100)
        parts += [s[loud[0] : loud[-1] + 1], np.zeros(RATE // 5, np.int16)]
    speech = np.concatenate(parts[:-1])
    lead, tail = np.zeros(RATE // 2, np.int16), np.zeros(2 * RATE, np.int16)
    return np.concatenate([lead, speech, tail]), lead.size + speech.size


async def one_variant(engine: OfflineEngine, config: BridgeConfig, audio: np.ndarray, end: int, runs: int,
                      db: Path) -> list[float]:
    store = open_store(db)
    runner = web.AppRunner(create_app(Settings(), store, engine, config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    latencies = []
    async with aiohttp.ClientSession() as http:
        for _ in range(runs):
            sid = make_session(store, source="en", target="es")
            legs = {}
            for role in ("customer", "agent"):
                legs[role] = await http.ws_connect(f"ws://127.0.0.1:{port}/v1/media/{sid}/leg_{role}")
                await legs[role].send_str(json.dumps({"session_id": sid, "role": role}))
            first: list[float] = []

            async def listen(
                agent: aiohttp.ClientWebSocketResponse = legs["agent"], first: list = first
            ) -> None:
                msg = await agent.receive(timeout=60)
                if msg.type == aiohttp.WSMsgType.TEXT and "streamAudio" in msg.data:
                    first.append(time.monotonic())

            listener = asyncio.create_task(listen())
            start, speech_end = time.monotonic(), 0.0
            for i in range(0, audio.size - 319, 320):
                await legs["customer"].send_bytes(audio[i : i + 320].astype("<i2").tobytes())
                if i < end <= i + 320:
                    speech_end = time.monotonic()
                delay = start + (i // 320 + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.wait_for(listener, 60)
            if first:
                latencies.append(first[0] - speech_end)
            for ws in legs.values():
                await ws.close()
            await asyncio.sleep(0.5)
    await runner.cleanup()
    store.close()
    return latencies


async def main_async(runs: int) -> None:
    import tempfile

    audio, end = utterance()
    print(f"utterance: {end / RATE - 0.5:.2f} s of speech, two sentences, en → es; {runs} runs per variant")
    base = BridgeConfig.from_env()
    full = dataclasses.replace(base, asr_window="full", vad_silence_ms=600, vad_engine="webrtc")
    fit = dataclasses.replace(base, asr_window="fit", vad_silence_ms=600, vad_engine="webrtc")
    old_engine, full_engine, fit_engine = WholeTextEngine(full), OfflineEngine(full), OfflineEngine(fit)
    for e in (old_engine, full_engine, fit_engine):
        e.warm_up()
    variants = [
        ("before", old_engine, full),
        ("full-600", full_engine, full),
        ("fit-600", fit_engine, fit),
        ("fit-300", fit_engine, dataclasses.replace(fit, vad_silence_ms=300)),
        ("spec-200", fit_engine, dataclasses.replace(fit, vad_speculate_ms=200)),
        ("spec-300", fit_engine, dataclasses.replace(fit, vad_speculate_ms=300)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        # Interleave variants run by run so that machine load hits them alike.
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for r in range(runs):
            for name, engine, config in variants:
                results[name] += await one_variant(engine, config, audio, end, 1, Path(tmp) / f"{name}{r}.db")
    print(f"{'variant':<12} {'p50':>8} {'min':>8} {'max':>8}   end of speech → first translated audio")
    for name, values in results.items():
        if values:
            ms = np.array(values) * 1000
            print(f"{name:<12} {np.percentile(ms, 50):>6.0f}ms {ms.min():>6.0f}ms {ms.max():>6.0f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main_async(parser.parse_args().runs))


if __name__ == "__main__":
    main()

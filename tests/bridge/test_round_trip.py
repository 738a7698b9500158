"""Speech to speech over real websockets with the default offline engine (faster-whisper,
Apertium, espeak-ng). The model is loaded once for the module; sentences are short."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from controller.store import Store
from media_bridge.audio import resample, to_float
from media_bridge.config import BridgeConfig
from media_bridge.engines.offline import OfflineEngine
from tests.bridge.helpers import (
    connect_leg,
    decode_stream_audio,
    make_session,
    next_json,
    running_bridge,
    send_audio,
    silence,
    speak,
)

CONFIG = BridgeConfig(engine="offline", vad_silence_ms=500, engine_workers=1, asr_threads=2)


@pytest.fixture(scope="module")
def engine() -> Iterator[OfflineEngine]:
    engine = OfflineEngine(CONFIG)
    engine.warm_up()
    yield engine
    engine.close()


async def collect_audio(ws: aiohttp.ClientWebSocketResponse, first_timeout: float) -> tuple[list, int]:
    """All streamAudio messages of one utterance (sentences follow each other closely)."""
    chunks = []
    audio, rate = decode_stream_audio(await next_json(ws, timeout=first_timeout))
    chunks.append(audio)
    while True:
        try:
            audio, _ = decode_stream_audio(await next_json(ws, timeout=3))
        except TimeoutError:
            return chunks, rate
        chunks.append(audio)


def transcribe(engine: OfflineEngine, chunks: list, rate: int, language: str) -> str:
    audio = to_float(resample(np.concatenate(chunks).astype(np.int16), rate, 16000))
    return engine.asr.transcribe(audio, language).text.lower()


def turns(store: Store, session_id: str) -> list:
    return store.query("SELECT * FROM transcript_turns WHERE session_id = ? ORDER BY sequence", (session_id,))


def test_customer_english_reaches_agent_in_spanish(store: Store, engine: OfflineEngine) -> None:
    session_id = make_session(store, source="en", target="es")

    async def main() -> tuple[list, int]:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, silence(0.3))
            await send_audio(customer, speak("I would like a table for two people.", "en"))
            await send_audio(customer, silence(1.0))
            result = await collect_audio(agent, first_timeout=120)
            metrics = await (await http.get(f"{rb.url}/metrics")).text()
            assert "kallglot_bridge_translation_seconds_count 1.0" in metrics
            await customer.close()
            await agent.close()
            return result

    chunks, rate = asyncio.run(main())
    assert rate == 16000
    rows = turns(store, session_id)
    assert len(rows) == 1
    turn = rows[0]
    assert turn["sequence"] == 1 and turn["speaker"] == "customer" and turn["language"] == "en"
    assert "table" in turn["text"].lower()
    assert turn["translation_language"] == "es" and "mesa" in turn["translation_text"].lower()
    assert turn["started_at"] <= turn["ended_at"] <= turn["created_at"]
    # What the agent hears is Spanish speech about a table.
    assert "mesa" in transcribe(engine, chunks, rate, "es")


def test_agent_spanish_reaches_customer_in_english_at_8k(store: Store, engine: OfflineEngine) -> None:
    session_id = make_session(store, source="en", target="es")

    async def main() -> tuple[list, int]:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer", rate=8000)
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(agent, silence(0.3))
            await send_audio(agent, speak("Buenos días, mi casa es muy grande.", "es"))
            await send_audio(agent, silence(1.0))
            result = await collect_audio(customer, first_timeout=120)
            await customer.close()
            await agent.close()
            return result

    chunks, rate = asyncio.run(main())
    assert rate == 8000
    turn = turns(store, session_id)[0]
    assert turn["speaker"] == "agent" and turn["language"] == "es" and "casa" in turn["text"].lower()
    assert turn["translation_language"] == "en" and "house" in turn["translation_text"].lower()
    assert "house" in transcribe(engine, chunks, rate, "en")


def test_unsupported_detected_pair_is_recorded_without_translation(
    store: Store, engine: OfflineEngine
) -> None:
    """source auto: English detected, agent language German (no eng-deu installed) → the turn is
    kept with no translation and nothing is spoken (never the original passed through)."""
    session_id = make_session(store, source="auto", target="de")

    async def main() -> None:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, speak("Good morning.", "en"))
            await send_audio(customer, silence(1.0))
            outcomes = rb.bridge.metrics.utterances
            for _ in range(600):
                if outcomes.labels("engine_error")._value.get() == 1:
                    break
                await asyncio.sleep(0.1)
            with pytest.raises(asyncio.TimeoutError):
                await agent.receive(timeout=0.3)
            await customer.close()
            await agent.close()

    asyncio.run(main())
    turn = turns(store, session_id)[0]
    assert turn["language"] == "en" and "morning" in turn["text"].lower()
    assert turn["translation_text"] is None and turn["translation_language"] is None


def test_auto_source_is_detected_among_translatable_languages(store: Store, engine: OfflineEngine) -> None:
    """Whisper base alone calls this synthetic Spanish Japanese; restricted to the languages the
    session can translate into English, it is Spanish."""
    session_id = make_session(store, source="auto", target="en")

    async def main() -> None:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, silence(0.3))
            await send_audio(customer, speak("La casa es muy grande.", "es"))
            await send_audio(customer, silence(1.0))
            await collect_audio(agent, first_timeout=120)
            await customer.close()
            await agent.close()

    asyncio.run(main())
    turn = turns(store, session_id)[0]
    assert turn["language"] == "es"
    assert turn["translation_language"] == "en" and "house" in turn["translation_text"].lower()


def test_speech_is_one_chunk_per_sentence_and_at_most_ten_seconds(engine: OfflineEngine) -> None:
    chunks = list(engine.speech_chunks("Buenos días. Quiero una mesa.", "es", 8000))
    assert [c.index for c in chunks] == [0, 1]
    assert all(c.sample_rate == 8000 and 0.3 < c.duration_s < 4 for c in chunks)
    long_sentence = " ".join(["uno dos tres cuatro cinco seis siete ocho nueve diez"] * 4) + "."
    long_chunks = list(engine.speech_chunks(long_sentence, "es", 16000))
    assert len(long_chunks) >= 2 and all(c.duration_s <= 10.0 for c in long_chunks)


def test_both_languages_auto_are_learned_from_each_party(store: Store, engine: OfflineEngine) -> None:
    """Until the agent has spoken, the customer's language is known but the agent's is not: the
    first turn stays untranslated; afterwards both directions are translated."""
    session_id = make_session(store, source="auto", target="auto")

    async def main() -> None:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            english = speak("I would like a table for two people.", "en")
            await send_audio(customer, np.concatenate([silence(0.3), english, silence(1.0)]))
            outcomes = rb.bridge.metrics.utterances
            for _ in range(1200):
                if outcomes.labels("untranslated")._value.get() == 1:
                    break
                await asyncio.sleep(0.1)
            spanish = speak("Buenos días, mi casa es muy grande.", "es")
            await send_audio(agent, np.concatenate([silence(0.3), spanish, silence(1.0)]))
            await collect_audio(customer, first_timeout=120)
            await send_audio(customer, np.concatenate([silence(0.3), english, silence(1.0)]))
            await collect_audio(agent, first_timeout=120)
            await customer.close()
            await agent.close()

    asyncio.run(main())
    first, second, third = turns(store, session_id)
    assert (first["speaker"], first["language"], first["translation_text"]) == ("customer", "en", None)
    assert second["speaker"] == "agent" and second["language"] == "es"
    assert second["translation_language"] == "en" and "house" in second["translation_text"].lower()
    assert third["translation_language"] == "es" and "mesa" in third["translation_text"].lower()


def test_speculation_starts_at_the_pause_and_delivers_the_same_turn(store: Store,
                                                                    engine: OfflineEngine) -> None:
    """KALLGLOT_VAD_SPECULATE_MS: the engine starts 300 ms into the silence; the end of speech
    600 ms in confirms it and the listener gets the same translation, counted as used."""
    config = BridgeConfig(engine="offline", vad_silence_ms=600, vad_speculate_ms=300, engine_workers=1,
                          asr_threads=2)
    session_id = make_session(store, source="en", target="es")

    async def main() -> tuple[list, int, str]:
        async with running_bridge(store, engine, config) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, silence(0.3))
            await send_audio(customer, speak("I would like a table for two people.", "en"))
            await send_audio(customer, silence(1.0))
            result = await collect_audio(agent, first_timeout=120)
            metrics = await (await http.get(f"{rb.url}/metrics")).text()
            await customer.close()
            await agent.close()
            return (*result, metrics)

    chunks, rate, metrics = asyncio.run(main())
    assert 'kallglot_bridge_speculations_total{outcome="used"} 1.0' in metrics
    [turn] = turns(store, session_id)
    assert "table" in turn["text"].lower() and "mesa" in turn["translation_text"].lower()
    assert "mesa" in transcribe(engine, chunks, rate, "es")

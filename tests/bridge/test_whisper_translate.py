"""Speech in any Whisper language to English (Whisper's translate task), and onward through
English where a translator from English exists (Apertium en→es here): the path chosen per
direction, what the API accepts, real German/French speech through the engine and the bridge.

espeak-ng's German and French are hard for Whisper base: the sentences are ones it gets right
(numbers, greetings), and the checks look for key words, not whole sentences."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from controller.store import Store
from media_bridge.capabilities import unsupported_pair_reason
from media_bridge.config import BridgeConfig
from media_bridge.engines.base import SpeechChunk, Transcript, Translation, UtteranceRequest
from media_bridge.engines.offline import OfflineEngine
from media_bridge.translation_paths import TranslationPath, plan_path
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
APERTIUM = {("en", "es"): "apertium", ("es", "en"): "apertium"}


@pytest.fixture(scope="module")
def engine() -> Iterator[OfflineEngine]:
    engine = OfflineEngine(CONFIG)
    engine.warm_up()
    yield engine
    engine.close()


def run(engine: OfflineEngine, text: str, language: str, source: str, target: str) -> list:
    return list(engine.process(UtteranceRequest(speak(text, language), 16000, source, target, 16000)))


def test_paths_prefer_a_text_translator_then_whisper_then_through_english() -> None:
    def mt(s: str, t: str) -> str | None:
        return APERTIUM.get((s, t))

    assert plan_path("es", "en", mt) == TranslationPath(False, "apertium")
    assert plan_path("de", "en", mt) == TranslationPath(True, None)
    assert plan_path("de", "en", mt).name == "whisper-translate"  # type: ignore[union-attr]
    assert plan_path("ja", "es", mt).name == "whisper-translate+apertium"  # type: ignore[union-attr]
    assert plan_path("ja", "es", mt).mt_source == "en"  # type: ignore[union-attr]
    assert plan_path("en", "en", mt).name == "same-language"  # type: ignore[union-attr]
    assert plan_path("en", "de", mt) is None  # Whisper translates into English only
    assert plan_path("de", "fr", mt) is None  # no translator from English into French
    assert plan_path("xx", "en", mt) is None  # not a Whisper language


@pytest.mark.parametrize(
    "source,target", [("de", "en"), ("ja", "en"), ("sw", "en"), ("fr", "es"), ("auto", "en"), ("de", "auto")]
)
def test_any_whisper_language_to_english_and_on_to_spanish_is_served(source: str, target: str) -> None:
    """Per direction (what the API's check applies to each side of a session)."""
    from media_bridge.capabilities import _direction_reason

    assert _direction_reason(source, target, BridgeConfig(), True) is None


def test_a_session_still_needs_both_directions() -> None:
    """Whisper translates into English only: a German customer with an English agent also needs
    en→de for what the agent says, which the default install does not have."""
    for mode in ("bidirectional_translation", "assistive_translation"):
        reason = unsupported_pair_reason("de", "en", mode=mode, config=BridgeConfig())
        assert reason is not None and "en->de" in reason
    reason = unsupported_pair_reason("xx", "en", config=BridgeConfig())
    assert reason is not None and "'xx'" in reason


def test_german_to_english_by_whisper(engine: OfflineEngine) -> None:
    results = run(engine, "Eins, zwei, drei, vier, fünf.", "de", "de", "en")
    transcript = next(r for r in results if isinstance(r, Transcript))
    translation = next(r for r in results if isinstance(r, Translation))
    assert transcript.language == "de"
    assert translation.language == "en" and translation.path == "whisper-translate"
    english = translation.text.lower()
    heard = [n for n in ("1", "2", "3", "4", "5", "one", "two", "three", "four", "five") if n in english]
    assert len(heard) >= 4, english
    assert any(isinstance(r, SpeechChunk) for r in results)


def test_french_to_english_and_german_to_spanish_through_english(engine: OfflineEngine) -> None:
    french = run(engine, "Bonjour, je voudrais un café, s'il vous plaît.", "fr", "fr", "en")
    translation = next(r for r in french if isinstance(r, Translation))
    assert translation.path == "whisper-translate" and "coffee" in translation.text.lower()
    assert "café" in next(r for r in french if isinstance(r, Transcript)).text.lower()
    german = run(engine, "Eins, zwei, drei, vier, fünf.", "de", "de", "es")
    transcript = next(r for r in german if isinstance(r, Transcript))
    translation = next(r for r in german if isinstance(r, Translation))
    assert transcript.language == "de" and "4" in transcript.text  # the spoken language's transcript
    assert translation.path == "whisper-translate+apertium" and translation.language == "es"
    spanish = translation.text.lower()
    assert sum(n in spanish for n in ("1", "2", "3", "4", "5", "uno", "dos", "tres", "cuatro", "cinco")) >= 4


def test_spanish_to_english_stays_with_apertium(engine: OfflineEngine) -> None:
    results = run(engine, "La casa es grande.", "es", "es", "en")
    translation = next(r for r in results if isinstance(r, Translation))
    assert translation.path == "apertium" and "house" in translation.text.lower()


def test_bridge_records_and_counts_the_path(store: Store, engine: OfflineEngine) -> None:
    """A German customer's speech reaches the English agent; the turn stores the path and
    /metrics counts it (the session row is written directly: only the customer speaks)."""
    session_id = make_session(store, source="de", target="en")

    async def main() -> str:
        async with running_bridge(store, engine, CONFIG) as rb, aiohttp.ClientSession() as http:
            customer = await connect_leg(http, rb.url, session_id, "leg_c", "customer")
            agent = await connect_leg(http, rb.url, session_id, "leg_a", "agent")
            await send_audio(customer, np.concatenate([silence(0.3), speak("Eins, zwei, drei, vier.", "de")]))
            await send_audio(customer, silence(1.0))
            audio, rate = decode_stream_audio(await next_json(agent, timeout=120))
            assert rate == 16000 and audio.size > 8000
            metrics = await (await http.get(f"{rb.url}/metrics")).text()
            await customer.close()
            await agent.close()
            return metrics

    metrics = asyncio.run(main())
    line = 'kallglot_bridge_translations_total{path="whisper-translate",source="de",target="en"} 1.0'
    assert line in metrics
    row = store.query_one("SELECT * FROM transcript_turns WHERE session_id = ?", (session_id,))
    assert row is not None and row["language"] == "de" and row["translation_path"] == "whisper-translate"

"""The encoder's window fitted to the utterance (KALLGLOT_ASR_WINDOW=fit, the default): the same
words as Whisper's 30 s window in a fraction of the time, and the 30 s window again when the
fitted decode looks poor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

from media_bridge.config import BridgeConfig, BridgeConfigError
from media_bridge.engines.asr_whisper import _cut_repetition, _loops
from media_bridge.engines.offline import OfflineEngine
from tests.bridge.helpers import speak

CONFIG = BridgeConfig(engine="offline", engine_workers=1, asr_threads=2)
SENTENCE = "I would like a table for two people tonight. Where is the train station, please?"


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, OfflineEngine]]:
    made = {w: OfflineEngine(dataclasses.replace(CONFIG, asr_window=w)) for w in ("fit", "full")}
    for engine in made.values():
        engine.asr.load()
    yield made
    for engine in made.values():
        engine.close()


def _audio(text: str, language: str = "en") -> np.ndarray:
    return speak(text, language).astype(np.float32) / 32768


def test_fitted_window_hears_what_the_full_window_hears(engines: dict[str, OfflineEngine]) -> None:
    audio = _audio(SENTENCE)
    fit, full = engines["fit"].asr, engines["full"].asr
    assert fit.transcribe(audio, "en").text == full.transcribe(audio, "en").text
    assert "train station" in fit.transcribe(audio, "en").text
    both_fit = fit.transcribe_and_translate(_audio("Buenos días, quiero cambiar mi dirección.", "es"), "es")
    assert "dirección" in both_fit.transcript.text
    # A fitted window sometimes sends the translate task into a loop on a short utterance
    # (the sentence twice, or over and over); that decode is redone, so no English repeats itself.
    assert both_fit.english.count("Good morning") <= 1


def test_the_fitted_window_is_the_utterance_plus_its_margin(
    engines: dict[str, OfflineEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the encoder is given (the speed that follows is measured in bench/turn_bench.py)."""
    audio = _audio(SENTENCE)
    seconds = audio.size / 16000
    seen: dict[str, int] = {}
    for window, engine in engines.items():
        model = engine.asr._model
        real_encode = model.encode  # type: ignore[attr-defined]

        def encode(features: np.ndarray, window: str = window, real_encode=real_encode) -> object:
            seen[window] = features.shape[-1]
            return real_encode(features)

        monkeypatch.setattr(model, "encode", encode)
        engine.asr.transcribe(audio, "en")
    assert seen["full"] == 3000  # Whisper's 30 s, whatever the utterance
    assert abs(seen["fit"] - (seconds + 1.0) * 100) <= 3  # 10 ms frames: speech + 1 s of silence


def test_a_loop_of_sentences_is_cut_at_its_first_repeat() -> None:
    said = "My internet connection has not worked since yesterday."
    assert _cut_repetition(f"{said} {said} {said} My internet connection") == said
    assert _cut_repetition("Hello. I need help. Hello. I need help. Hel") == "Hello. I need help."
    assert _cut_repetition("Could you help me? Could you") == "Could you help me?"
    assert _cut_repetition("Hello. How are you? Fine.") == "Hello. How are you? Fine."
    assert _cut_repetition("I would like a table, where is the station? Please.") == (
        "I would like a table, where is the station? Please.")
    assert _cut_repetition("") == ""


def test_a_loop_that_is_not_whole_sentences_is_redone_in_the_full_window(
    engines: dict[str, OfflineEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    asr = engines["fit"].asr
    audio = _audio(SENTENCE)
    clause = "where is the station, "
    looping = ("en", [clause * 8])
    real_decode = asr._decode

    def decode(*args: object, fitted: bool) -> object:
        return looping if fitted else real_decode(*args, fitted=fitted)  # type: ignore[arg-type]

    monkeypatch.setattr(asr, "_decode", decode)
    before = asr.full_window_retries
    assert "train station" in asr.transcribe(audio, "en").text
    assert asr.full_window_retries == before + 1
    assert _loops(clause * 8) and not _loops(SENTENCE)


def test_window_setting() -> None:
    assert BridgeConfig.from_env({}).asr_window == "fit"
    assert BridgeConfig.from_env({"KALLGLOT_ASR_WINDOW": "full"}).asr_window == "full"
    with pytest.raises(BridgeConfigError, match="KALLGLOT_ASR_WINDOW"):
        BridgeConfig.from_env({"KALLGLOT_ASR_WINDOW": "30s"})

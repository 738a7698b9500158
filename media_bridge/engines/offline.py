"""The default engine, fully offline: faster-whisper → Apertium (or a CTranslate2 model) →
espeak-ng (or a Piper voice)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from media_bridge.audio import resample, to_float
from media_bridge.capabilities import WHISPER_LANGUAGES, apertium_pairs, base_language
from media_bridge.config import BridgeConfig
from media_bridge.engines.asr_whisper import WHISPER_RATE, WhisperASR
from media_bridge.engines.base import (
    Engine,
    EngineResult,
    SpeechChunk,
    Translation,
    UnsupportedPairError,
    UtteranceRequest,
)
from media_bridge.engines.model_files import whisper_model_dir
from media_bridge.engines.mt_apertium import ApertiumTranslator
from media_bridge.engines.mt_ctranslate2 import NLLB_CODES, CT2Translator
from media_bridge.engines.tts_espeak import EspeakTTS
from media_bridge.engines.tts_piper import PiperTTS

MAX_CHUNK_S = 10.0  # docs/media-wire.md: one message per sentence, at most ~10 s each
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class OfflineEngine(Engine):
    name = "offline"

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.asr = WhisperASR(
            whisper_model_dir(config.whisper_model, config.model_cache),
            compute_type=config.asr_compute_type,
            beam_size=config.asr_beam_size,
            threads=config.asr_threads,
            workers=config.engine_workers,
        )
        self.apertium = ApertiumTranslator()
        self.ct2 = (
            CT2Translator(config.ct2_mt_model, config.ct2_mt_pairs, config.asr_threads)
            if config.ct2_mt_model is not None
            else None
        )
        self.espeak = EspeakTTS()
        self.piper = PiperTTS(config.piper_voice) if config.piper_voice is not None else None

    def warm_up(self) -> None:
        self.asr.load()
        if self.ct2 is not None:
            self.ct2.load()

    def source_candidates(self, target: str | None) -> frozenset[str]:
        """Languages worth detecting: those translatable into ``target`` (any target when unknown)."""
        pairs = set(apertium_pairs())
        if self.ct2 is not None:
            pairs |= {p for p in self.ct2.pairs if p != ("*", "*")}
            if ("*", "*") in self.ct2.pairs:
                pairs |= {(lang, "*") for lang in NLLB_CODES}
        sources = {s for s, t in pairs if target is None or t in (target, "*")} - {target}
        if not sources:
            return frozenset()  # nothing translates into target: detect freely, fail honestly
        return frozenset(sources | ({target} if target else set())) & WHISPER_LANGUAGES

    def translate(self, text: str, source: str, target: str) -> str:
        if source == target:
            return text
        if self.ct2 is not None and self.ct2.supports(source, target):
            return self.ct2.translate(text, source, target)
        if self.apertium.supports(source, target):
            return self.apertium.translate(text, source, target)
        raise UnsupportedPairError(f"no installed translation engine translates {source}->{target}")

    def speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        if self.piper is not None and self.piper.language == language:
            return self.piper.synthesize(text, language)
        return self.espeak.synthesize(text, language)

    def process(self, request: UtteranceRequest) -> Iterator[EngineResult]:
        audio = to_float(resample(request.samples, request.sample_rate, WHISPER_RATE))
        source = base_language(request.source_language)
        hint = source if source in WHISPER_LANGUAGES else None
        target_hint = base_language(request.target_language) if request.target_language else None
        candidates = self.source_candidates(target_hint) if hint is None else None
        transcript = self.asr.transcribe(audio, hint, candidates)
        if not transcript.text:
            return
        yield transcript
        if request.target_language is None:
            return
        target = base_language(request.target_language)
        text = self.translate(transcript.text, base_language(transcript.language), target)
        if not text:
            return
        yield Translation(text=text, language=target)
        if request.synthesize:
            yield from self.speech_chunks(text, target, request.output_rate)

    def speech_chunks(self, text: str, language: str, output_rate: int) -> Iterator[SpeechChunk]:
        """One chunk per sentence (at most MAX_CHUNK_S each), at ``output_rate``, each yielded as
        soon as it is synthesized."""
        index = 0
        step = int(MAX_CHUNK_S * output_rate)
        for sentence in split_sentences(text):
            samples, rate = self.speak(sentence, language)
            samples = resample(samples, rate, output_rate)
            for start in range(0, samples.size, step):
                yield SpeechChunk(samples[start : start + step], output_rate, index)
                index += 1

"""The default engine, fully offline: faster-whisper → Apertium (or a CTranslate2 model, or
Whisper's own translation into English) → espeak-ng (or a Piper voice; the bundled Piper voice
for English).

Translation runs sentence by sentence and each sentence is spoken as soon as it is translated,
so the listener hears the first sentence while the rest is still being translated."""

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
from media_bridge.engines.mt_ctranslate2 import NLLB_CODES
from media_bridge.engines.tts_espeak import EspeakTTS
from media_bridge.engines.tts_piper import PiperTTS, bundled_english_voice
from media_bridge.models.installed import resolve_whisper_model
from media_bridge.models.translators import ct2_chain, pulled_piper_voices
from media_bridge.translation_paths import TranslationPath, plan_path

WARM_APERTIUM_PAIRS = 8  # pipelines started with the engine; further pairs start on first use
MAX_CHUNK_S = 10.0  # docs/media-wire.md: one message per sentence, at most ~10 s each
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class OfflineEngine(Engine):
    name = "offline"

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.asr = WhisperASR(
            whisper_model_dir(
                resolve_whisper_model(config.whisper_model, config.model_cache), config.model_cache
            ),
            compute_type=config.asr_compute_type,
            beam_size=config.asr_beam_size,
            threads=config.asr_threads,
            workers=config.engine_workers,
            window=config.asr_window,
        )
        self.apertium = ApertiumTranslator()
        self.ct2 = ct2_chain(config)  # KALLGLOT_CT2_MT_MODEL, then pulled OPUS-MT pairs and NLLB
        self.espeak = EspeakTTS()
        # Piper voices by language: the bundled English voice, then KALLGLOT_PIPER_VOICE (which
        # replaces it when it speaks English too). espeak-ng speaks every other language.
        self.piper_voices: dict[str, PiperTTS] = {}
        english = bundled_english_voice() if config.english_voice == "piper" else None
        for voice in (english, config.piper_voice):
            if voice is not None:
                tts = PiperTTS(voice, threads=config.asr_threads)
                if tts.language:
                    self.piper_voices[tts.language] = tts
        self.piper_voices = {**pulled_piper_voices(config), **self.piper_voices}  # `kallglot models pull`

    @property
    def piper(self) -> PiperTTS | None:
        """The configured KALLGLOT_PIPER_VOICE's adapter (None when not configured)."""
        voice = self.config.piper_voice
        return next((t for t in self.piper_voices.values() if t.voice == voice), None) if voice else None

    def warm_up(self) -> None:
        self.asr.load()
        # Apertium's pipelines load their dictionaries at start (≈0.2 s each): not on a caller's turn.
        self.apertium.warm_up(sorted(apertium_pairs())[:WARM_APERTIUM_PAIRS])
        if self.ct2 is not None:
            self.ct2.load()
        for tts in self.piper_voices.values():
            tts.load()

    def close(self) -> None:
        self.apertium.close()

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

    def text_translator(self, source: str, target: str) -> str | None:
        """The name of the text translator serving the pair (translation_paths), or None."""
        if self.ct2 is not None and self.ct2.supports(source, target):
            return self.ct2.label(source, target)
        return "apertium" if self.apertium.supports(source, target) else None

    def translate(self, text: str, source: str, target: str) -> str:
        if source == target:
            return text
        if self.ct2 is not None and self.ct2.supports(source, target):
            return self.ct2.translate(text, source, target)
        if self.apertium.supports(source, target):
            return self.apertium.translate(text, source, target)
        raise UnsupportedPairError(f"no installed translation engine translates {source}->{target}")

    def speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        piper = self.piper_voices.get(language)
        if piper is not None:
            return piper.synthesize(text, language)
        return self.espeak.synthesize(text, language)

    def process(self, request: UtteranceRequest) -> Iterator[EngineResult]:
        audio = to_float(resample(request.samples, request.sample_rate, WHISPER_RATE))
        source = base_language(request.source_language)
        hint = source if source in WHISPER_LANGUAGES else None
        target = base_language(request.target_language) if request.target_language else None
        planned = plan_path(hint, target, self.text_translator) if hint and target else None
        english: str | None = None
        if planned is not None and planned.whisper_to_english:
            both = self.asr.transcribe_and_translate(audio, hint)  # one encoder pass for both
            transcript, english = both.transcript, both.english
        else:
            candidates = self.source_candidates(target) if hint is None else None
            transcript = self.asr.transcribe(audio, hint, candidates)
        if not transcript.text:
            return
        yield transcript
        if target is None:
            return
        spoken = base_language(transcript.language)
        path = plan_path(spoken, target, self.text_translator)  # a detected source is known only now
        if path is None:
            raise UnsupportedPairError(f"no installed translation engine translates {spoken}->{target}")
        if path.whisper_to_english and english is None:
            english = self.asr.translate_to_english(audio, spoken)
        text = english if path.whisper_to_english else transcript.text
        yield from self.translate_and_speak(text or "", spoken, target, path, request)

    def translate_and_speak(
        self, text: str, source: str, target: str, path: TranslationPath, request: UtteranceRequest
    ) -> Iterator[EngineResult]:
        """Translate sentence by sentence; each sentence's speech is yielded as soon as it is
        ready. The complete Translation comes once the last sentence is translated (before its
        speech), so a one-sentence utterance yields Translation then speech, as before."""
        mt_source = path.mt_source or source
        sentences = split_sentences(text)
        done: list[str] = []
        index = 0
        for number, sentence in enumerate(sentences):
            out = self.translate(sentence, mt_source, target) if path.mt else sentence
            if out:
                done.append(out)
            if number == len(sentences) - 1 and done:
                yield Translation(text=" ".join(done), language=target, path=path.name)
            if out and request.synthesize:
                for chunk in self.speech_chunks(out, target, request.output_rate):
                    yield SpeechChunk(chunk.samples, chunk.sample_rate, index)
                    index += 1

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

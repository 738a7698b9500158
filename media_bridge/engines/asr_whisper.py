"""Speech recognition with faster-whisper (CTranslate2) on the CPU.

Besides transcription, Whisper's ``translate`` task turns speech in any of its languages into
English text; :meth:`WhisperASR.transcribe_and_translate` encodes the audio once and decodes it
twice (transcript in the spoken language, then English), which costs one encoder pass less than
two ``transcribe()`` calls (docs/performance.md).

The encoder's window is fitted to the utterance (its length plus a margin) instead of Whisper's
fixed 30 s: on a 4 s utterance that cuts the encoder from ≈700 to ≈80 ms and the decoder's cross
attention with it (docs/performance.md). What a short window does wrong is loop: the decoder,
not seeing 30 s of silence after the speech, says the sentence again until its token budget ends.
A loop of whole sentences is cut at its first repeat (the 30 s window's text, in every case
measured); any other loop is redone the classic way (30 s window, temperature fallback). A low
log-probability alone is not redone: the 30 s window is as unsure on the same audio (measured)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media_bridge.config import ASR_WINDOWS
from media_bridge.engines.base import Transcript

WHISPER_RATE = 16000
# Above this probability Whisper's own language pick is trusted even outside the candidates.
CONFIDENT_DETECTION = 0.9
# Decoding budget of the shared-encoder path: generous for speech (≈3-5 tokens/s in English,
# more in CJK), small enough that a greedy repetition loop ends quickly.
BASE_TOKENS = 32
TOKENS_PER_SECOND = 12
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
FRAMES_PER_SECOND = 100  # Whisper's mel frames (10 ms hop)
FULL_WINDOW_FRAMES = 3000  # 30 s
# Silence after the utterance in a fitted window: without some, Whisper tends to drop or
# hallucinate the last word, or loop (measured: 1 s gives the 30 s window's transcripts).
WINDOW_MARGIN_S = 1.0
# faster-whisper's own threshold for a repetition loop (its temperature fallback uses it).
LOOP_COMPRESSION_RATIO = 2.4


@dataclass(frozen=True)
class SpeechToEnglish:
    """One utterance decoded twice from the same encoder output."""

    transcript: Transcript  # in the spoken language
    english: str  # Whisper's own translation (task=translate)


class WhisperASR:
    def __init__(
        self,
        model_dir: Path,
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 2,
        workers: int = 1,
        window: str = "fit",
    ) -> None:
        if window not in ASR_WINDOWS:
            raise ValueError(f"ASR window must be one of {ASR_WINDOWS}, got {window!r}")
        self.model_dir = model_dir
        self.window = window
        self.full_window_retries = 0  # fitted decodes redone in the 30 s window
        self.loops_cut = 0  # fitted decodes whose repeated sentences were cut
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.threads = threads
        self.workers = workers
        self._model: object | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel  # heavy import, only where ASR runs

                self._model = WhisperModel(
                    str(self.model_dir),
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.threads,
                    num_workers=self.workers,
                    local_files_only=True,
                )

    @staticmethod
    def _pick(
        top: str, top_p: float, probabilities: list[tuple[str, float]], candidates: frozenset[str]
    ) -> str:
        if top in candidates or top_p >= CONFIDENT_DETECTION:
            return str(top)  # a confident pick outside the candidates stays (→ "unsupported pair")
        allowed = [(lang, p) for lang, p in probabilities if lang in candidates]
        return str(max(allowed, key=lambda item: item[1])[0]) if allowed else str(top)

    def detect(self, audio: np.ndarray, candidates: frozenset[str]) -> str:
        """The most probable of ``candidates`` (Whisper's own pick among ~100 languages is often
        wrong on a short utterance; the session can only use languages it can translate)."""
        self.load()
        top, top_p, probabilities = self._model.detect_language(audio)  # type: ignore[attr-defined]
        return self._pick(top, top_p, probabilities, candidates)

    def transcribe(
        self, audio: np.ndarray, language: str | None, candidates: frozenset[str] | None = None
    ) -> Transcript:
        """``audio``: float32 mono at 16 kHz; ``language`` None = detect (among ``candidates``
        when given)."""
        if self.window == "fit" and audio.size <= FULL_WINDOW_FRAMES * WHISPER_RATE // FRAMES_PER_SECOND:
            fitted = self._decode_fitted(audio, language, candidates, ("transcribe",))
            if fitted is not None:
                return Transcript(fitted[1][0], fitted[0])
        return self._transcribe_classic(audio, language, candidates)

    def _transcribe_classic(
        self, audio: np.ndarray, language: str | None, candidates: frozenset[str] | None
    ) -> Transcript:
        """faster-whisper's own path: 30 s window, temperature fallback on a poor decode."""
        self.load()
        if language is None and candidates:
            language = self.detect(audio, candidates)
        segments, info = self._model.transcribe(  # type: ignore[attr-defined]
            audio,
            language=language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return Transcript(text=text.strip(), language=language or info.language)

    def transcribe_and_translate(
        self, audio: np.ndarray, language: str | None, candidates: frozenset[str] | None = None
    ) -> SpeechToEnglish:
        """Transcript in the spoken language and Whisper's English translation of it, from one
        encoder pass; ``language`` None = detect on that same encoder output."""
        language, (text, english) = self.decode(audio, language, candidates, ("transcribe", "translate"))
        return SpeechToEnglish(Transcript(text, language), english)

    def translate_to_english(self, audio: np.ndarray, language: str) -> str:
        return self.decode(audio, language, None, ("translate",))[1][0]

    def decode(
        self,
        audio: np.ndarray,
        language: str | None,
        candidates: frozenset[str] | None,
        tasks: tuple[str, ...],
    ) -> tuple[str, list[str]]:
        """Encode once, then one greedy (or beam) decode per task, without timestamps. An
        utterance is at most 15 s, i.e. one 30 s Whisper window. Returns (language, texts).
        In the fitted window first; redone in the full one when that decode still loops."""
        if self.window == "fit":
            fitted = self._decode_fitted(audio, language, candidates, tasks)
            if fitted is not None:
                return fitted
        return self._decode(audio, language, candidates, tasks, fitted=False)

    def _decode_fitted(
        self,
        audio: np.ndarray,
        language: str | None,
        candidates: frozenset[str] | None,
        tasks: tuple[str, ...],
    ) -> tuple[str, list[str]] | None:
        """The fitted-window decode, loops of whole sentences cut; None (counted) when a text
        still loops."""
        language, texts = self._decode(audio, language, candidates, tasks, fitted=True)
        cut = [_cut_repetition(text) for text in texts]
        if any(c != t for c, t in zip(cut, texts, strict=True)):
            self.loops_cut += 1
        if any(_loops(text) for text in cut):
            self.full_window_retries += 1
            return None
        return language, cut

    def _decode(
        self,
        audio: np.ndarray,
        language: str | None,
        candidates: frozenset[str] | None,
        tasks: tuple[str, ...],
        fitted: bool,
    ) -> tuple[str, list[str]]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        self.load()
        model = self._model
        extractor = model.feature_extractor  # type: ignore[attr-defined]
        frames = FULL_WINDOW_FRAMES
        if fitted:
            # The margin is digital silence added to the audio, i.e. the log-mel floor; padding
            # the features with zeros instead (as pad_or_trim does) reads as a mid-level hum and
            # sends the decoder into loops ("I I I I …") on utterances that end on speech.
            margin = int(WINDOW_MARGIN_S * WHISPER_RATE)
            features = extractor(audio, padding=margin + 160)[..., :-1][..., : extractor.nb_max_frames]
            frames = min(FULL_WINDOW_FRAMES, features.shape[-1] + features.shape[-1] % 2)  # stride 2
        else:
            features = extractor(audio)[..., :-1][..., : extractor.nb_max_frames]
        encoded = model.encode(pad_or_trim(features, frames))  # type: ignore[attr-defined]
        if language is None:
            results = model.model.detect_language(encoded)[0]  # type: ignore[attr-defined]
            probabilities = [(token[2:-2], float(p)) for token, p in results]
            top, top_p = probabilities[0]
            language = self._pick(top, top_p, probabilities, candidates or frozenset())
        max_new = BASE_TOKENS + int(TOKENS_PER_SECOND * audio.size / WHISPER_RATE)
        texts = []
        for task in tasks:
            tokenizer = Tokenizer(model.hf_tokenizer, True, task=task, language=language)  # type: ignore[attr-defined]
            prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            result = model.model.generate(  # type: ignore[attr-defined]
                encoded,
                [prompt],
                beam_size=self.beam_size,
                max_length=len(prompt) + max_new,
                suppress_blank=True,
                suppress_tokens=_suppressed(tokenizer),
            )[0]
            text = tokenizer.decode(result.sequences_ids[0]).strip()
            texts.append(text)
        return language, texts


def _cut_repetition(text: str) -> str:
    """``text`` up to the first sentence that repeats an earlier one ("A. B. A. B. A" → "A. B."),
    or without a last unfinished sentence that starts an earlier one again ("A. B. A…" → "A. B.");
    unchanged otherwise."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    seen: set[str] = set()
    for number, sentence in enumerate(sentences):
        key = sentence.lower().rstrip(".!?")
        unfinished = number == len(sentences) - 1 and not sentence.endswith((".", "!", "?"))
        if key in seen or (unfinished and number and any(k.startswith(key) for k in seen)):
            return " ".join(sentences[:number])
        seen.add(key)
    return text


def _loops(text: str) -> bool:
    """faster-whisper's loop test: text that compresses this well repeats itself."""
    from faster_whisper.transcribe import get_compression_ratio

    return bool(text) and get_compression_ratio(text) > LOOP_COMPRESSION_RATIO


def _suppressed(tokenizer: object) -> list[int]:
    """Whisper's default suppression (non-speech symbols and the special task tokens)."""
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(tokenizer, [-1]))  # type: ignore[arg-type]

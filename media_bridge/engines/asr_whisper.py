"""Speech recognition with faster-whisper (CTranslate2) on the CPU."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from media_bridge.engines.base import Transcript

WHISPER_RATE = 16000
# Above this probability Whisper's own language pick is trusted even outside the candidates.
CONFIDENT_DETECTION = 0.9


class WhisperASR:
    def __init__(
        self,
        model_dir: Path,
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 2,
        workers: int = 1,
    ) -> None:
        self.model_dir = model_dir
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

    def detect(self, audio: np.ndarray, candidates: frozenset[str]) -> str:
        """The most probable of ``candidates`` (Whisper's own pick among ~100 languages is often
        wrong on a short utterance; the session can only use languages it can translate)."""
        self.load()
        top, top_p, probabilities = self._model.detect_language(audio)  # type: ignore[attr-defined]
        if top in candidates or top_p >= CONFIDENT_DETECTION:
            return str(top)  # a confident pick outside the candidates stays (→ "unsupported pair")
        allowed = [(lang, p) for lang, p in probabilities if lang in candidates]
        return str(max(allowed, key=lambda item: item[1])[0]) if allowed else str(top)

    def transcribe(
        self, audio: np.ndarray, language: str | None, candidates: frozenset[str] | None = None
    ) -> Transcript:
        """``audio``: float32 mono at 16 kHz; ``language`` None = detect (among ``candidates``
        when given)."""
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

"""Speech recognition with faster-whisper (CTranslate2) on the CPU."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from media_bridge.engines.base import Transcript

WHISPER_RATE = 16000


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

    def transcribe(self, audio: np.ndarray, language: str | None) -> Transcript:
        """``audio``: float32 mono at 16 kHz; ``language`` None = detect."""
        self.load()
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

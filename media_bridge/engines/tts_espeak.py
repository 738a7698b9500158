"""Speech synthesis with espeak-ng (Debian package), via its CLI; text goes in on stdin."""

from __future__ import annotations

import numpy as np

from media_bridge.audio import WavError, parse_wav
from media_bridge.engines.base import EngineError
from media_bridge.engines.tool import run_tool

TIMEOUT_S = 30.0


class EspeakTTS:
    def __init__(self, words_per_minute: int = 165) -> None:
        self.words_per_minute = words_per_minute

    def synthesize(self, text: str, language: str) -> tuple[np.ndarray, int]:
        wav = run_tool(
            "espeak-ng",
            ["espeak-ng", "-v", language, "-s", str(self.words_per_minute), "--stdout", "--stdin"],
            text.encode("utf-8"),
            TIMEOUT_S,
        )
        try:
            return parse_wav(wav)
        except WavError as exc:
            raise EngineError(f"espeak-ng produced unreadable audio: {exc}") from exc

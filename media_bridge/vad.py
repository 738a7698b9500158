"""Speech segmentation: voiced/unvoiced decisions per 20 ms frame (webrtcvad, or Silero VAD with
``engine="silero"``: media_bridge/vad_silero.py) → utterances.

Onset: at least ``ONSET_VOICED`` of the last ``ONSET_WINDOW`` frames are voiced (a short
click does not start speech); the window is kept as pre-roll so the first syllable is not cut.
End: ``silence_ms`` of consecutive unvoiced frames (the configurable end-of-speech silence).
Frames quieter than ``energy_floor_dbfs`` never count as voiced.
Utterances shorter than ``min_speech_ms`` of voiced audio are dropped; longer than
``max_utterance_ms`` are cut so that a monologue still gets translated piecewise.

Speculation (``speculate_ms`` > 0, below ``silence_ms``): after that much silence a ``Pause``
carries the utterance as it would end here — the same audio the end of speech will yield if the
silence lasts — so the engine can start before the hangover is over; a voiced frame before the
end brings ``Resumed`` (the speculation is void).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import webrtcvad

from media_bridge.audio import FRAME_MS, frame_bytes, rms_dbfs

ONSET_WINDOW = 10  # frames (200 ms)
ONSET_VOICED = 6


@dataclass(frozen=True)
class SpeechStarted:
    wall_time: float


@dataclass(frozen=True)
class Utterance:
    samples: np.ndarray  # int16 mono at sample_rate
    sample_rate: int
    started_at: float  # wall clock (unix seconds) of the first voiced frame's arrival
    ended_at: float  # wall clock of the last voiced frame's arrival
    detected_mono: float = field(default_factory=time.monotonic)  # when end of speech was declared

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


@dataclass(frozen=True)
class Pause:
    candidate: Utterance  # what the end of speech will deliver if the silence lasts


@dataclass(frozen=True)
class Resumed:
    pass


VadEvent = SpeechStarted | Utterance | Pause | Resumed


class VoiceDetector(Protocol):
    def is_speech(self, frame: bytes, sample_rate: int) -> bool: ...


class SpeechSegmenter:
    """Feed 20 ms L16 frames; get SpeechStarted / Utterance events back."""

    def __init__(
        self,
        sample_rate: int,
        aggressiveness: int = 2,
        silence_ms: int = 600,
        min_speech_ms: int = 200,
        max_utterance_ms: int = 15000,
        energy_floor_dbfs: float = -55.0,
        engine: str = "webrtc",
        speculate_ms: int = 0,
    ) -> None:
        self.sample_rate = sample_rate
        self.energy_floor_dbfs = energy_floor_dbfs
        self._vad: VoiceDetector = webrtcvad.Vad(aggressiveness)
        if engine == "silero":
            from media_bridge.vad_silero import SileroDetector  # onnxruntime: only when chosen

            self._vad = SileroDetector(sample_rate)
        self._frame_bytes = frame_bytes(sample_rate)
        self._silence_frames = max(1, silence_ms // FRAME_MS)
        self._min_voiced = max(1, min_speech_ms // FRAME_MS)
        self._max_frames = max(self._silence_frames + 1, max_utterance_ms // FRAME_MS)
        speculate = speculate_ms // FRAME_MS
        self._speculate_frames = speculate if 0 < speculate < self._silence_frames else 0
        self._paused = False  # a Pause was emitted for the current silence run
        self._window: deque[tuple[bytes, bool, float]] = deque(maxlen=ONSET_WINDOW)
        self._speech: list[bytes] = []
        self._in_speech = False
        self._voiced = 0
        self._trailing_silence = 0
        self._started_at = 0.0
        self._last_voiced_at = 0.0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def push(self, frame: bytes, wall_time: float | None = None) -> list[VadEvent]:
        """One 20 ms frame (exactly ``frame_bytes(sample_rate)`` bytes)."""
        if len(frame) != self._frame_bytes:
            raise ValueError(f"frame must be {self._frame_bytes} bytes, got {len(frame)}")
        now = time.time() if wall_time is None else wall_time
        # webrtcvad alone calls faint line noise speech now and then; a level floor stops that.
        level = rms_dbfs(np.frombuffer(frame, dtype="<i2"))
        voiced = level > self.energy_floor_dbfs and self._vad.is_speech(frame, self.sample_rate)
        if not self._in_speech:
            self._window.append((frame, voiced, now))
            if sum(v for _, v, _ in self._window) < ONSET_VOICED:
                return []
            self._in_speech = True
            self._speech = [f for f, _, _ in self._window]
            self._voiced = sum(v for _, v, _ in self._window)
            self._started_at = next(t for _, v, t in self._window if v)
            self._last_voiced_at = now
            self._trailing_silence = 0
            self._window.clear()
            return [SpeechStarted(self._started_at)]
        self._speech.append(frame)
        events: list[VadEvent] = []
        if voiced:
            self._voiced += 1
            self._trailing_silence = 0
            self._last_voiced_at = now
            if self._paused:
                self._paused = False
                events.append(Resumed())
        else:
            self._trailing_silence += 1
        if self._trailing_silence >= self._silence_frames or len(self._speech) >= self._max_frames:
            return [*events, *self._finish()]
        if (self._speculate_frames and self._trailing_silence == self._speculate_frames
                and self._voiced >= self._min_voiced):
            self._paused = True
            events.append(Pause(self._utterance()))
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: emit what is in progress."""
        return self._finish() if self._in_speech else []

    def _utterance(self) -> Utterance:
        # Keep a little of the trailing silence (helps ASR), drop the rest: so a Pause and the
        # end of speech that follows it (no voiced frame between) hold the same audio.
        keep = len(self._speech) - max(0, self._trailing_silence - 5)
        samples = np.frombuffer(b"".join(self._speech[:keep]), dtype="<i2").astype(np.int16)
        return Utterance(samples, self.sample_rate, self._started_at, self._last_voiced_at)

    def _finish(self) -> list[VadEvent]:
        utterance = self._utterance()
        voiced = self._voiced
        self._in_speech = False
        self._paused = False
        self._speech = []
        self._voiced = 0
        self._trailing_silence = 0
        if voiced < self._min_voiced:
            return []
        return [utterance]

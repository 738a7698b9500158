"""The engine contract: utterance audio + languages in; transcript, translation and synthesized
speech out, each yielded as soon as it is ready.

Engines are synchronous and blocking (model inference, subprocesses); the bridge runs them in a
worker thread (:mod:`media_bridge.engines.runner`) and receives the results as an async stream.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


class EngineError(RuntimeError):
    """An utterance the engine cannot process (unsupported pair, tool failure); the message says why."""


class UnsupportedPairError(EngineError):
    pass


@dataclass(frozen=True)
class UtteranceRequest:
    samples: np.ndarray  # int16 mono
    sample_rate: int
    # The speaker's language ("auto" = detect) and the listener's (None = not known yet).
    source_language: str
    target_language: str | None
    output_rate: int  # the listener leg's sample rate
    synthesize: bool = True  # False: transcript + translation text only (assistive mode, agent side)


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # detected or given (ISO 639-1)


@dataclass(frozen=True)
class Translation:
    text: str
    language: str
    # Which steps produced it (media_bridge.translation_paths): "apertium", "nllb", "opus-mt",
    # "whisper-translate", "whisper-translate+apertium", "same-language"; "" = not told.
    path: str = ""


@dataclass(frozen=True)
class SpeechChunk:
    """One sentence of synthesized speech (int16 mono at ``sample_rate`` = the request's output_rate)."""

    samples: np.ndarray
    sample_rate: int
    index: int

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


EngineResult = Transcript | Translation | SpeechChunk


class Engine(abc.ABC):
    name: str = "engine"

    def warm_up(self) -> None:  # noqa: B027 -- optional hook, a no-op by default
        """Load models ahead of the first call (called once in a worker thread at startup)."""

    @abc.abstractmethod
    def process(self, request: UtteranceRequest) -> Iterator[EngineResult]:
        """Yield Transcript, then Translation (when a target language is known) and SpeechChunks.

        The Translation is always the complete text; an engine may yield the speech of its first
        sentences before it (sentence-by-sentence translation starts speaking sooner)."""

    def close(self) -> None:  # noqa: B027 -- optional hook
        """Release models and subprocesses."""

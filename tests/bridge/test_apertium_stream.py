"""The long-lived Apertium pipeline: the same translations as the ``apertium`` command, one
sentence at a time without restarting a dozen processes, and recovery when it dies."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest

from media_bridge.engines.apertium_stream import ApertiumPipeline, deformat, reformat
from media_bridge.engines.base import EngineError
from media_bridge.engines.mt_apertium import ApertiumTranslator

pytestmark = pytest.mark.skipif(
    shutil.which("apertium-wblank-mode") is None or shutil.which("apertium") is None,
    reason="Apertium is not installed (apt-get install apertium apertium-eng-spa)",
)

SENTENCES = [
    "I would like a table for two people tonight.",
    "Where is the train station, please?",
    "My card [x] was charged twice / 5$ #1 @home <b> {c} ^d^ *e* ~f + g | h \\ i.",
    "Claro, con mucho gusto.",
]


@pytest.fixture()
def pipeline() -> Iterator[ApertiumPipeline]:
    made = ApertiumPipeline("eng-spa", timeout_s=10)
    yield made
    made.close()


def test_the_stream_format_round_trips_text() -> None:
    for text in SENTENCES:
        assert reformat(deformat(text)[:-1]) == text
    assert deformat("a\nb").endswith(b"[][\n]\0")  # the line end is a superblank, then the flush


def test_the_pipeline_translates_as_the_command_does(pipeline: ApertiumPipeline) -> None:
    command = ApertiumTranslator(persistent=False)
    persistent = ApertiumTranslator()
    try:
        for text in SENTENCES[:3]:
            assert persistent.translate(text, "en", "es") == command.translate(text, "en", "es")
        assert persistent.translate("", "en", "es") == ""
    finally:
        persistent.close()
    assert pipeline.translate("Where is the train station?") == "Dónde es la canal de tren?"
    assert pipeline.translate("Hello.") == "Hola."  # the next block: nothing left over


def test_a_dead_pipeline_is_restarted(pipeline: ApertiumPipeline) -> None:
    assert pipeline.translate("Hello.") == "Hola."
    assert pipeline._process is not None
    os.killpg(pipeline._process.pid, signal.SIGKILL)  # every stage, as a crash or the OOM killer might
    pipeline._process.wait()
    with pytest.raises(EngineError, match="eng-spa pipeline failed"):
        pipeline.translate("Hello.")
    assert pipeline.translate("Thank you.") == "Gracias."  # a fresh pipeline


def test_the_translator_falls_back_to_the_command_when_the_pipeline_cannot_start() -> None:
    translator = ApertiumTranslator()
    translator._pipelines["eng-spa"] = ApertiumPipeline("eng-nosuchpair", timeout_s=5)
    try:
        assert translator.translate("Hello.", "en", "es") == "Hola."
    finally:
        translator.close()

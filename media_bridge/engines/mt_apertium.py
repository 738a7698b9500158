"""Rule-based translation with Apertium (Debian packages apertium + apertium-<pair>): a
long-lived null-flush pipeline per pair (apertium_stream), the ``apertium`` CLI per call when
that pipeline cannot run."""

from __future__ import annotations

import logging
import re
import shutil
import threading

from media_bridge.capabilities import apertium_mode, apertium_pairs
from media_bridge.engines.apertium_stream import ApertiumPipeline
from media_bridge.engines.base import EngineError, UnsupportedPairError
from media_bridge.engines.tool import run_tool

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
# Marks Apertium leaves even with -u: '#' (generation gaps) and '@' (untranslated transfer).
_MARKS = re.compile(r"(?<!\w)[#@](?=\w)")


class ApertiumTranslator:
    def __init__(self, persistent: bool = True) -> None:
        self.persistent = persistent and shutil.which("apertium-wblank-mode") is not None
        self._pipelines: dict[str, ApertiumPipeline] = {}
        self._lock = threading.Lock()

    def supports(self, source: str, target: str) -> bool:
        return (source, target) in apertium_pairs()

    def translate(self, text: str, source: str, target: str) -> str:
        if not self.supports(source, target):
            raise UnsupportedPairError(f"Apertium has no {source}->{target} pair installed")
        mode = apertium_mode(source, target)
        if self.persistent:
            try:
                return _MARKS.sub("", self._pipeline(mode).translate(text)).strip()
            except EngineError as exc:
                log.warning("%s; translating with the apertium command instead", exc)
        out = run_tool("apertium", ["apertium", "-u", mode], text.encode("utf-8"), TIMEOUT_S)
        return _MARKS.sub("", out.decode("utf-8", errors="replace")).strip()

    def warm_up(self, pairs: list[tuple[str, str]]) -> None:
        """Start the pipelines (and load their dictionaries) before the first caller speaks."""
        for source, target in pairs:
            if self.supports(source, target):
                self.translate("Hello.", source, target)

    def close(self) -> None:
        with self._lock:
            for pipeline in self._pipelines.values():
                pipeline.close()
            self._pipelines.clear()

    def _pipeline(self, mode: str) -> ApertiumPipeline:
        with self._lock:
            if mode not in self._pipelines:
                self._pipelines[mode] = ApertiumPipeline(mode, TIMEOUT_S)
            return self._pipelines[mode]

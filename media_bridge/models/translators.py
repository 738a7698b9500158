"""The pulled models the offline engine uses: CTranslate2 translators, most specific first (the
configured ``KALLGLOT_CT2_MT_MODEL``, then pulled OPUS-MT pairs, then a pulled NLLB-200 for any
pair), and pulled Piper voices by language."""

from __future__ import annotations

import logging

from media_bridge.config import BridgeConfig
from media_bridge.engines.base import EngineError, UnsupportedPairError
from media_bridge.engines.mt_ctranslate2 import CT2Translator
from media_bridge.engines.tts_piper import PiperTTS
from media_bridge.models.installed import installed_models

log = logging.getLogger(__name__)


class CT2Chain:
    """Looks like one :class:`CT2Translator` (``pairs``, ``supports``, ``load``, ``translate``)."""

    def __init__(self, translators: list[tuple[str, CT2Translator]]) -> None:
        self.translators = translators  # (label, translator): label as capabilities.text_translator
        self.pairs: tuple[tuple[str, str], ...] = tuple(
            dict.fromkeys(p for _, t in translators for p in t.pairs if t.nllb or p != ("*", "*"))
        )

    def pick(self, source: str, target: str) -> tuple[str, CT2Translator] | None:
        return next(((label, t) for label, t in self.translators if t.supports(source, target)), None)

    def supports(self, source: str, target: str) -> bool:
        return self.pick(source, target) is not None

    def label(self, source: str, target: str) -> str | None:
        picked = self.pick(source, target)
        return picked[0] if picked is not None else None

    def load(self) -> None:
        for _, translator in self.translators:
            translator.load()

    def translate(self, text: str, source: str, target: str) -> str:
        picked = self.pick(source, target)
        if picked is None:
            raise UnsupportedPairError(f"no CTranslate2 model serves {source}->{target}")
        return picked[1].translate(text, source, target)


def ct2_chain(config: BridgeConfig) -> CT2Chain | None:
    translators: list[tuple[str, CT2Translator]] = []
    if config.ct2_mt_model is not None:
        configured = CT2Translator(config.ct2_mt_model, config.ct2_mt_pairs, config.asr_threads)
        translators.append(("nllb" if configured.nllb else "opus-mt", configured))
    found = installed_models(config.model_cache)
    translators += [(name, CT2Translator(d, ((s, t),), config.asr_threads)) for s, t, name, d in found.opus]
    if found.nllb is not None:
        translators.append(("nllb", CT2Translator(found.nllb, (("*", "*"),), config.asr_threads)))
    return CT2Chain(translators) if translators else None


def pulled_piper_voices(config: BridgeConfig) -> dict[str, PiperTTS]:
    """Pulled voices by language; one that cannot run here (no Piper installed) is skipped with a
    warning, and espeak-ng speaks that language instead."""
    voices: dict[str, PiperTTS] = {}
    for language, name, onnx in installed_models(config.model_cache).piper:
        try:
            voices.setdefault(language, PiperTTS(onnx, threads=config.asr_threads))
        except EngineError as exc:
            log.warning("pulled voice %s not used: %s", name, exc)
    return voices

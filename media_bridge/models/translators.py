"""The CTranslate2 translators the offline engine uses, most specific first: the configured
``KALLGLOT_CT2_MT_MODEL``, then pulled OPUS-MT pairs, then a pulled NLLB-200 (any pair)."""

from __future__ import annotations

from media_bridge.config import BridgeConfig
from media_bridge.engines.base import UnsupportedPairError
from media_bridge.engines.mt_ctranslate2 import CT2Translator
from media_bridge.models.installed import installed_models


class CT2Chain:
    """Looks like one :class:`CT2Translator` (``pairs``, ``supports``, ``load``, ``translate``)."""

    def __init__(self, translators: list[CT2Translator]) -> None:
        self.translators = translators
        self.pairs: tuple[tuple[str, str], ...] = tuple(
            dict.fromkeys(p for t in translators for p in t.pairs if t.nllb or p != ("*", "*"))
        )

    def pick(self, source: str, target: str) -> CT2Translator | None:
        return next((t for t in self.translators if t.supports(source, target)), None)

    def supports(self, source: str, target: str) -> bool:
        return self.pick(source, target) is not None

    def load(self) -> None:
        for translator in self.translators:
            translator.load()

    def translate(self, text: str, source: str, target: str) -> str:
        translator = self.pick(source, target)
        if translator is None:
            raise UnsupportedPairError(f"no CTranslate2 model serves {source}->{target}")
        return translator.translate(text, source, target)


def ct2_chain(config: BridgeConfig) -> CT2Chain | None:
    translators: list[CT2Translator] = []
    if config.ct2_mt_model is not None:
        translators.append(CT2Translator(config.ct2_mt_model, config.ct2_mt_pairs, config.asr_threads))
    found = installed_models(config.model_cache)
    translators += [CT2Translator(d, ((s, t),), config.asr_threads) for s, t, _, d in found.opus]
    if found.nllb is not None:
        translators.append(CT2Translator(found.nllb, (("*", "*"),), config.asr_threads))
    return CT2Chain(translators) if translators else None

"""The CTranslate2 translation adapter end to end on a tiny random-weight model (OPUS-MT layout
and NLLB layout); the words are meaningless, the plumbing is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_bridge.engines.base import EngineError, UnsupportedPairError
from media_bridge.engines.mt_ctranslate2 import CT2Translator
from tests.bridge.ct2_tiny import build_tiny_model


def test_opus_mt_layout_translates_its_pair_only(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "opus")
    mt = CT2Translator(model, (("en", "es"),), threads=1)
    out = mt.translate("the house is big", "en", "es")
    assert isinstance(out, str) and out == out.strip()
    assert "</s>" not in out and "▁" not in out  # detokenized text, not pieces
    with pytest.raises(UnsupportedPairError, match="en->fr"):
        mt.translate("the house", "en", "fr")


def test_nllb_layout_forces_and_strips_the_target_language_token(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "nllb", nllb=True, extra_tokens=("eng_Latn", "spa_Latn"))
    mt = CT2Translator(model, (("*", "*"),), threads=1)
    assert mt.nllb and mt.supports("en", "es") and not mt.supports("en", "xx")
    out = mt.translate("the house is big", "en", "es")
    assert not out.startswith("spa_Latn")


def test_opus_mt_dir_without_tokenizers_is_reported(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "opus")
    (model / "target.spm").unlink()
    with pytest.raises(EngineError, match=r"target\.spm"):
        CT2Translator(model, (("en", "es"),)).translate("hello", "en", "es")


def test_offline_engine_prefers_the_ct2_model_for_its_pairs(tmp_path: Path) -> None:
    from media_bridge.config import BridgeConfig
    from media_bridge.engines.mt_apertium import ApertiumTranslator
    from media_bridge.engines.offline import OfflineEngine

    model = build_tiny_model(tmp_path / "opus")
    config = BridgeConfig.from_env({"KALLGLOT_CT2_MT_MODEL": str(model), "KALLGLOT_CT2_MT_PAIRS": "en-es"})
    engine = OfflineEngine(config)  # models load lazily: nothing heavy happens here
    text = "the house is big"
    assert engine.translate(text, "en", "es") == CT2Translator(model, (("en", "es"),)).translate(
        text, "en", "es"
    )
    assert engine.translate(text, "en", "es") != ApertiumTranslator().translate(text, "en", "es")
    assert "house" in engine.translate("la casa es grande", "es", "en").lower()  # Apertium for the rest
    assert engine.source_candidates("es") == frozenset({"en", "es"})

"""What the bridge and the API's capability check pick up from the model cache, with the tiny
random-weight CTranslate2 model installed as if pulled (its words are gibberish: the path taken
and that text comes out are checked, not the translation)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from media_bridge.capabilities import (
    Direction,
    not_served,
    served_directions,
    text_translator,
    tts_engine,
    unsupported_pair_reason,
)
from media_bridge.config import BridgeConfig
from media_bridge.engines.model_files import ModelError, bundled_whisper_base
from media_bridge.engines.mt_ctranslate2 import CT2Translator
from media_bridge.models.catalog import find
from media_bridge.models.download import pull
from media_bridge.models.installed import resolve_whisper_model
from tests.models.fixtures import serve
from tests.models.model_server import ModelServer


def pulled(server: ModelServer, cache: Path, work: Path, *names: str) -> Path:
    for name in names:
        serve(server, name, work)
        entry = find(name)
        assert entry is not None
        pull(entry, cache, server.base, io.StringIO(), 0.0)
    return cache


def test_nllb_in_the_cache_serves_de_en_both_ways(model_server: ModelServer, tmp_path: Path) -> None:
    empty = BridgeConfig(model_cache=tmp_path / "empty")
    reason = unsupported_pair_reason("de", "en", config=empty)
    assert reason is not None and "kallglot models pull nllb-200-distilled-600m" in reason
    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "nllb-200-distilled-600m")
    config = BridgeConfig(model_cache=cache)
    assert unsupported_pair_reason("de", "en", config=config) is None
    assert unsupported_pair_reason("en", "de", mode="bidirectional_translation", config=config) is None
    assert text_translator("en", "de", config) == "nllb"
    assert text_translator("en", "es", config) == "nllb"  # a pulled model is preferred over Apertium
    reason = unsupported_pair_reason("en", "xx", config=config)
    assert reason is not None and "pull" not in reason  # nothing in the catalog speaks 'xx'


def test_offline_engine_translates_through_the_pulled_nllb(model_server: ModelServer, tmp_path: Path) -> None:
    from media_bridge.engines.offline import OfflineEngine

    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "nllb-200-distilled-600m")
    whisper = bundled_whisper_base(Path("~/.cache/kallglot"))  # no copy of Whisper into tmp
    engine = OfflineEngine(BridgeConfig(model_cache=cache, whisper_model=whisper))
    assert engine.text_translator("en", "de") == "nllb"
    out = engine.translate("the house is big", "en", "de")
    direct = CT2Translator(cache / "nllb-200-distilled-600m", (("*", "*"),), 1)
    assert out and out == direct.translate("the house is big", "en", "de")


def test_a_pulled_opus_pair_is_preferred_for_its_pair(model_server: ModelServer, tmp_path: Path) -> None:
    from media_bridge.engines.offline import OfflineEngine

    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "opus-mt-en-de",
                   "nllb-200-distilled-600m")
    config = BridgeConfig(model_cache=cache, whisper_model=bundled_whisper_base(Path("~/.cache/kallglot")))
    assert text_translator("en", "de", config) == "opus-mt-en-de"
    assert text_translator("de", "en", config) == "nllb"
    engine = OfflineEngine(config)
    assert engine.text_translator("en", "de") == "opus-mt-en-de"
    opus = CT2Translator(cache / "opus-mt-en-de", (("en", "de"),), 1)
    assert engine.translate("the house is big", "en", "de") == opus.translate("the house is big", "en", "de")


def test_only_an_opus_pair_serves_only_that_pair(model_server: ModelServer, tmp_path: Path) -> None:
    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "opus-mt-en-de")
    config = BridgeConfig(model_cache=cache)
    assert text_translator("en", "de", config) == "opus-mt-en-de"
    assert text_translator("en", "fr", config) is None


def test_directions_and_what_to_pull(model_server: ModelServer, tmp_path: Path) -> None:
    # espeak-ng for every language here (English is Piper's by default: tests/bridge/test_capabilities.py).
    bare = BridgeConfig(model_cache=tmp_path / "empty", english_voice="espeak")
    assert Direction("en", "es", "whisper-base", "apertium", "espeak-ng") in served_directions(bare)
    missing = {(n.source, n.target): n for n in not_served(bare)}
    assert missing[("en", "de")].pull[0] == "nllb-200-distilled-600m"
    assert "opus-mt-en-de" in missing[("en", "de")].pull
    assert ("en", "es") not in missing
    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "nllb-200-distilled-600m")
    config = BridgeConfig(model_cache=cache, english_voice="espeak")
    served = {(d.source, d.target): d for d in served_directions(config)}
    assert served[("en", "de")].mt == "nllb" and served[("de", "en")].tts == "espeak-ng"
    assert ("en", "de") not in {(n.source, n.target) for n in not_served(config)}


def test_whisper_size_resolves_to_the_pulled_model(model_server: ModelServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="kallglot models pull faster-whisper-small"):
        resolve_whisper_model(Path("small"), cache)
    pulled(model_server, cache, tmp_path / "work", "faster-whisper-small")
    assert resolve_whisper_model(Path("small"), cache) == cache / "faster-whisper-small"
    assert resolve_whisper_model(Path("faster-whisper-small"), cache) == cache / "faster-whisper-small"
    assert resolve_whisper_model(tmp_path, cache) == tmp_path  # a directory passes through
    assert BridgeConfig.from_env({"KALLGLOT_WHISPER_MODEL": "small"}).whisper_model == Path("small")


def test_a_pulled_piper_voice_is_used_for_its_language(
    model_server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = pulled(model_server, tmp_path / "cache", tmp_path / "work", "piper-de_DE-thorsten-medium")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    piper = bin_dir / "piper"  # a stand-in CLI: only its presence is checked here
    piper.write_text("#!/bin/sh\nexit 0\n")
    piper.chmod(piper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = BridgeConfig(model_cache=cache)
    assert tts_engine("de", config) == "piper:de_DE-thorsten-medium"
    assert tts_engine("fr", config) == "espeak-ng"

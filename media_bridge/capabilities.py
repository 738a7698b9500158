"""Which language pairs the configured engine can translate, cheaply (no model is loaded).

The API calls :func:`unsupported_pair_reason` when a session is created, so this module imports
nothing heavy: it reads Apertium's installed modes (``apertium -l``), the configured CTranslate2
pairs, espeak-ng's / Piper's voices, and Whisper's fixed language list. Results are cached.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from media_bridge.config import BridgeConfig

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


@functools.lru_cache(maxsize=64)
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


def translation_pairs(config: BridgeConfig) -> frozenset[tuple[str, str]]:
    pairs = set(apertium_pairs())
    if config.ct2_mt_model is not None:
        pairs |= set(config.ct2_mt_pairs)
    return frozenset(pairs)


def can_translate(source: str, target: str, config: BridgeConfig) -> bool:
    if source == target:
        return True  # nothing to translate: the transcript is re-spoken as is
    pairs = translation_pairs(config)
    return (source, target) in pairs or (("*", "*") in pairs and config.ct2_mt_model is not None)


def can_speak(language: str, config: BridgeConfig) -> bool:
    if config.piper_voice is not None and piper_voice_language(config.piper_voice) == language:
        return True
    return espeak_has_voice(language)


def text_translator(source: str, target: str, config: BridgeConfig) -> str | None:
    """The text translator serving the pair ("nllb", "opus-mt", "apertium"), or None."""
    model = config.ct2_mt_model
    ct2 = set(config.ct2_mt_pairs) if model is not None else set()
    if model is not None and ((source, target) in ct2 or (("*", "*") in ct2 and source != target)):
        return "nllb" if (model / "sentencepiece.bpe.model").is_file() else "opus-mt"
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
            return reason
    return None

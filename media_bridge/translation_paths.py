"""Which steps turn speech in one language into text in another (cheap: no model is loaded).

A direction is served by a text translator (Apertium, an OPUS-MT or NLLB CTranslate2 model) when
one serves the pair; otherwise into English by Whisper's own ``translate`` task, and into another
language through English (Whisper's English, then a text translator from English). The path's
name is stored with each transcript turn and counted in the bridge's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from media_bridge.capabilities import WHISPER_LANGUAGES

WHISPER_TRANSLATE = "whisper-translate"
SAME_LANGUAGE = "same-language"  # nothing to translate: the transcript is re-spoken as is
ENGLISH = "en"

# (source, target) → the name of the text translator serving the pair ("apertium", "nllb",
# "opus-mt"), or None.
TextTranslators = Callable[[str, str], str | None]


@dataclass(frozen=True)
class TranslationPath:
    whisper_to_english: bool  # Whisper's translate task runs first (its English feeds ``mt``)
    mt: str | None  # the text translator, from English when whisper_to_english

    @property
    def name(self) -> str:
        if not self.whisper_to_english:
            return self.mt or SAME_LANGUAGE
        return f"{WHISPER_TRANSLATE}+{self.mt}" if self.mt else WHISPER_TRANSLATE

    @property
    def mt_source(self) -> str | None:
        """The language the text translator reads (None = no text translation)."""
        return ENGLISH if self.whisper_to_english and self.mt else None


def plan_path(source: str, target: str, text_mt: TextTranslators) -> TranslationPath | None:
    """The path for ``source`` → ``target`` (ISO 639-1, both known), or None when none exists.
    A text translator for the pair is preferred (it keeps the transcript as its input)."""
    if source == target:
        return TranslationPath(False, None)
    direct = text_mt(source, target)
    if direct:
        return TranslationPath(False, direct)
    if source == ENGLISH or source not in WHISPER_LANGUAGES:
        return None
    if target == ENGLISH:
        return TranslationPath(True, None)
    via = text_mt(ENGLISH, target)
    return TranslationPath(True, via) if via else None

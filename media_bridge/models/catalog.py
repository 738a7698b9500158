"""The catalog of well-known models ``kallglot models pull`` can install, with their public URLs.

Every file is named by its Hugging Face repository and path and fetched from ``resolve/main``.
``sha256`` is pinned where we know it; where it is None the server's own statement (the LFS
object id Hugging Face sends as ``X-Linked-ETag``) is checked instead (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HF_BASE = "https://huggingface.co"

Kind = Literal["nllb", "opus-mt", "whisper", "piper"]
MB = 1_000_000


@dataclass(frozen=True)
class ModelFile:
    repo: str  # Hugging Face repository, owner/name
    path: str  # path inside the repository
    size: int  # approximate bytes, for `models list` and the free-space check (not verified)
    sha256: str | None = None  # pinned checksum; None = the server's stated sha256, else recorded

    @property
    def local_name(self) -> str:
        """Installed files are flat in the model's directory (Piper voices live in subfolders)."""
        return self.path.rsplit("/", 1)[-1]

    def url(self, base: str = HF_BASE) -> str:
        return f"{base.rstrip('/')}/{self.repo}/resolve/main/{self.path}"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    kind: Kind
    description: str
    files: tuple[ModelFile, ...]
    # What it serves: translation pairs (("*","*") = any pair among NLLB's languages), the
    # language a Piper voice speaks, or the Whisper size.
    pairs: tuple[tuple[str, str], ...] = ()
    language: str | None = None
    whisper_size: str | None = None
    license: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def serves(self) -> str:
        if self.kind == "nllb":
            return "mt: any pair among ~200 languages (NLLB-200)"
        if self.kind == "opus-mt":
            return "mt: " + ", ".join(f"{s}->{t}" for s, t in self.pairs)
        if self.kind == "whisper":
            size = self.whisper_size
            return f"asr: Whisper {size} (~100 languages; KALLGLOT_WHISPER_MODEL={size})"
        return f"tts: {self.language}"


def _nllb() -> CatalogEntry:
    repo = "JustFrederik/nllb-200-distilled-600M-ct2-int8"
    return CatalogEntry(
        name="nllb-200-distilled-600m",
        kind="nllb",
        description="NLLB-200 distilled 600M, CTranslate2 int8: translation between any two of 200 languages",
        files=(
            ModelFile(repo, "config.json", 200),
            ModelFile(repo, "model.bin", 623 * MB),
            ModelFile(repo, "sentencepiece.bpe.model", 4_850_000),
            ModelFile(repo, "shared_vocabulary.txt", 2_570_000),
        ),
        pairs=(("*", "*"),),
        license="CC-BY-NC-4.0 (Meta's NLLB weights: non-commercial)",
    )


# OPUS-MT (Helsinki-NLP, Marian) pairs converted to CTranslate2 by the gaudi/opus-mt-*-ctranslate2 repos.
OPUS_PAIRS = (
    ("de", "en"), ("en", "de"), ("fr", "en"), ("en", "fr"), ("it", "en"), ("en", "it"),
    ("es", "en"), ("en", "es"), ("nl", "en"), ("en", "nl"), ("ru", "en"), ("en", "ru"),
    ("zh", "en"), ("en", "zh"), ("pl", "en"), ("uk", "en"), ("sv", "en"), ("en", "sv"),
)


def _opus(source: str, target: str) -> CatalogEntry:
    repo = f"gaudi/opus-mt-{source}-{target}-ctranslate2"
    return CatalogEntry(
        name=f"opus-mt-{source}-{target}",
        kind="opus-mt",
        description=f"OPUS-MT {source}->{target} (Marian), CTranslate2",
        files=(
            ModelFile(repo, "config.json", 215),
            ModelFile(repo, "model.bin", 150 * MB),
            ModelFile(repo, "shared_vocabulary.json", 1_200_000),
            ModelFile(repo, "source.spm", 800_000),
            ModelFile(repo, "target.spm", 800_000),
        ),
        pairs=((source, target),),
        license="Apache-2.0 (OPUS-MT: CC-BY-4.0)",
    )


def _whisper(size: str, model_mb: int, large: bool = False) -> CatalogEntry:
    repo = f"Systran/faster-whisper-{size}"
    vocabulary = "vocabulary.json" if large else "vocabulary.txt"
    extra = (ModelFile(repo, "preprocessor_config.json", 340),) if large else ()
    return CatalogEntry(
        name=f"faster-whisper-{size}",
        kind="whisper",
        description=f"Whisper {size} for faster-whisper (CTranslate2)",
        files=(
            ModelFile(repo, "config.json", 2_400),
            ModelFile(repo, "model.bin", model_mb * MB),
            ModelFile(repo, "tokenizer.json", 2_200_000),
            ModelFile(repo, vocabulary, 460_000 if not large else 1_070_000),
            *extra,
        ),
        whisper_size=size,
        license="MIT",
        aliases=(size,),
    )


# One good voice per common language (rhasspy/piper-voices; more at docs/models.md).
PIPER_VOICES = (
    ("en", "en_US", "lessac", "medium", 63),
    ("de", "de_DE", "thorsten", "medium", 63),
    ("es", "es_ES", "davefx", "medium", 63),
    ("fr", "fr_FR", "siwis", "medium", 63),
    ("it", "it_IT", "riccardo", "x_low", 28),
    ("pt", "pt_BR", "faber", "medium", 63),
    ("nl", "nl_NL", "mls", "medium", 63),
    ("pl", "pl_PL", "gosia", "medium", 63),
    ("ru", "ru_RU", "irina", "medium", 63),
    ("uk", "uk_UA", "ukrainian_tts", "medium", 77),
    ("zh", "zh_CN", "huayan", "medium", 63),
)


def _piper(language: str, locale: str, voice: str, quality: str, model_mb: int) -> CatalogEntry:
    stem = f"{locale}-{voice}-{quality}"
    folder = f"{language}/{locale}/{voice}/{quality}"
    repo = "rhasspy/piper-voices"
    return CatalogEntry(
        name=f"piper-{stem}",
        kind="piper",
        description=f"Piper voice {stem} ({language})",
        files=(
            ModelFile(repo, f"{folder}/{stem}.onnx", model_mb * MB),
            ModelFile(repo, f"{folder}/{stem}.onnx.json", 5_000),
        ),
        language=language,
        license="MIT (see the voice's MODEL_CARD)",
    )


CATALOG: tuple[CatalogEntry, ...] = (
    _nllb(),
    *(_opus(s, t) for s, t in OPUS_PAIRS),
    _whisper("small", 484),
    _whisper("medium", 1530),
    _whisper("large-v3", 3090, large=True),
    *(_piper(*voice) for voice in PIPER_VOICES),
)

NLLB_MODEL = "nllb-200-distilled-600m"


def find(name: str, catalog: tuple[CatalogEntry, ...] = CATALOG) -> CatalogEntry | None:
    """The entry named ``name`` (or one of its aliases, e.g. ``small``)."""
    for entry in catalog:
        if name == entry.name or name in entry.aliases:
            return entry
    return None


def opus_for(source: str, target: str) -> CatalogEntry | None:
    return find(f"opus-mt-{source}-{target}")


def piper_for(language: str) -> CatalogEntry | None:
    return next((e for e in CATALOG if e.kind == "piper" and e.language == language), None)

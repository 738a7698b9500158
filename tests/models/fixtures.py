"""Small real model files to serve: a tiny random-weight CTranslate2 model in the layouts of the
catalog's NLLB and OPUS-MT repositories (tests/bridge/ct2_tiny.py), and a fake Piper voice."""

from __future__ import annotations

import json
from pathlib import Path

from media_bridge.engines.mt_ctranslate2 import NLLB_CODES
from media_bridge.models.catalog import CatalogEntry, find
from tests.bridge.ct2_tiny import build_tiny_model
from tests.models.model_server import ModelServer

LFS = (".bin", ".model", ".spm", ".onnx")


def tiny_files(entry: CatalogEntry, work: Path) -> dict[str, bytes]:
    """Bytes for every file of ``entry`` (by its name inside the repository)."""
    if entry.kind in ("nllb", "opus-mt"):
        model = build_tiny_model(work / entry.name, nllb=entry.kind == "nllb",
                                 extra_tokens=tuple(sorted(set(NLLB_CODES.values()))))
        vocab = json.loads((model / "shared_vocabulary.json").read_text())
        out: dict[str, bytes] = {}
        for file in entry.files:
            local = model / file.local_name
            if file.local_name == "shared_vocabulary.txt":
                out[file.path] = ("\n".join(vocab) + "\n").encode()
            else:
                out[file.path] = local.read_bytes()
        return out
    if entry.kind == "piper":
        meta = {"audio": {"sample_rate": 22050}, "language": {"code": f"{entry.language}_XX"}}
        return {f.path: (json.dumps(meta).encode() if f.path.endswith(".json") else b"onnx" * 1000)
                for f in entry.files}
    return {f.path: f"{f.path} of {entry.name}\n".encode() * 50 for f in entry.files}


def serve(server: ModelServer, name: str, work: Path) -> dict[str, bytes]:
    entry = find(name)
    assert entry is not None
    files = tiny_files(entry, work)
    for file in entry.files:
        server.add(file.repo, file.path, files[file.path], lfs=file.path.endswith(LFS))
    return files

"""``kallglot models list|pull|remove`` as a subprocess, against the local mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.models.fixtures import serve
from tests.models.model_server import ModelServer

KALLGLOT = Path(sys.executable).with_name("kallglot")


def run(cache: Path, mirror: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KALLGLOT_MODEL_CACHE": str(cache), "KALLGLOT_MODEL_MIRROR": mirror}
    return subprocess.run([str(KALLGLOT), "models", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_pull_list_remove(model_server: ModelServer, tmp_path: Path) -> None:
    serve(model_server, "opus-mt-de-en", tmp_path / "work")
    cache = tmp_path / "cache"
    listed = json.loads(run(cache, model_server.base, "list").stdout)
    entry = next(e for e in listed["data"] if e["name"] == "opus-mt-de-en")
    assert entry["installed"] is False and entry["serves"] == "mt: de->en" and entry["size_bytes"] > 100e6
    assert entry["files"][0].startswith(f"{model_server.base}/gaudi/opus-mt-de-en-ctranslate2/resolve/main/")

    pulled = run(cache, model_server.base, "pull", "opus-mt-de-en")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["name"] == "opus-mt-de-en"
    assert "opus-mt-de-en: model.bin" in pulled.stderr and "(100%)" in pulled.stderr

    listed = json.loads(run(cache, model_server.base, "list", "--installed").stdout)
    assert [(e["name"], e["installed"], e["path"]) for e in listed["data"]] == [
        ("opus-mt-de-en", True, str(cache / "opus-mt-de-en"))
    ]
    removed = run(cache, model_server.base, "remove", "opus-mt-de-en")
    assert removed.returncode == 0 and json.loads(removed.stdout)["removed"] is True
    assert not (cache / "opus-mt-de-en").exists()
    again = run(cache, model_server.base, "remove", "opus-mt-de-en")
    assert again.returncode == 1 and json.loads(again.stderr)["error"]["code"] == "model_not_installed"


def test_errors_are_one_json_line_with_a_non_zero_exit(model_server: ModelServer, tmp_path: Path) -> None:
    failed = run(tmp_path / "cache", model_server.base, "pull", "faster-whisper-small")  # nothing served
    assert failed.returncode == 1
    error = json.loads(failed.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "download_failed" and error["model"] == "faster-whisper-small"
    assert "Systran/faster-whisper-small/resolve/main/config.json: HTTP 404" in error["message"]
    assert not (tmp_path / "cache" / "faster-whisper-small").exists()
    unknown = run(tmp_path / "cache", model_server.base, "pull", "gpt-5")
    assert unknown.returncode == 1 and json.loads(unknown.stderr)["error"]["code"] == "model_not_found"

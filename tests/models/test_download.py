"""Pulling models from a real local HTTP server shaped like Hugging Face: progress, resume,
checksums, clear errors, atomic install, list and remove."""

from __future__ import annotations

import hashlib
import io
import socket
from pathlib import Path

import pytest

from media_bridge.models import cache as model_cache
from media_bridge.models.catalog import CatalogEntry, ModelFile, find
from media_bridge.models.download import DownloadError, pull
from tests.models.fixtures import serve
from tests.models.model_server import ModelServer

NLLB = "nllb-200-distilled-600m"


def _entry(name: str) -> CatalogEntry:
    entry = find(name)
    assert entry is not None
    return entry


def _nothing_installed(cache: Path, name: str) -> None:
    assert not (cache / name).exists()
    assert name not in model_cache.installed(cache)


def test_pull_verifies_installs_and_reports_progress(model_server: ModelServer, tmp_path: Path) -> None:
    files = serve(model_server, NLLB, tmp_path / "work")
    stream = io.StringIO()
    manifest = pull(_entry(NLLB), tmp_path / "cache", model_server.base, stream, interval_s=0.0)
    installed = tmp_path / "cache" / NLLB
    for file in _entry(NLLB).files:
        assert (installed / file.local_name).read_bytes() == files[file.path]
    by_name = {f.name: f for f in manifest.files}
    assert by_name["model.bin"].verified_by == "server"  # X-Linked-ETag of an LFS file
    assert by_name["config.json"].verified_by == "computed"  # a git-blob ETag is not a sha256
    assert by_name["config.json"].sha256 == hashlib.sha256(files["config.json"]).hexdigest()
    assert model_cache.installed(tmp_path / "cache")[NLLB].kind == "nllb"
    lines = stream.getvalue().splitlines()
    size = len(files["model.bin"])
    assert any(line.startswith(f"{NLLB}: model.bin") and "(100%)" in line for line in lines)
    assert any(f"/ {size / 1e3:.1f} kB" in line for line in lines)
    assert not list((tmp_path / "cache" / ".partial").glob(f"{NLLB}/*"))  # staging renamed away


def test_cut_connection_is_resumed_with_range(model_server: ModelServer, tmp_path: Path) -> None:
    files = serve(model_server, NLLB, tmp_path / "work")
    model_server.cut_after, model_server.cuts_left = 10_000, 1
    pull(_entry(NLLB), tmp_path / "cache", model_server.base, io.StringIO(), 0.0)
    assert ("bytes=10000-") in [r for _, r in model_server.requests]
    assert (tmp_path / "cache" / NLLB / "model.bin").read_bytes() == files["model.bin"]


def test_a_failed_pull_leaves_nothing_visible_and_the_next_one_resumes(
    model_server: ModelServer, tmp_path: Path
) -> None:
    files = serve(model_server, NLLB, tmp_path / "work")
    cache = tmp_path / "cache"
    model_server.cut_after, model_server.cuts_left = 10_000, 100  # every attempt is cut
    with pytest.raises(DownloadError, match=r"model\.bin: connection lost after \d+ bytes.*resume"):
        pull(_entry(NLLB), cache, model_server.base, io.StringIO(), 0.0)
    _nothing_installed(cache, NLLB)
    part = cache / ".partial" / NLLB / "model.bin.part"
    have = part.stat().st_size
    assert have >= 10_000
    model_server.cuts_left = 0
    model_server.requests.clear()
    pull(_entry(NLLB), cache, model_server.base, io.StringIO(), 0.0)
    assert (f"bytes={have}-") in [r for _, r in model_server.requests]
    assert not any(p.endswith("config.json") for p, _ in model_server.requests)  # verified before: kept
    assert (cache / NLLB / "model.bin").read_bytes() == files["model.bin"]


def test_a_server_that_ignores_range_restarts_cleanly(model_server: ModelServer, tmp_path: Path) -> None:
    files = serve(model_server, NLLB, tmp_path / "work")
    cache = tmp_path / "cache"
    part = cache / ".partial" / NLLB / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 5000)  # a stale partial file the server will not continue
    model_server.ranges = False
    pull(_entry(NLLB), cache, model_server.base, io.StringIO(), 0.0)
    assert (cache / NLLB / "model.bin").read_bytes() == files["model.bin"]


def test_checksum_stated_by_the_server_is_enforced(model_server: ModelServer, tmp_path: Path) -> None:
    serve(model_server, NLLB, tmp_path / "work")
    model_server.files["JustFrederik/nllb-200-distilled-600M-ct2-int8/model.bin"].stated_sha256 = "ab" * 32
    cache = tmp_path / "cache"
    expected = r"checksum mismatch .*the server states abab.*nothing was installed"
    with pytest.raises(DownloadError, match=expected):
        pull(_entry(NLLB), cache, model_server.base, io.StringIO(), 0.0)
    _nothing_installed(cache, NLLB)
    assert not list((cache / ".partial" / NLLB).glob("model.bin*"))


def test_pinned_catalog_checksum_is_enforced(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.add("acme/tiny", "notes.txt", b"hello\n")
    good = ModelFile("acme/tiny", "notes.txt", 6, hashlib.sha256(b"hello\n").hexdigest())
    entry = CatalogEntry("tiny", "piper", "a text file", (good,), language="en")
    pull(entry, tmp_path / "ok", model_server.base, io.StringIO(), 0.0)
    assert model_cache.installed(tmp_path / "ok")["tiny"].files[0].verified_by == "catalog"
    bad = CatalogEntry("tiny", "piper", "a text file", (ModelFile("acme/tiny", "notes.txt", 6, "0" * 64),))
    with pytest.raises(DownloadError, match=r"checksum mismatch.*the catalog states 0000"):
        pull(bad, tmp_path / "bad", model_server.base, io.StringIO(), 0.0)
    _nothing_installed(tmp_path / "bad", "tiny")


def test_http_404_names_the_model_and_url(model_server: ModelServer, tmp_path: Path) -> None:
    entry = _entry("opus-mt-de-en")
    with pytest.raises(DownloadError) as caught:
        pull(entry, tmp_path / "cache", model_server.base, io.StringIO(), 0.0)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot pull opus-mt-de-en: ")
    url = f"{model_server.base}/gaudi/opus-mt-de-en-ctranslate2/resolve/main/config.json"
    assert f"{url}: HTTP 404" in message
    _nothing_installed(tmp_path / "cache", "opus-mt-de-en")


def test_connection_refused_reads_as_offline(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    expected = rf"cannot pull {NLLB}: http://127\.0\.0\.1:{port}/.*cannot connect"
    with pytest.raises(DownloadError, match=expected):
        pull(_entry(NLLB), tmp_path / "cache", f"http://127.0.0.1:{port}", io.StringIO(), 0.0)
    _nothing_installed(tmp_path / "cache", NLLB)


def test_remove_deletes_the_model_and_partial_files(model_server: ModelServer, tmp_path: Path) -> None:
    serve(model_server, NLLB, tmp_path / "work")
    cache = tmp_path / "cache"
    pull(_entry(NLLB), cache, model_server.base, io.StringIO(), 0.0)
    assert model_cache.remove(cache, NLLB)
    _nothing_installed(cache, NLLB)
    assert not model_cache.remove(cache, NLLB)

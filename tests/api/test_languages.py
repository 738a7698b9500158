"""GET /v1/languages and session creation follow what is in the model cache (a tiny NLLB pulled
from a local Hugging Face-shaped server)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_bridge.models.catalog import find
from media_bridge.models.download import pull
from tests.api.server import ApiServer
from tests.models.fixtures import serve
from tests.models.model_server import ModelServer

EXAMPLE = {"mode": "bidirectional_translation", "source_language": "de", "target_language": "en",
           "routing": {"type": "sip"}}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KALLGLOT_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer().start()
    yield server
    server.stop()


def _pull_nllb(server: ModelServer, cache: Path, work: Path) -> None:
    serve(server, "nllb-200-distilled-600m", work)
    entry = find("nllb-200-distilled-600m")
    assert entry is not None
    pull(entry, cache, server.base, io.StringIO(), 0.0)


def test_languages_needs_a_key_and_validates_filters(api: ApiServer, cache: Path) -> None:
    assert api.call("GET", "/v1/languages").status_code == 401
    org = api.org()
    bad = api.call("GET", "/v1/languages?source=d3", org)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "source"


def test_languages_and_sessions_follow_the_cache(
    api: ApiServer, cache: Path, model_server: ModelServer, tmp_path: Path
) -> None:
    org = api.org()
    assert api.call("PATCH", "/v1/sip", org, body={"enabled": True}).status_code == 200
    body = api.call("GET", "/v1/languages?source=en", org).json()
    assert {"source": "en", "target": "es", "asr": "whisper-base", "mt": "apertium", "tts": "espeak-ng"} in (
        body["directions"]
    )
    en_de = next(n for n in body["not_served"] if n["target"] == "de")
    assert en_de["pull"][0] == "nllb-200-distilled-600m"
    refused = api.call("POST", "/v1/sessions", org, body={**EXAMPLE, "source_language": "en",
                                                          "target_language": "de"})
    assert refused.status_code == 422
    assert "kallglot models pull nllb-200-distilled-600m" in refused.json()["error"]["message"]

    _pull_nllb(model_server, cache, tmp_path / "work")
    body = api.call("GET", "/v1/languages?source=de&target=en", org).json()
    assert [(d["source"], d["target"], d["mt"]) for d in body["directions"]] == [("de", "en", "nllb")]
    assert body["not_served"] == []
    created = api.call("POST", "/v1/sessions", org, body=EXAMPLE)
    assert created.status_code == 201, created.text
    assert (created.json()["source_language"], created.json()["target_language"]) == ("de", "en")

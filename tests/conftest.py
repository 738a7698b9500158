"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import Store, open_store

# Traces captured from a real FreeSWITCH 1.10.12 + mod_audio_stream (their README says how);
# kept in the repository so that a clone with nothing beside it passes the tests.
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "freeswitch-1.10.12"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "kallglot.db")
    yield s
    s.close()

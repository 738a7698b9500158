"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import Store, open_store

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES_DIR = SHARED_DIR / "fixtures"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "kallglot.db")
    yield s
    s.close()

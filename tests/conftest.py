"""Shared pytest fixtures.

``store`` is SQLite unless ``KALLGLOT_TEST_STORE=postgresql`` (an ad-hoc run of any test module
against PostgreSQL); ``any_store`` runs a test on both backends and is what the store and
admission tests use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import Store, open_store
from tests.pg import SKIP_REASON, PgCluster, pg_bin_dir

# Traces captured from a real FreeSWITCH 1.10.12 + mod_audio_stream (their README says how);
# kept in the repository so that a clone with nothing beside it passes the tests.
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "freeswitch-1.10.12"

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole run, started on first use."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip(SKIP_REASON)
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh, empty database."""
    return pg_cluster.create_database()


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return tmp_path / "kallglot.db"


def _open(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Store:
    if backend == "postgresql":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        return open_store(cluster.create_database(migrated=True))
    return open_store(tmp_path / "kallglot.db")


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = _open(request, os.environ.get("KALLGLOT_TEST_STORE", "sqlite"), tmp_path)
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on each backend in turn."""
    s = _open(request, request.param, tmp_path)
    yield s
    s.close()

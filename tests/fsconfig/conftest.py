"""Fixtures: a copy of the static FreeSWITCH tree per test, settings pointing at it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.settings import Settings
from tests.fsconfig.helpers import make_settings

STATIC_CONF = Path(__file__).resolve().parents[2] / "freeswitch-conf"


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(
        STATIC_CONF, target,
        ignore=shutil.ignore_patterns("rendered", ".rendered-*", ".kallglot-*"),
        symlinks=True,
    )
    return target


@pytest.fixture
def settings(conf_dir: Path) -> Settings:
    return make_settings(conf_dir)

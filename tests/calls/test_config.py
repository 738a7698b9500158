"""Controller configuration from the environment: defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from controller.calls.call_handler import CallConfig
from controller.calls.service import BACKOFF_MAX_S, BACKOFF_START_S, ReconcileConfig, next_backoff
from controller.settings import Settings, SettingsError


def test_defaults() -> None:
    cfg = CallConfig.from_settings(Settings(bridge_url="ws://bridge:8765/"), env={})
    assert cfg.bridge_url == "ws://bridge:8765" and cfg.stream_retries == 3 and cfg.stream_buffer_ms == 0
    assert ReconcileConfig.from_env({}) == ReconcileConfig(interval_s=30.0, grace_s=2.0)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"KALLGLOT_STREAM_BUFFER_MS": "30"}, "KALLGLOT_STREAM_BUFFER_MS"),
        ({"KALLGLOT_STREAM_RETRIES": "many"}, "KALLGLOT_STREAM_RETRIES"),
        ({"KALLGLOT_ANSWER_TIMEOUT_S": "-1"}, "KALLGLOT_ANSWER_TIMEOUT_S"),
    ],
)
def test_bad_call_config_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        CallConfig.from_settings(Settings(), env=env)


def test_bad_reconcile_config_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="KALLGLOT_RECONCILE_GRACE_S"):
        ReconcileConfig.from_env({"KALLGLOT_RECONCILE_GRACE_S": "0"})
    with pytest.raises(SettingsError, match="KALLGLOT_RECONCILE_INTERVAL_S"):
        ReconcileConfig.from_env({"KALLGLOT_RECONCILE_INTERVAL_S": "soon"})


def test_backoff_doubles_up_to_ten_seconds() -> None:
    steps = [BACKOFF_START_S]
    for _ in range(8):
        steps.append(next_backoff(steps[-1]))
    assert steps[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0] and max(steps) == BACKOFF_MAX_S


def test_controller_refuses_to_start_with_a_bad_value(tmp_path: object) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "KALLGLOT_DB": str(Path(str(tmp_path)) / "k.db"), "KALLGLOT_STREAM_BUFFER_MS": "30"}
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "controller", "--listen-port", "0"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "KALLGLOT_STREAM_BUFFER_MS" in json.loads(proc.stderr.strip().splitlines()[-1])["error"]

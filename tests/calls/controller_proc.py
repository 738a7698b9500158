"""The real ``kallglot controller`` as a subprocess (gevent-patched there, never in pytest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ControllerProcess:
    def __init__(self, db: Path, esl_port: int, *, bridge_url: str = "ws://127.0.0.1:9",
                 extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "KALLGLOT_DB": str(db), "KALLGLOT_ESL_PORT": str(esl_port),
               "KALLGLOT_ESL_HOST": "127.0.0.1", "KALLGLOT_BRIDGE_URL": bridge_url,
               "KALLGLOT_CONTROLLER_PORT": "0", "KALLGLOT_CONTROLLER_METRICS_PORT": "0",
               "KALLGLOT_STREAM_RETRY_BASE_S": "0.05",
               "KALLGLOT_RECONCILE_GRACE_S": "0.5", **(extra_env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "controller"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"controller did not start: {err}")
        info = json.loads(line)
        self.address: tuple[str, int] = (info["host"], int(info["port"]))
        # GET /metrics of this controller (None when its listener could not bind).
        self.metrics_port: int | None = info.get("metrics_port")
        self.log_lines: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log_lines.append(line.rstrip("\n"))

    def json_logs(self, event: str) -> list[dict[str, object]]:
        out = []
        for line in list(self.log_lines):
            start = line.find("{")
            if start < 0:
                continue
            try:
                doc = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("event") == event:
                out.append(doc)
        return out

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._drain.join(timeout=5)  # every log line read before callers look at them
        return int(self.proc.returncode)

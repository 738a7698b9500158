"""``kallglot api`` delivers from its own worker; killed with SIGKILL while an attempt is in
flight, a restarted process sends the event again once the lease expires — same event id, one
successful delivery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from controller.domain.requests import SessionCreate
from controller.domain.sessions import create_session
from controller.store import Store, open_store
from tests.webhooks.conftest import FAST, add_endpoint, delivery_rows, new_org
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_api(db: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KALLGLOT_DB": str(db),
        "KALLGLOT_API_PORT": str(_free_port()),
        "KALLGLOT_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "KALLGLOT_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2,0.2,0.2",
        "KALLGLOT_WEBHOOK_TIMEOUT_S": "1",  # lease: 1 s + 2 s margin
        "KALLGLOT_WEBHOOK_POLL_INTERVAL_S": "0.05",
    }
    return subprocess.Popen([sys.executable, "-m", "controller.cli", "api"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_sigkill_mid_attempt_then_restart_delivers_once(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store: Store = open_store(db)
    # Attempt 1: 500. Attempt 2: held for 5 s (the process is killed meanwhile). Attempt 3: 200.
    receiver = Receiver([500, 5.0])
    first = second = None
    try:
        org, _ = new_org(store)
        ep = add_endpoint(store, org, receiver.url)
        store.conn.execute("UPDATE sip_settings SET enabled = 1 WHERE org_id = ?", (org,))
        create_session(store, FAST, org, SessionCreate.model_validate({"routing": {"type": "sip"}}))

        first = _start_api(db)
        receiver.wait_for(2, timeout=20)  # the second attempt is in flight now
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        (row,) = delivery_rows(store)
        assert row["status"] == "pending" and row["attempts"] == 2 and row["lease_until"] > time.time()

        second = _start_api(db)
        _wait(lambda: delivery_rows(store)[0]["status"] == "delivered", timeout=20)
        time.sleep(0.5)  # nothing more may arrive
        reqs = receiver.requests
        assert len(reqs) == 3
        assert receiver.answered.count(200) == 1 and receiver.answered[0] == 500
        assert len({r.headers["Kallglot-Event-Id"] for r in reqs}) == 1 and len({r.body for r in reqs}) == 1
        assert receiver.verified(ep.secret)
        assert json.loads(reqs[0].body)["type"] == "session.created"
        (row,) = delivery_rows(store)
        assert row["attempts"] == 3 and row["lease_until"] is None
        # The killed attempt left no log row; the others did.
        logged = store.query(
            "SELECT attempt, status FROM api_logs WHERE kind = 'webhook_delivery' ORDER BY attempt")
        assert [tuple(r) for r in logged] == [(1, 500), (3, 200)]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
        receiver.stop()
        store.close()

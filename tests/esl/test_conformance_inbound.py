"""The double's inbound event socket against the captured inbound transcripts."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from controller.esl.outbound import OutboundCall
from tests.esl.conformance import compare, drive_inbound
from tests.esl.minictl import MiniController
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import PASSWORD, USER, write_sample_conf


def _wait(cond: Any, timeout: float = 5) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_auth_failure(tmp_path: Path) -> None:
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        run = drive_inbound("inbound-auth-wrong", fs)
    assert compare(run) == []
    assert run.extra == []


def test_reload_commands_and_the_restart_rule(tmp_path: Path) -> None:
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        hooks = {3: lambda: fs.set_profile_uptime(1.9), 11: lambda: fs.set_profile_uptime(12)}
        run = drive_inbound("inbound-reload", fs, hooks)
    assert compare(run) == []


def test_api_bgapi_and_show_calls_during_a_call(tmp_path: Path) -> None:
    answered = threading.Event()

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.execute_wait("answer")
        answered.set()
        call.wait_hangup(10)

    ctl = MiniController(handle)
    box: dict[str, Any] = {}
    try:
        conf = write_sample_conf(tmp_path / "conf")
        with FreeSwitchDouble(conf, controller_addr=f"127.0.0.1:{ctl.port}") as fs:
            def call_starts() -> None:
                fs.show_calls_lag = 3600  # "still 0 rows right after connect"
                box["out"] = fs.place_call("sess_01HFIXTURE0001", user=USER, password=PASSWORD)
                assert answered.wait(5)

            def call_listed() -> None:
                fs.show_calls_lag = 0

            def call_over() -> None:
                fs.hangup(box["out"].uuid)
                assert box["out"].wait_ended(5)

            run = drive_inbound("inbound-api", fs, {9: call_starts, 10: call_listed, 11: call_over})
    finally:
        ctl.close()
    assert compare(run) == []
    assert ctl.errors == []

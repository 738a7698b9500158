"""The double's inbound event socket against the captured inbound transcripts."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from controller.esl.outbound import OutboundCall
from controller.esl.protocol import EVENT_PLAIN, Event
from tests.esl.conformance import compare, drive_inbound
from tests.esl.minictl import MiniController
from tests.esl.wsserver import ScriptedWsServer, fixture_texts_out
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import ACL_USER, PASSWORD, USER, write_sample_conf


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


def test_listener_sees_auth_failures_like_freeswitch(tmp_path: Path) -> None:
    """No event for the 407; HANGUP + HANGUP_COMPLETE without CREATE for the two 403s;
    CREATE + HANGUP + HANGUP_COMPLETE for the dialplan's 404 (fixtures README §4)."""
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        codes: list[int | None] = []

        def s5_calls() -> None:
            codes.append(fs.place_call("sess_01HFIXTURE0002").code)
            codes.append(fs.place_call("sess_01HFIXTURE0002", user=USER, password="wrong").code)
            codes.append(fs.place_call("sess_01HFIXTURE0002", user=ACL_USER, password=PASSWORD).code)
            codes.append(fs.place_call("nosuchdest", user=USER, password=PASSWORD).code)

        run = drive_inbound("inbound-events-auth-failures", fs, after={2: s5_calls})
    assert codes == [407, 403, 403, 404]
    assert compare(run) == []


def test_listener_sees_the_main_call_like_freeswitch(tmp_path: Path) -> None:
    ws = ScriptedWsServer(texts=fixture_texts_out("outbound-call-udp"), send_after=3).start()

    def handle(call: OutboundCall) -> None:
        plays: list[Any] = []
        call.on("mod_audio_stream::play", plays.append)
        call.myevents()
        call.subscribe_audio_stream()
        call.linger()
        call.set_var("absolute_codec_string", "PCMU,PCMA")
        call.execute_wait("answer")
        url = f"ws://127.0.0.1:{ws.port}/v1/media/s/leg1"
        call.api(f"uuid_audio_stream {call.uuid} start {url} mono 16k {{}}")
        import gevent

        with gevent.Timeout(10):
            while not plays:
                gevent.sleep(0.01)
        call.execute_wait("playback", plays[0].json()["file"])
        call.api(f"uuid_audio_stream {call.uuid} stop")
        call.hangup()
        call.wait_hangup(5)

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            def main_call() -> None:
                out = fs.place_call("sess_01HFIXTURE0001", user=USER, password=PASSWORD)
                assert out.code == 200 and out.wait_ended(10)

            run = drive_inbound("inbound-events-call", fs, after={2: main_call})
    finally:
        ctl.close()
        ws.stop()
    assert ctl.errors == []
    assert compare(run) == []


def test_listener_sees_sofia_auth_events_like_freeswitch(tmp_path: Path) -> None:
    """``sofia::pre_register`` with every challenge (407), ``sofia::register_failure`` with every
    403 that refuses credentials (wrong password, unknown user, outside auth-acl), same header
    names in the same order as a real 1.10.12 (fixture inbound-events-sofia-auth)."""
    with socket.socket() as probe:  # a port nothing listens on: the answered call finds no controller
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=closed) as fs:
        codes: list[int | None] = []

        def auth_calls() -> None:
            sid = "sess_01HFIXTURE0002"
            codes.append(fs.place_call(sid).code)
            codes.append(fs.place_call(sid, user=USER, password="wrong").code)
            codes.append(fs.place_call(sid, user="nosuchuser", password="whatever").code)
            codes.append(fs.place_call("nosuchdest", user=USER, password=PASSWORD).code)
            fs.place_call(sid, user=USER, password=PASSWORD)  # past auth: no failure event
            codes.append(fs.place_call(sid, user=ACL_USER, password=PASSWORD).code)

        run = drive_inbound("inbound-events-sofia-auth", fs, after={2: auth_calls})
    assert codes == [407, 403, 403, 404, 403]
    assert compare(run) == []
    assert run.extra == []
    events = [Event.from_frame(f) for _, f in run.pairs if f is not None and f.content_type == EVENT_PLAIN]
    assert [e.subclass for e in events] == [
        "sofia::pre_register", "sofia::pre_register", "sofia::register_failure", "sofia::pre_register",
        "sofia::register_failure", "sofia::pre_register", "sofia::pre_register", "sofia::pre_register",
        "sofia::register_failure"]
    # What the controller's metrics read (controller/metrics/sip_auth.py): the caller's From user
    # on the challenge, the dialled user and the method on the failure.
    assert events[1].get("to-user") == USER and events[1].get("from-user") == "sess_01HFIXTURE0002"
    assert events[2].get("to-user") == "sess_01HFIXTURE0002"
    assert events[2].get("registration-type") == "INVITE"
    assert events[2].get("network-port") == events[1].get("network-port")

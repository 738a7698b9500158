"""The gevent ESL layer against replayed FreeSWITCH transcripts (real sockets, real bytes).

Each client runs in a plain worker thread without monkey patching — the way the API process
uses it — so these tests also prove one-hub-per-thread operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.esl.connection import EslAuthError, EslDisconnected, EslTimeout
from controller.esl.inbound import InboundClient
from controller.esl.outbound import OutboundCall, OutboundServer
from controller.esl.protocol import Event
from tests.esl.replay import Replayer


def in_thread(fn: Callable[[], Any], timeout: float = 20) -> Any:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "worker thread hung"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_inbound_api_and_bgapi_transcript() -> None:
    rp = Replayer("inbound-api")
    port, thread = rp.serve_once()

    def client() -> dict[str, Any]:
        out: dict[str, Any] = {}
        esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=5)
        out["status"] = esl.api("status")
        out["calls"] = esl.api("show calls as json")
        out["bogus"] = esl.api("bogus_cmd")
        out["job0"] = esl.bgapi("status")
        out["job1"] = esl.bgapi_result("status")
        out["job2"] = esl.bgapi_result("uuid_kill 00000000-0000-4000-8000-000000000000")
        out["during"] = esl.api("show calls as json")
        out["during2"] = esl.api("show calls as json")
        out["after"] = esl.api("show calls as json")
        esl.exit()
        out["closed"] = esl.closed
        return out

    out = in_thread(client)
    thread.join(5)
    assert rp.error is None and rp.mismatches == []
    assert out["status"].startswith("UP 0 years")
    assert out["calls"] == '{"row_count": 0}\n'
    assert out["bogus"] == "-ERR bogus_cmd Command not found!\n"
    assert len(out["job0"]) == 36
    assert out["job1"].startswith("UP 0 years")
    assert out["job2"] == "-ERR No such channel!\n"
    assert '"row_count":1' in out["during2"]
    assert out["closed"] is True


def test_inbound_wrong_password_is_a_clear_error() -> None:
    rp = Replayer("inbound-auth-wrong")
    port, _ = rp.serve_once()

    def client() -> None:
        InboundClient.connect("127.0.0.1", port, "NotThePassword", timeout=5)

    with pytest.raises(EslAuthError) as info:
        in_thread(client)
    assert "NotThePassword" not in str(info.value)
    assert "refused" in str(info.value)


def test_inbound_connection_refused() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(EslDisconnected):
        in_thread(lambda: InboundClient.connect("127.0.0.1", port, "x", timeout=2))


def test_api_times_out_when_freeswitch_is_silent() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    conns: list[socket.socket] = []

    def fake_fs() -> None:
        conn, _ = listener.accept()
        conns.append(conn)
        conn.sendall(b"Content-Type: auth/request\n\n")
        conn.recv(100)
        conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        conn.recv(100)  # swallow the api command and never answer

    t = threading.Thread(target=fake_fs, daemon=True)
    t.start()

    def client() -> str:
        esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=2)
        try:
            esl.api("status", timeout=0.3)
        finally:
            esl.close()
        return "no timeout"

    with pytest.raises(EslTimeout):
        in_thread(client)
    listener.close()
    for c in conns:
        c.close()


def test_outbound_main_call_transcript() -> None:
    """The captured main call, replayed against our server: the same commands in the same order,
    channel data decoded, answer's completion matched by Event-UUID, the ::play body exposed,
    CHANNEL_HANGUP detected, and the lingering socket released with exit."""
    rp = Replayer("outbound-call-udp")
    seen: dict[str, Any] = {"events": []}

    def handle(call: OutboundCall) -> None:
        seen["data"] = call.data
        played = threading.Event()
        plays: list[Event] = []

        def on_play(ev: Event) -> None:
            plays.append(ev)

        call.on("mod_audio_stream::play", on_play)
        call.on("*", lambda ev: seen["events"].append(ev.key))
        call.myevents()
        call.subscribe("mod_audio_stream::connect", "mod_audio_stream::play", "mod_audio_stream::error",
                       "mod_audio_stream::disconnect", "mod_audio_stream::json")
        call.linger()
        call.execute("set", "absolute_codec_string=PCMU,PCMA", lock=False)
        answer = call.execute("answer", event_uuid="11f461f9-6f23-46be-8d4f-49826f8ecf7b")
        seen["answer"] = call.wait_complete(answer, timeout=5)
        meta = '{"session_id":"sess_01HFIXTURE0001","role":"customer"}'
        seen["start"] = call.api(
            f"uuid_audio_stream {call.uuid} start ws://127.0.0.1:8765/v1/media/sess_01HFIXTURE0001/leg1 "
            f"mono 16k {meta}")
        import gevent

        with gevent.Timeout(5):
            while not plays:
                gevent.sleep(0.01)
        seen["play"] = plays[0].json()
        seen["broadcast"] = call.api(f"uuid_broadcast {call.uuid} {plays[0].json()['file']} aleg")
        seen["stop"] = call.api(f"uuid_audio_stream {call.uuid} stop")
        call.hangup()
        seen["hungup"] = call.wait_hangup(5)
        seen["cause"] = call.hangup_cause
        assert call.wait_closed(0.2) is False  # linger: FreeSWITCH holds the socket
        played.set()

    def run() -> None:
        import gevent

        server = OutboundServer("127.0.0.1", 0, handle)
        server.start()
        thread = rp.dial(server.address[1])
        with gevent.Timeout(15):
            while thread.is_alive():
                gevent.sleep(0.02)
        server.stop()

    in_thread(run)
    assert rp.error is None, rp.error
    assert rp.mismatches == []
    assert rp.received[-1] == b"exit\n\n"
    assert seen["data"]["variable_sip_req_user"] == "sess_01HFIXTURE0001"
    assert seen["data"]["Unique-ID"] == "b7228e72-954c-4000-870c-420c9e7c4c0b"
    assert seen["answer"].get("Application") == "answer"
    assert seen["start"] == "+OK Success\n"
    assert seen["play"]["file"] == "/tmp/b7228e72-954c-4000-870c-420c9e7c4c0b_0.tmp.r16"  # noqa: S108
    assert seen["broadcast"] == "+OK Message sent\n"
    assert seen["hungup"] is True
    assert seen["cause"] == "NORMAL_CLEARING"
    assert "mod_audio_stream::connect" in seen["events"]
    assert seen["events"][-1] == "CHANNEL_HANGUP_COMPLETE"


def _run_outbound(name: str, handle: Callable[[OutboundCall], None]) -> Replayer:
    rp = Replayer(name)

    def run() -> None:
        import gevent

        server = OutboundServer("127.0.0.1", 0, handle)
        server.start()
        thread = rp.dial(server.address[1])
        with gevent.Timeout(15):
            while thread.is_alive():
                gevent.sleep(0.02)
        server.stop()

    in_thread(run)
    assert rp.error is None, rp.error
    assert rp.mismatches == []
    return rp


def test_outbound_respond_reject_transcript() -> None:
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.linger()
        call.set_var("sip_rh_X-Call-Limit", "5")
        respond = call.execute("respond", "503", lock=False,
                               event_uuid="57592433-73a1-4138-9524-b6bb69d3c31b")
        seen["hungup"] = call.wait_hangup(5)
        seen["cause"] = call.hangup_cause
        seen["complete"] = call.wait_complete(respond, 5)

    rp = _run_outbound("reject-503-call-limit", handle)
    assert rp.received[-1] == b"exit\n\n"
    assert seen["hungup"] is True
    assert seen["cause"] == "NORMAL_TEMPORARY_FAILURE"
    assert seen["complete"].get("Application") == "respond"


def test_outbound_srtp_488_hangup_before_answer_completes() -> None:
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.linger()
        call.set_var("rtp_secure_media", "mandatory")
        answer = call.execute("answer", event_uuid="9d69e934-0017-4d5a-af68-6678a3d20fe4")
        done = call.wait_complete(answer, 5)
        seen["response"] = done.get("Application-Response")
        seen["hungup_first"] = call.hung_up
        seen["cause"] = call.hangup_cause

    _run_outbound("srtp-mandatory-no-crypto", handle)
    assert seen == {"response": "_none_", "hungup_first": True, "cause": "INCOMPATIBLE_DESTINATION"}


def test_greenswitch_defects_we_work_around_still_exist() -> None:
    """Why the layer has its own reader (DESIGN.md §4): greenswitch 0.0.19 glues a plain event's
    body onto the inner Content-Length header and a compact JSON event body makes its parser
    raise (killing its reader greenlet). If these start failing, greenswitch was fixed."""
    from greenswitch.esl import ESLEvent

    from controller.esl.protocol import FrameParser
    from tests.fsdouble.fixtures import fs_records

    record = next(r for r in fs_records("outbound-call-udp") if b"mod_audio_stream%3A%3Aplay" in r)
    frame = FrameParser().feed(record)[0]
    glued = ESLEvent("")
    glued.parse_data(frame.body.decode())
    assert glued.headers["Content-Length"].startswith("103\n\n{")
    assert Event.from_frame(frame).body.startswith(b'{"audioDataType"')
    with pytest.raises(AttributeError):
        ESLEvent("").parse_data('{"Event-Name":"CHANNEL_ANSWER"}')


def test_inbound_client_in_a_monkey_patched_process(tmp_path: Path) -> None:
    """The controller's situation: gevent.monkey.patch_all() first, then our client."""
    import subprocess
    import sys

    from tests.fsdouble import FreeSwitchDouble
    from tests.fsdouble.sample_conf import write_sample_conf

    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys\n"
        "from controller.esl.inbound import InboundClient\n"
        "esl = InboundClient.connect('127.0.0.1', int(sys.argv[1]), 'ClueCon', timeout=5)\n"
        "print(esl.api('reloadxml').strip()); print(esl.bgapi_result('reloadacl').strip()); esl.exit()\n"
    )
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        done = subprocess.run([sys.executable, "-c", script, str(fs.esl_port)], capture_output=True,
                              text=True, timeout=60, cwd=str(Path(__file__).parents[2]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["+OK [Success]", "+OK acl reloaded"]


def test_rude_rejection_is_a_clear_auth_error() -> None:
    """mod_event_socket's answer to a client outside its ACL."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    body = b"Access Denied, go away.\n"

    def fake_fs() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n" % len(body) + body)
        conn.close()

    t = threading.Thread(target=fake_fs, daemon=True)
    t.start()
    with pytest.raises(EslAuthError, match="ACL"):
        in_thread(lambda: InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=2))
    listener.close()


def test_reused_executor_threads_from_an_asyncio_app(tmp_path: Path) -> None:
    """The API process's pattern: each request runs connect/api/close in run_in_executor; pool
    threads are reused, so a thread's gevent hub serves several short-lived connections."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from tests.fsdouble import FreeSwitchDouble
    from tests.fsdouble.sample_conf import write_sample_conf

    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        port = fs.esl_port

        def one_request(n: int) -> str:
            esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=5)
            try:
                return f"{n}:{threading.get_ident()}:" + esl.api("reloadacl", timeout=5).strip()
            finally:
                esl.close()

        async def app() -> list[str]:
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(max_workers=2) as pool:
                return await asyncio.gather(*[loop.run_in_executor(pool, one_request, n) for n in range(8)])

        results = asyncio.run(app())
    assert [r.split(":")[2] for r in results] == ["+OK acl reloaded"] * 8
    assert len({r.split(":")[1] for r in results}) <= 2  # the same threads were reused


def test_connect_times_out_without_auth_request() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts (backlog) but never speaks
    port = listener.getsockname()[1]
    try:
        with pytest.raises(EslTimeout, match="auth/request"):
            in_thread(lambda: InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=0.3))
    finally:
        listener.close()

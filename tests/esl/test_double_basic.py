"""The double driven by our own ESL layer (a mini controller in a worker thread)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.esl.connection import EslCommandError
from controller.esl.inbound import InboundClient
from controller.esl.outbound import OutboundCall
from tests.esl.minictl import MiniController
from tests.esl.test_layer import in_thread
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import ACL_USER, GATEWAY, PASSWORD, USER, write_sample_conf


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return write_sample_conf(tmp_path / "conf")


@contextlib.contextmanager
def run_with(conf: Path, handle: Callable[[OutboundCall], None]
             ) -> Iterator[tuple[FreeSwitchDouble, MiniController]]:
    ctl = MiniController(handle)
    fs = FreeSwitchDouble(conf, controller_addr=f"127.0.0.1:{ctl.port}").start()
    try:
        yield fs, ctl
    finally:
        fs.stop()
        ctl.close()


def test_answered_call_and_remote_bye(conf: Path) -> None:
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.linger()
        seen["data"] = dict(call.data)
        call.set_var("absolute_codec_string", "PCMU,PCMA")
        done = call.execute_wait("answer")
        seen["answer"] = done.get("Application-Response")
        seen["codec"] = call.api(f"uuid_getvar {call.uuid} rtp_use_codec_name")
        asked.set()
        seen["hungup"] = call.wait_hangup(10)
        seen["cause"] = call.hangup_cause

    asked = threading.Event()
    with run_with(conf, handle) as (fs, ctl):
        out = fs.place_call("sess_01ABC", user=USER, password=PASSWORD, transport="tls",
                            codecs=("G722", "PCMU"), headers={"X-Kallglot-Role": "agent"})
        assert out.code == 200, out
        assert out.challenged and out.codec == "PCMU"
        # Asked while the channel is up: once it hung up, uuid_getvar finds no channel.
        assert asked.wait(5)
        out.hangup()
        assert out.wait_ended(5)
        ctl.close()
        assert ctl.errors == []
    assert seen["data"]["variable_sip_req_user"] == "sess_01ABC"
    assert seen["data"]["variable_sip_via_protocol"] == "tls"
    assert seen["data"]["variable_kallglot_org_id"] == "org_fixture"
    assert seen["data"]["variable_sip_h_X-Kallglot-Role"] == "agent"
    assert seen["answer"] == "_none_"
    assert seen["codec"] == "PCMU"
    assert seen["hungup"] is True and seen["cause"] == "NORMAL_CLEARING"


def test_respond_503_with_call_limit_header(conf: Path) -> None:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.linger()
        call.set_var("sip_rh_X-Call-Limit", "5")
        call.execute("respond", "503")
        call.wait_hangup(5)

    with run_with(conf, handle) as (fs, ctl):
        out = fs.place_call("sess_02", user=USER, password=PASSWORD)
        assert (out.code, out.headers["X-Call-Limit"]) == (503, "5")
        assert out.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
        assert out.headers["Reason"] == 'Q.850;cause=41;text="NORMAL_TEMPORARY_FAILURE"'
        assert list(out.headers) == ["Max-Forwards", "Reason", "X-Call-Limit", "Remote-Party-ID"]
        assert out.headers["Remote-Party-ID"] == \
            '"sess_02" <sip:sess_02@sip.fixture.test>;party=calling;privacy=off;screen=no'
        assert ctl.errors == []


def test_srtp_mandatory_without_crypto_is_488(conf: Path) -> None:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.set_var("rtp_secure_media", "mandatory")
        call.execute("answer")
        call.wait_hangup(5)

    with run_with(conf, handle) as (fs, _):
        out = fs.place_call("sess_03", user=USER, password=PASSWORD, crypto=False)
        assert (out.code, out.hangup_cause) == (488, "INCOMPATIBLE_DESTINATION")
        ok = fs.place_call("sess_04", user=USER, password=PASSWORD, crypto=True)
        assert ok.code == 200 and ok.srtp


def test_auth_and_routing_decisions(conf: Path) -> None:
    with run_with(conf, lambda call: None) as (fs, _):
        assert fs.place_call("sess_05").code == 407
        assert fs.place_call("sess_05", user=USER, password="wrong").code == 403
        acl = fs.place_call("sess_05", user=ACL_USER, password=PASSWORD, source_ip="127.0.0.1")
        assert acl.code == 403 and acl.uuid is None
        nf = fs.place_call("nosuchdest", user=USER, password=PASSWORD)
        assert (nf.code, nf.hangup_cause) == (404, "UNALLOCATED_NUMBER")


def test_inbound_esl_against_the_double(conf: Path) -> None:
    with run_with(conf, lambda call: None) as (fs, _):
        port = fs.esl_port

        def client() -> dict[str, str]:
            esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=5)
            out = {"calls": esl.api("show calls as json"), "reload": esl.api("reloadxml"),
                   "job": esl.bgapi_result("status"), "bogus": esl.api("bogus_cmd")}
            esl.exit()
            return out

        out = in_thread(client)
        assert out["calls"] == '{"row_count": 0}\n'
        assert out["reload"] == "+OK [Success]\n"
        assert out["job"].startswith("UP ")
        assert out["bogus"] == "-ERR bogus_cmd Command not found!\n"


def test_originate_through_a_gateway_into_the_socket(conf: Path) -> None:
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        seen["data"] = dict(call.data)
        call.myevents()
        call.wait_hangup(10)
        seen["cause"] = call.hangup_cause

    with run_with(conf, handle) as (fs, ctl):
        fs.callees["+15550000486"] = 486
        port = fs.esl_port
        addr = fs.controller_addr
        uid = "6f0e3b4e-0d9a-4c1e-9a53-8d2a4f6b7c10"

        def client() -> dict[str, str]:
            esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=5)
            out = {
                "ok": esl.bgapi_result(f"originate {{origination_uuid={uid},kallglot_role=agent}}"
                                       f"sofia/gateway/{GATEWAY}/+15551234567 '&socket({addr} async full)'"),
                "busy": esl.bgapi_result(f"originate sofia/gateway/{GATEWAY}/+15550000486 &park()"),
                "nogw": esl.api("originate sofia/gateway/nosuchgw/+1555 &park()"),
            }
            esl.exit()
            return out

        out = in_thread(client)
        assert out == {"ok": f"+OK {uid}\n", "busy": "-ERR USER_BUSY\n", "nogw": "-ERR INVALID_GATEWAY\n"}
        fs.hangup(uid)
        assert fs.outcomes[uid].wait_ended(5)
        ctl.close()
        assert ctl.errors == []
    assert seen["data"]["Unique-ID"] == uid
    assert seen["data"]["Call-Direction"] == "outbound"
    assert seen["data"]["variable_kallglot_role"] == "agent"
    assert seen["data"]["Answer-State"] == "answered"
    assert seen["cause"] == "NORMAL_CLEARING"


def test_unquoted_socket_app_in_originate_is_a_sync_socket_without_full(conf: Path) -> None:
    """originate splits on spaces: `&socket(addr async full)` unquoted reaches the socket app as
    `addr` only, and a non-full outbound socket may not subscribe to events or run api."""
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        seen["mode"] = (call.data.get("Socket-Mode"), call.data.get("Control"))
        call.myevents()  # allowed without full
        try:
            call.subscribe_audio_stream()
            seen["event"] = "accepted"
        except EslCommandError as exc:
            seen["event"] = exc.reply
        call.hangup()

    with run_with(conf, handle) as (fs, ctl):
        port, addr = fs.esl_port, fs.controller_addr

        def client() -> str:
            esl = InboundClient.connect("127.0.0.1", port, "ClueCon", timeout=5)
            dial = f"sofia/gateway/{GATEWAY}/+15551234567"
            out = esl.bgapi_result(f"originate {dial} &socket({addr} async full)")
            esl.exit()
            return out

        assert in_thread(client).startswith("+OK ")
        deadline = time.monotonic() + 10
        while "event" not in seen and time.monotonic() < deadline:
            time.sleep(0.02)
        ctl.close()
    assert seen == {"mode": ("static", "single-channel"), "event": "-ERR command not found"}


def test_myevents_alone_does_not_deliver_custom_events(conf: Path) -> None:
    """fixtures README §8: mod_audio_stream events need their own CUSTOM subscription."""
    keys: list[str] = []

    def handle(call: OutboundCall) -> None:
        call.on("*", lambda ev: keys.append(ev.key))
        call.myevents()
        call.execute_wait("answer")
        call.api(f"uuid_audio_stream {call.uuid} start ws://127.0.0.1:9/x mono 16k")
        import gevent

        gevent.sleep(0.5)  # room for a ::error that must not arrive
        call.hangup()
        call.wait_hangup(5)

    with run_with(conf, handle) as (fs, ctl):
        out = fs.place_call("sess_10", user=USER, password=PASSWORD)
        assert out.wait_ended(10)
        ctl.close()
        assert ctl.errors == []
    assert "CHANNEL_ANSWER" in keys and "CHANNEL_HANGUP" in keys
    assert not [k for k in keys if k.startswith("mod_audio_stream::")]


def test_many_concurrent_calls(conf: Path) -> None:
    """40 simultaneous calls through one double and one gevent controller, awaited from an
    asyncio test loop (aplace_call)."""
    import asyncio

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.linger()
        call.execute_wait("answer", timeout=20)
        call.wait_hangup(30)

    with run_with(conf, handle) as (fs, ctl):
        async def burst() -> list[Any]:
            return await asyncio.gather(*[
                fs.aplace_call(f"sess_{n:04d}", user=USER, password=PASSWORD, timeout=30) for n in range(40)])

        outs = asyncio.run(burst())
        assert [o.code for o in outs] == [200] * 40
        assert len({o.uuid for o in outs}) == 40
        for o in outs:
            o.hangup()
        assert all(o.wait_ended(10) for o in outs)
        ctl.close()
        assert ctl.errors == []


def test_audio_stream_argument_handling_follows_the_module(conf: Path) -> None:
    """mod_audio_stream's stream_function: usage text, silent bad mix, -ERR for a bad URL/rate."""
    replies: dict[str, str] = {}

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.execute_wait("answer")
        u = call.uuid
        for key, cmd in {
            "usage": f"uuid_audio_stream {u} start ws://x",
            "bad_mix": f"uuid_audio_stream {u} start ws://127.0.0.1:9/x quad 16k",
            "bad_host": f"uuid_audio_stream {u} start ws://media_bridge:9/x mono 16k",
            "bad_rate": f"uuid_audio_stream {u} start ws://127.0.0.1:9/x mono 11025",
            "no_stream_stop": f"uuid_audio_stream {u} stop",
            "send_text_no_arg": f"uuid_audio_stream {u} send_text",
            "unknown_uuid": "uuid_audio_stream 00000000-0000-4000-8000-000000000000 stop",
        }.items():
            replies[key] = call.api(cmd)
        call.hangup()

    with run_with(conf, handle) as (fs, ctl):
        out = fs.place_call("sess_13", user=USER, password=PASSWORD)
        assert out.wait_ended(10)
        ctl.close()
        assert ctl.errors == []
    assert replies["usage"].startswith("-USAGE: <uuid> [start | stop")
    assert replies["bad_mix"] == "" and replies["send_text_no_arg"] == ""
    assert replies["bad_host"] == replies["bad_rate"] == "-ERR Operation Failed\n"
    assert replies["no_stream_stop"] == replies["unknown_uuid"] == "-ERR Operation Failed\n"


def _wait_listed(fs: FreeSwitchDouble, profile: str = "kallglot", timeout: float = 5.0) -> float:
    """Seconds until `sofia status profile P` stops answering "Invalid Profile!"."""
    start = time.monotonic()
    while fs.api_sync(f"sofia status profile {profile}") == "Invalid Profile!\n":
        assert time.monotonic() - start < timeout, "profile never came back"
        time.sleep(0.02)
    return time.monotonic() - start


def test_sofia_profile_lifecycle_and_rebinding(conf: Path, tmp_path: Path) -> None:
    with FreeSwitchDouble(conf, profile_start_delay=0.3) as fs:
        api = fs.api_sync
        # cmd_profile "start" reloads the XML first, whatever the profile's state; on a running
        # profile it is then a rescan (config_sofia(SOFIA_CONFIG_RESCAN)) and succeeds at once.
        assert api("sofia profile kallglot start") == "Reload XML [Success]\nkallglot started successfully\n"
        assert api("sofia status profile kallglot") != "Invalid Profile!\n"
        assert api("sofia profile kallglot stop").startswith(
            "Profile kallglot must be up for at least 10 seconds to stop/restart.\nPlease wait ")
        fs.set_profile_uptime(12)
        assert api("sofia profile kallglot stop") == "Reload XML [Success]\nstopping: kallglot"
        assert fs.place_call("sess_20", user=USER, password=PASSWORD).transport_error is not None
        assert api("sofia profile kallglot rescan") == "Invalid Profile [kallglot]"
        assert api("sofia status profile kallglot") == "Invalid Profile!\n"
        assert api("sofia profile kallglot start") == "Reload XML [Success]\nkallglot started successfully\n"
        assert _wait_listed(fs) >= 0.2  # the profile thread binds after "start" answered
        # No controller listens: the socket fails, the dialplan ends, NORMAL_CLEARING → 480.
        assert fs.place_call("sess_20", user=USER, password=PASSWORD, transport="tls").code == 480
        # TLS switched off in the XML: a rescan keeps the bound TLS port, a restart drops it.
        write_sample_conf(conf, tls=False)
        fs.set_profile_uptime(12)
        assert api("sofia profile kallglot rescan") == "Reload XML [Success]\n+OK scan complete\n"
        assert fs.place_call("sess_21", user=USER, password=PASSWORD, transport="tls").transport_error is None
        assert "TLS-BIND-URL" in api("sofia status profile kallglot")
        assert api("sofia profile kallglot restart") == "Reload XML [Success]\nrestarting: kallglot"
        # Until the new profile runs: not listed, and INVITEs are refused before any auth.
        assert api("sofia status profile kallglot") == "Invalid Profile!\n"
        assert "0 profiles 0 aliases" in api("sofia status")
        busy = fs.place_call("sess_21", user=USER, password=PASSWORD, transport="udp")
        assert (busy.code, busy.reason, busy.headers, busy.challenged) == (
            503, "Maximum Calls In Progress", {"Retry-After": "300"}, False)
        _wait_listed(fs)
        status = api("sofia status profile kallglot")
        assert "TLS-BIND-URL" not in status
        assert "BIND-URL         \tsip:mod_sofia@127.0.0.1:5060;transport=udp,tcp\n" in status
        refused = fs.place_call("sess_21", user=USER, password=PASSWORD, transport="tls")
        assert (refused.code, refused.transport_error) == (None, "connection refused")
        assert fs.place_call("sess_21", user=USER, password=PASSWORD, transport="udp").code is not None


def test_sofia_status_table_is_the_captured_one(conf: Path) -> None:
    from tests.fsdouble.channel import TEMPLATES

    with FreeSwitchDouble(conf) as fs:  # the sample profile: UDP/TCP 5060 and TLS 5061 on 127.0.0.1
        assert fs.api_sync("sofia status") == TEMPLATES["sofia_status"]


def test_hangup_before_and_after_answer_as_sofia_sends_it(conf: Path) -> None:
    """Unanswered: the cause maps to a SIP code (mod_sofia hangup_cause_to_sip) with Reason,
    Remote-Party-ID and sip_bye_h_ headers; answered: a BYE with the Reason."""
    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.set_var("sip_bye_h_X-Why", "test")
        if call.variable("sip_req_user") == "sess_busy":
            call.execute("hangup", "USER_BUSY")
        else:
            call.execute_wait("answer")
            call.execute("hangup", "NORMAL_CLEARING")
        call.wait_hangup(5)

    with run_with(conf, handle) as (fs, ctl):
        busy = fs.place_call("sess_busy", user=USER, password=PASSWORD)
        answered = fs.place_call("sess_ok", user=USER, password=PASSWORD)
        assert answered.wait_ended(5)
        ctl.close()
        assert ctl.errors == []
    assert (busy.code, busy.reason, busy.hangup_cause) == (486, "Busy Here", "USER_BUSY")
    assert busy.headers == {
        "Reason": 'Q.850;cause=17;text="USER_BUSY"',
        "Remote-Party-ID": '"sess_busy" <sip:sess_busy@sip.fixture.test>;party=calling;privacy=off;screen=no',
        "X-Why": "test"}
    assert answered.code == 200 and answered.bye_from_switch
    assert answered.bye_headers == {"Reason": 'Q.850;cause=16;text="NORMAL_CLEARING"', "X-Why": "test"}


def test_srtp_forbidden_refuses_a_savp_offer(conf: Path) -> None:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.set_var("rtp_secure_media", "forbidden")
        call.execute("answer")
        call.wait_hangup(5)

    with run_with(conf, handle) as (fs, _):
        assert fs.place_call("sess_30", user=USER, password=PASSWORD, crypto=True).code == 488
        plain = fs.place_call("sess_31", user=USER, password=PASSWORD, crypto=False)
        assert plain.code == 200 and not plain.srtp
        plain.hangup()


@pytest.mark.parametrize(("negotiation", "offer", "ours", "expected"), [
    # generous (the profile default here): the first offered codec that we allow.
    (None, ("PCMU", "PCMA"), "PCMA,PCMU", "PCMU"),
    # greedy/scrooge: the offered codecs re-sorted in our order (switch_core_media.c greedy_sort).
    ("greedy", ("PCMU", "PCMA"), "PCMA,PCMU", "PCMA"),
    ("scrooge", ("G722", "PCMU", "PCMA"), "PCMA,PCMU", "PCMA"),
    ("GREEDY", ("PCMU",), "PCMA,PCMU", "PCMU"),
    ("generous", ("PCMU", "PCMA"), "PCMA,PCMU", "PCMU"),
])
def test_codec_negotiation_modes(conf: Path, negotiation: str | None, offer: tuple[str, ...], ours: str,
                                 expected: str) -> None:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        if negotiation:  # the channel variable overrides the profile's inbound-codec-negotiation
            call.set_var("rtp_codec_negotiation", negotiation)
        call.set_var("absolute_codec_string", ours)
        call.execute_wait("answer")
        call.wait_hangup(10)

    with run_with(conf, handle) as (fs, _ctl):
        out = fs.place_call("sess_30", user=USER, password=PASSWORD, codecs=offer)
        assert (out.code, out.codec) == (200, expected)
        out.hangup()


def test_greedy_still_refuses_an_offer_without_our_codecs(conf: Path) -> None:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.set_var("rtp_codec_negotiation", "greedy")
        call.set_var("absolute_codec_string", "PCMU")
        call.execute("answer")
        call.wait_hangup(10)

    with run_with(conf, handle) as (fs, _ctl):
        out = fs.place_call("sess_31", user=USER, password=PASSWORD, codecs=("PCMA",))
        assert (out.code, out.hangup_cause) == (488, "INCOMPATIBLE_DESTINATION")

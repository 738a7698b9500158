"""Calls that outlive their controller, on the double: what FreeSWITCH 1.10.12 does when the
outbound socket closes (the dialplan goes on: transfer → park or 503), how a parked call is sent
back to a controller (uuid_setvar, uuid_transfer → a new outbound socket), and the api replies
involved (uuid_getvar, uuid_setvar, uuid_buglist, uuid_transfer, originate to an extension).

The dialplan is written here, shaped like the product's (templates/dialplan.xml.j2), so these
tests do not move with the product's template."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.esl.outbound import OutboundCall
from controller.esl.protocol import Event, FrameParser
from tests.esl.minictl import MiniController
from tests.esl.test_double_media import sine, stream_audio_message
from tests.esl.wsserver import ScriptedWsServer
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import GATEWAY, PASSWORD, USER, write_sample_conf

BUGLIST_WITH_STREAM = ("<media-bugs>\n <media-bug>\n  <function>audio_stream</function>\n"
                       "  <target>N/A</target>\n  <thread-locked>0</thread-locked>\n </media-bug>\n"
                       "</media-bugs>\n")
BUGLIST_EMPTY = "<media-bugs>\n</media-bugs>\n"


def dialplan(addr: str) -> str:
    socket_then_park = (f'<action application="socket" data="{addr} async full"/>\n'
                        '        <action application="transfer" data="kallglot_after_socket XML kallglot"/>')
    return f"""<include>
  <context name="kallglot">
    <extension name="kallglot_after_socket">
      <condition field="destination_number" expression="^kallglot_after_socket$"/>
      <condition field="${{kallglot_leg_id}}" expression="^leg_[0-9A-Za-z]+$">
        <action application="park"/>
        <anti-action application="set" data="sip_rh_Retry-After=5"/>
        <anti-action application="respond" data="503"/>
      </condition>
    </extension>
    <extension name="kallglot_attach">
      <condition field="destination_number" expression="^kallglot_attach$"/>
      <condition field="${{kallglot_leg_id}}" expression="^leg_[0-9A-Za-z]+$">
        {socket_then_park}
      </condition>
    </extension>
    <extension name="kallglot_session">
      <condition field="destination_number" expression="^sess_[0-9A-Za-z]+$">
        {socket_then_park}
      </condition>
    </extension>
    <extension name="half_matched">
      <condition field="destination_number" expression="^half$">
        <action application="set" data="from_the_first_condition=yes"/>
      </condition>
      <condition field="${{nothing_set}}" expression="^x$"/>
    </extension>
    <extension name="kallglot_not_found">
      <condition field="destination_number" expression="^.*$">
        <action application="respond" data="404"/>
      </condition>
    </extension>
  </context>
</include>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float = 5, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < end, f"{what} not reached"
        time.sleep(0.01)


class EventTap:
    """An inbound ESL client on raw sockets (``event plain ALL``) collecting every event."""

    def __init__(self, port: int) -> None:
        self.events: list[Event] = []
        self._replies: queue.Queue[Any] = queue.Queue()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._command("auth ClueCon")
        self._command("event plain ALL")

    def _read(self) -> None:
        parser = FrameParser()
        with contextlib.suppress(OSError):
            while data := self._sock.recv(65536):
                for frame in parser.feed(data):
                    if frame.content_type == "text/event-plain":
                        self.events.append(Event.from_frame(frame))
                    else:
                        self._replies.put(frame)

    def _command(self, line: str) -> Any:
        self._sock.sendall(line.encode() + b"\n\n")
        while True:
            frame = self._replies.get(timeout=5)
            if frame.content_type != "auth/request":
                return frame

    def of(self, uuid: str) -> list[str]:
        """The channel's events as ``NAME`` / ``NAME(app)`` / ``CHANNEL_STATE:CS_…``."""
        out = []
        for ev in list(self.events):
            if ev.uuid != uuid or ev.name == "CUSTOM":
                continue
            if ev.name == "CHANNEL_STATE":
                out.append(f"CHANNEL_STATE:{ev.get('Channel-State')}")
            elif ev.get("Application"):
                out.append(f"{ev.name}({ev.get('Application')})")
            else:
                out.append(ev.name)
        return out

    def custom(self, subclass: str) -> list[Event]:
        return [ev for ev in list(self.events) if ev.name == "CUSTOM" and ev.subclass == subclass]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


@contextlib.contextmanager
def switch(tmp_path: Path, handle: Callable[[OutboundCall], None] | None = None, *,
           controller_port: int | None = None
           ) -> Iterator[tuple[FreeSwitchDouble, MiniController | None, str]]:
    """The double with this file's dialplan; ``handle`` runs a MiniController (else nothing
    listens on the controller address: every socket is refused)."""
    ctl = MiniController(handle) if handle is not None else None
    addr = f"127.0.0.1:{ctl.port if ctl else controller_port or free_port()}"
    conf = write_sample_conf(tmp_path / "conf", addr)
    (conf / "dialplan.xml").write_text(dialplan(addr))
    fs = FreeSwitchDouble(conf, temp_dir=tmp_path).start()
    fs.show_calls_lag = 0
    try:
        yield fs, ctl, addr
    finally:
        fs.stop()
        if ctl is not None:
            ctl.close()


def listed(fs: FreeSwitchDouble, uuid: str) -> bool:
    rows = json.loads(fs.api_sync("show channels as json")).get("rows", [])
    return any(row["uuid"] == uuid for row in rows)


def admit_then(leave: str, ws_port: int | None = None,
               seen: dict[str, Any] | None = None) -> Callable[[OutboundCall], None]:
    """A controller that admits the call (leg id, answer, optional stream) and then leaves:
    ``exit`` (returns: the server sends exit) or ``kill`` (drops the socket)."""
    def handle(call: OutboundCall) -> None:
        if call.data.get("Caller-Destination-Number") != call.variable("sip_req_user"):
            return  # not a first socket: another test's handler deals with it
        call.myevents()
        call.set_var("kallglot_leg_id", "leg_01TEST")
        call.execute_wait("answer")
        if ws_port is not None:
            url = f"ws://127.0.0.1:{ws_port}/v1/media/s/leg1"
            reply = call.api(f"uuid_audio_stream {call.uuid} start {url} mono 16k {{}}")
            if seen is not None:
                seen["start"] = reply
                seen["buglist"] = call.api(f"uuid_buglist {call.uuid}")
        if leave == "kill":
            call.close()
    return handle


@pytest.mark.parametrize("leave", ["exit", "kill"])
def test_socket_closed_by_the_controller_parks_the_call_and_its_stream_goes_on(
        tmp_path: Path, leave: str) -> None:
    reply_pcm = sine(0.2, freq=660.0)
    # The bridge answers only after ~1.5 s of audio: long after the controller left.
    ws = ScriptedWsServer(texts=[stream_audio_message(reply_pcm)], send_after=75).start()
    seen: dict[str, Any] = {}
    try:
        with switch(tmp_path, admit_then(leave, ws.port, seen)) as (fs, _, _):
            tap = EventTap(fs.esl_port)
            out = fs.place_call("sess_01PARK", user=USER, password=PASSWORD, audio=sine(3.0))
            assert out.code == 200
            uuid = out.uuid
            assert uuid is not None
            wait_for(lambda: "CHANNEL_PARK" in tap.of(uuid)[tap.of(uuid).index("CHANNEL_EXECUTE(park)"):]
                     if "CHANNEL_EXECUTE(park)" in tap.of(uuid) else False, what="park")
            assert seen["start"] == "+OK Success\n" and seen["buglist"] == BUGLIST_WITH_STREAM
            events = tap.of(uuid)
            after_socket = events[events.index("CHANNEL_EXECUTE_COMPLETE(answer)") + 1:]
            assert after_socket == [
                "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE(socket)",
                "CHANNEL_EXECUTE(transfer)", "CHANNEL_EXECUTE_COMPLETE(transfer)",
                "CHANNEL_STATE:CS_ROUTING", "CHANNEL_STATE:CS_EXECUTE",
                "CHANNEL_EXECUTE(park)", "CHANNEL_PARK"]
            ch = fs.calls[uuid]
            assert (ch.caller["destination"], ch.state) == ("kallglot_after_socket", "CS_EXECUTE")
            assert fs.api_sync(f"uuid_getvar {uuid} current_application") == "park"
            assert fs.api_sync(f"uuid_getvar {uuid} max_forwards") == "69"  # one transfer
            frames = len(ws.frames_in)
            time.sleep(1.0)
            # Still up, listed, its stream still delivering the caller's audio ...
            assert not out.ended and listed(fs, uuid)
            assert fs.api_sync(f"uuid_getvar {uuid} current_application") == "park"
            assert len(ws.frames_in) >= frames + 25
            assert fs.api_sync(f"uuid_buglist {uuid}") == BUGLIST_WITH_STREAM
            # ... and mod_audio_stream still announcing the bridge's audio with no socket attached.
            play = wait_for(lambda: tap.custom("mod_audio_stream::play"), what="::play")[0]
            assert play.uuid == uuid and Path(play.json()["file"]).is_file()
            assert ws.close_in == []
            out.hangup()
            assert out.wait_ended(5)
            wait_for(lambda: ws.close_in, what="websocket closed by the hangup")
            assert ws.close_in[0][0] == 1000
            wait_for(lambda: "CHANNEL_HANGUP_COMPLETE" in tap.of(uuid), what="hangup complete")
            assert tap.of(uuid)[-6:] == ["CHANNEL_HANGUP", "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE(park)",
                                         "CHANNEL_STATE:CS_HANGUP", "CHANNEL_STATE:CS_REPORTING",
                                         "CHANNEL_HANGUP_COMPLETE"]
            assert not listed(fs, uuid)
            tap.close()
    finally:
        ws.stop()


def test_socket_refused_sends_503_with_retry_after(tmp_path: Path) -> None:
    with switch(tmp_path) as (fs, _, _):
        tap = EventTap(fs.esl_port)
        out = fs.place_call("sess_01DOWN", user=USER, password=PASSWORD)
        assert (out.code, out.reason) == (503, "Service Unavailable")
        assert out.headers["Retry-After"] == "5"
        assert out.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
        assert out.uuid is not None
        wait_for(lambda: "CHANNEL_HANGUP_COMPLETE" in tap.of(out.uuid or ""), what="hangup complete")
        assert tap.of(out.uuid)[:10] == [
            "CHANNEL_CREATE", "CHANNEL_EXECUTE(socket)", "CHANNEL_EXECUTE_COMPLETE(socket)",
            "CHANNEL_EXECUTE(transfer)", "CHANNEL_EXECUTE_COMPLETE(transfer)",
            "CHANNEL_STATE:CS_ROUTING", "CHANNEL_STATE:CS_EXECUTE",
            "CHANNEL_EXECUTE(set)", "CHANNEL_EXECUTE_COMPLETE(set)", "CHANNEL_EXECUTE(respond)"]
        tap.close()


def test_xml_conditions_are_evaluated_like_mod_dialplan_xml(tmp_path: Path) -> None:
    with switch(tmp_path) as (fs, _, _):
        # kallglot_after_socket dialled directly: no leg id → its anti-actions.
        direct = fs.place_call("kallglot_after_socket", user=USER, password=PASSWORD)
        assert (direct.code, direct.headers.get("Retry-After")) == (503, "5")
        # kallglot_attach without a leg id: the second condition fails with no anti-action, so
        # the hunt goes on to the next extensions and ends at kallglot_not_found.
        attach = fs.place_call("kallglot_attach", user=USER, password=PASSWORD)
        assert (attach.code, attach.hangup_cause) == (404, "UNALLOCATED_NUMBER")
        # The actions of a condition that matched stay queued even though a later condition of
        # its extension failed (parse_exten adds them at once): they run before the 404.
        half = fs.place_call("half", user=USER, password=PASSWORD)
        assert half.code == 404 and half.uuid is not None
        assert fs.calls[half.uuid].variables.get("from_the_first_condition") == "yes"


def test_a_parked_call_is_adopted_through_uuid_transfer(tmp_path: Path) -> None:
    adopted: dict[str, Any] = {}
    replies: dict[str, str] = {}
    second_done = threading.Event()
    play = tmp_path / "hello.r16"
    play.write_bytes(sine(0.3))

    def handle(call: OutboundCall) -> None:
        if call.data.get("Caller-Destination-Number") != "kallglot_attach":
            admit_then("exit")(call)
            return
        adopted.update(call.data)
        call.myevents()
        call.linger()
        replies["leg"] = call.api(f"uuid_getvar {call.uuid} kallglot_leg_id")
        replies["buglist"] = call.api(f"uuid_buglist {call.uuid}")
        replies["broadcast"] = call.api(f"uuid_broadcast {call.uuid} {play} aleg")
        replies["played"] = str(call.execute_wait("playback", str(play)).get("Application-Response"))
        second_done.set()
        replies["hungup"] = str(call.wait_hangup(10))

    with switch(tmp_path, handle) as (fs, ctl, _):
        out = fs.place_call("sess_01ADOPT", user=USER, password=PASSWORD)
        uuid = out.uuid
        assert out.code == 200 and uuid is not None
        wait_for(lambda: fs.api_sync(f"uuid_getvar {uuid} current_application") == "park", what="parked")
        assert fs.api_sync(f"uuid_getvar {uuid} kallglot_adopted") == "_undef_"
        assert fs.api_sync(f"uuid_setvar {uuid} kallglot_adopted true") == "+OK\n"
        assert fs.api_sync(f"uuid_transfer {uuid} kallglot_attach XML kallglot") == "+OK\n"
        assert second_done.wait(10), replies
        assert adopted["variable_kallglot_adopted"] == "true"
        assert adopted["variable_kallglot_leg_id"] == "leg_01TEST"
        assert adopted["Answer-State"] == "answered"
        assert adopted["Channel-State"] == "CS_EXECUTE"
        assert adopted["Caller-Destination-Number"] == "kallglot_attach"
        assert adopted["Caller-RDNIS"] == "kallglot_after_socket"
        assert adopted["Caller-Context"] == "kallglot" and adopted["Caller-Profile-Index"] == "3"
        assert adopted["variable_current_application"] == "socket"
        assert adopted["Unique-ID"] == uuid
        assert replies["leg"] == "leg_01TEST"
        assert replies["buglist"] == BUGLIST_EMPTY  # no stream was started on this call
        assert replies["broadcast"] == "+OK Message sent\n" and replies["played"] == "FILE PLAYED"
        assert [p.file for p in fs.played_audio(uuid)] == [str(play), str(play)]
        out.hangup()
        assert out.wait_ended(5)
        wait_for(lambda: replies.get("hungup") == "True", what="the adopting socket saw the hangup")
        assert ctl is not None and ctl.errors == []


def test_uuid_transfer_inline_socket_and_to_nowhere(tmp_path: Path) -> None:
    connects: list[dict[str, str]] = []

    def handle(call: OutboundCall) -> None:
        if call.data.get("Caller-Dialplan") != "inline":
            admit_then("exit")(call)
            return
        connects.append(dict(call.data))  # then leaves: the inline dialplan has nothing after it

    with switch(tmp_path, handle) as (fs, ctl, addr):
        out = fs.place_call("sess_01INLINE", user=USER, password=PASSWORD)
        uuid = out.uuid
        assert out.code == 200 and uuid is not None
        wait_for(lambda: fs.api_sync(f"uuid_getvar {uuid} current_application") == "park", what="parked")
        assert fs.api_sync(f"uuid_transfer {uuid} 'socket:{addr} async full' inline") == "+OK\n"
        wait_for(lambda: connects, what="inline socket")
        # inline_dialplan_hunt puts the destination back to the RDNIS and clears it.
        assert connects[0]["Caller-Destination-Number"] == "kallglot_after_socket"
        assert "Caller-RDNIS" not in connects[0]
        assert connects[0]["variable_current_application_data"] == f"{addr} async full"
        # The inline extension ends with the socket: the channel hangs up NORMAL_CLEARING.
        assert out.wait_ended(5) and fs.calls[uuid].hangup_cause == "NORMAL_CLEARING"

        other = fs.place_call("sess_01NOWHERE", user=USER, password=PASSWORD)
        assert other.code == 200 and other.uuid is not None
        wait_for(lambda: fs.api_sync(f"uuid_getvar {other.uuid} current_application") == "park")
        assert fs.api_sync(f"uuid_transfer {other.uuid} no_such_extension XML nocontext") == "+OK\n"
        assert other.wait_ended(5)
        assert other.hangup_cause == "NO_ROUTE_DESTINATION" and other.bye_from_switch
        assert ctl is not None and ctl.errors == []


def test_api_replies_for_unknown_and_live_channels(tmp_path: Path) -> None:
    ws = ScriptedWsServer().start()
    nobody = "00000000-0000-4000-8000-000000000000"
    try:
        with switch(tmp_path, admit_then("exit")) as (fs, _, _):
            assert fs.api_sync(f"uuid_getvar {nobody} x") == "-ERR No such channel!\n"
            assert fs.api_sync(f"uuid_setvar {nobody} x 1") == "-ERR No such channel!\n"
            assert fs.api_sync(f"uuid_transfer {nobody} kallglot_attach") == "-ERR No such channel!\n"
            assert fs.api_sync(f"uuid_buglist {nobody}") == ""
            assert fs.api_sync("uuid_getvar") == "-USAGE: <uuid> <var>\n"
            assert fs.api_sync("uuid_setvar x") == "-USAGE: <uuid> <var> [value]\n"
            assert fs.api_sync("uuid_buglist") == "-USAGE: <uuid>\n"
            assert fs.api_sync("uuid_transfer x") == \
                "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
            out = fs.place_call("sess_01API", user=USER, password=PASSWORD)
            uuid = out.uuid
            assert out.code == 200 and uuid is not None
            wait_for(lambda: fs.api_sync(f"uuid_getvar {uuid} current_application") == "park", what="parked")
            assert fs.api_sync(f"uuid_getvar {uuid} never_set") == "_undef_"
            assert fs.api_sync(f"uuid_setvar {uuid} note 'two words'") == "+OK\n"
            assert fs.api_sync(f"uuid_getvar {uuid} note") == "two words"
            assert fs.api_sync(f"uuid_setvar {uuid} note") == "+OK\n"  # no value: unset
            assert fs.api_sync(f"uuid_getvar {uuid} note") == "_undef_"
            assert fs.api_sync(f"uuid_getvar {uuid} destination_number") == "kallglot_after_socket"
            assert fs.api_sync(f"uuid_buglist {uuid}") == BUGLIST_EMPTY
            url = f"ws://127.0.0.1:{ws.port}/s"
            assert fs.api_sync(f"uuid_audio_stream {uuid} start {url} mono 16k {{}}") == "+OK Success\n"
            assert fs.api_sync(f"uuid_buglist {uuid}") == BUGLIST_WITH_STREAM
            assert fs.api_sync(f"uuid_audio_stream {uuid} stop") == "+OK Success\n"
            assert fs.api_sync(f"uuid_buglist {uuid}") == BUGLIST_EMPTY
            out.hangup()
            assert out.wait_ended(5)
            assert fs.api_sync(f"uuid_getvar {uuid} kallglot_leg_id") == "-ERR No such channel!\n"
    finally:
        ws.stop()


def test_originate_to_an_extension_routes_the_answered_leg(tmp_path: Path) -> None:
    connects: list[dict[str, str]] = []

    def handle(call: OutboundCall) -> None:
        connects.append(dict(call.data))
        call.myevents()  # then leaves: the leg parks (it has a leg id)

    with switch(tmp_path, handle) as (fs, ctl, _):
        uid = "11111111-2222-4333-8444-555555555555"
        variables = f"origination_uuid={uid},kallglot_leg_id=leg_01DIAL,kallglot_role=agent"
        reply = fs.api_sync(f"originate {{{variables}}}sofia/gateway/{GATEWAY}/+15550001 "
                            "kallglot_attach XML kallglot")
        assert reply == f"+OK {uid}\n"
        wait_for(lambda: connects, what="the originated leg's socket")
        data = connects[0]
        assert data["Unique-ID"] == uid and data["Call-Direction"] == "outbound"
        assert data["Caller-Destination-Number"] == "kallglot_attach"
        assert data["Caller-Context"] == "kallglot" and data["Caller-RDNIS"] == "+15550001"
        assert data["variable_kallglot_leg_id"] == "leg_01DIAL" and data["variable_kallglot_role"] == "agent"
        assert data["Answer-State"] == "answered" and data["Channel-State"] == "CS_EXECUTE"
        wait_for(lambda: fs.api_sync(f"uuid_getvar {uid} current_application") == "park", what="parked")
        assert listed(fs, uid)
        assert fs.api_sync(f"uuid_kill {uid}") == "+OK\n"
        assert ctl is not None and ctl.errors == []


def test_a_socket_closed_before_connect_keeps_the_channel_in_socket(tmp_path: Path) -> None:
    """socket_function parks even when its listener ended before ``connect``; CF_CONTROLLED is
    only cleared by a listener that got that far, so nothing ends this park but a hangup or a
    transfer (mod_event_socket.c, switch_ivr_park)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = threading.Event()

    def accept_and_drop() -> None:
        conn, _ = server.accept()
        conn.close()
        accepted.set()

    threading.Thread(target=accept_and_drop, daemon=True).start()
    try:
        with switch(tmp_path, controller_port=server.getsockname()[1]) as (fs, _, _):
            tap = EventTap(fs.esl_port)
            out = fs.place_call("sess_01EARLY", user=USER, password=PASSWORD, timeout=2)
            assert out.code is None  # never answered: the caller still rings
            assert accepted.wait(5)
            uuid = wait_for(lambda: next(iter(fs.calls)), what="channel")
            time.sleep(0.3)
            assert not fs.calls[uuid].hung_up
            assert fs.api_sync(f"uuid_getvar {uuid} current_application") == "socket"
            assert tap.of(uuid)[-2:] == ["CHANNEL_EXECUTE(socket)", "CHANNEL_PARK"]
            assert fs.api_sync(f"uuid_transfer {uuid} kallglot_after_socket") == "+OK\n"
            wait_for(lambda: fs.calls[uuid].hung_up, what="503 after the transfer")
            assert fs.outcomes[uuid].code == 503
            tap.close()
    finally:
        server.close()

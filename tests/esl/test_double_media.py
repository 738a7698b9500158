"""mod_audio_stream and playback in the double: caller audio to the websocket, translated audio
files played on the right channel, barge-in."""

from __future__ import annotations

import base64
import json
import math
import struct
import threading
import wave
from pathlib import Path
from typing import Any

from controller.esl.connection import EslTimeout
from controller.esl.outbound import OutboundCall
from controller.esl.protocol import Event
from tests.esl.minictl import MiniController
from tests.esl.wsserver import ScriptedWsServer
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import PASSWORD, USER, write_sample_conf


def sine(seconds: float, rate: int = 16000, freq: float = 440.0) -> bytes:
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


def write_wav(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def stream_audio_message(pcm: bytes, rate: int = 16000) -> str:
    return json.dumps({"type": "streamAudio", "data": {"audioDataType": "raw", "sampleRate": rate,
                                                        "audioData": base64.b64encode(pcm).decode()}})


def test_caller_audio_streams_and_translated_audio_plays_on_its_channel(tmp_path: Path) -> None:
    caller_pcm = sine(1.0)
    reply_pcm = sine(0.3, freq=660.0)
    ws = ScriptedWsServer(texts=[stream_audio_message(reply_pcm)], send_after=5).start()
    seen: dict[str, Any] = {}
    done = threading.Event()

    def handle(call: OutboundCall) -> None:
        plays: list[Event] = []
        call.on("mod_audio_stream::play", plays.append)
        call.myevents()
        call.subscribe_audio_stream()
        call.execute_wait("answer")
        url = f"ws://127.0.0.1:{ws.port}/v1/media/s/leg1"
        seen["start"] = call.api(f"uuid_audio_stream {call.uuid} start {url} "
                                 'mono 16k {"session_id":"s","role":"customer"}')
        import gevent

        with gevent.Timeout(10):
            while not plays:
                gevent.sleep(0.01)
        seen["play"] = plays[0].json()
        completes: list[Event] = []
        call.on("CHANNEL_EXECUTE_COMPLETE", completes.append)
        seen["broadcast"] = call.api(f"uuid_broadcast {call.uuid} {seen['play']['file']} aleg")
        with gevent.Timeout(10):
            while not any(e.get("Application") == "playback" for e in completes):
                gevent.sleep(0.01)
        seen["playback"] = next(e for e in completes if e.get("Application") == "playback")
        seen["stop"] = call.api(f"uuid_audio_stream {call.uuid} stop")
        done.set()
        call.wait_hangup(10)

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            out = fs.place_call("sess_07", user=USER, password=PASSWORD,
                                audio=write_wav(tmp_path / "caller.wav", caller_pcm), audio_speed=4)
            assert out.code == 200
            assert done.wait(15)
            played = fs.played_audio(out.uuid)
            other = fs.place_call("sess_08", user=USER, password="nope")
            out.hangup()
            assert out.wait_ended(5)
    finally:
        ctl.close()
        ws.stop()
    assert ctl.errors == []
    assert other.code == 403
    assert seen["start"] == "+OK Success\n" and seen["broadcast"] == "+OK Message sent\n"
    assert seen["stop"] == "+OK Success\n"
    assert seen["play"] == {"audioDataType": "raw", "sampleRate": 16000,
                            "file": str(tmp_path / f"{out.uuid}_0.tmp.r16")}
    assert seen["playback"].get("Application-Response") == "FILE PLAYED"
    assert len(played) == 1 and played[0].audio == reply_pcm and not played[0].interrupted
    assert abs(played[0].duration - 0.3) < 1e-9
    # The websocket saw the metadata first, then 640-byte frames carrying the caller's audio.
    assert ws.texts_in[0] == '{"session_id":"s","role":"customer"}'
    assert {len(f) for f in ws.frames_in} == {640}
    assert b"".join(ws.frames_in)[: 640 * 5] == caller_pcm[: 640 * 5]
    assert ws.close_in and ws.close_in[0] == (1000, "Normal closure")
    assert [h for h, _ in ws.handshakes[0]][:1] == ["Host"]
    assert dict(ws.handshakes[0])["Origin"] == f"http://127.0.0.1:{ws.port}"


def test_uuid_break_interrupts_playback_and_refused_stream_reports_error(tmp_path: Path) -> None:
    long_file = tmp_path / "long.r16"
    long_file.write_bytes(sine(5.0))
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        errors: list[Event] = []
        call.on("mod_audio_stream::error", errors.append)
        call.myevents()
        call.subscribe_audio_stream()
        call.execute_wait("answer")
        import gevent

        call.api(f"uuid_broadcast {call.uuid} {long_file} aleg")
        gevent.sleep(0.3)
        seen["break"] = call.api(f"uuid_break {call.uuid} all")
        seen["start"] = call.api(f"uuid_audio_stream {call.uuid} start ws://127.0.0.1:9/x mono 8k")
        with gevent.Timeout(10):
            while not errors:
                gevent.sleep(0.01)
        seen["error"] = errors[0].json()
        seen["stop"] = call.api(f"uuid_audio_stream {call.uuid} stop")
        seen["bad_host"] = call.api(f"uuid_audio_stream {call.uuid} start ws://media_bridge:8765/x mono 16k")
        call.hangup()

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            out = fs.place_call("sess_09", user=USER, password=PASSWORD)
            assert out.wait_ended(15)
            played = fs.played_audio(out.uuid)
    finally:
        ctl.close()
    assert ctl.errors == []
    assert seen["break"] == ""  # break_function prints nothing on success
    assert len(played) == 1 and played[0].interrupted
    assert played[0].ended is not None and played[0].ended - played[0].started < 5
    assert seen["start"] == "+OK Success\n"
    assert seen["error"] == {"status": "error",
                             "message": {"code": 6, "error": "Connection refused (system error 111)"}}
    assert seen["stop"] == "-ERR Operation Failed\n"
    assert seen["bad_host"] == "-ERR Operation Failed\n"
    assert out.bye_from_switch and out.hangup_cause == "NORMAL_CLEARING"


def test_caller_hangup_completes_the_running_playback(tmp_path: Path) -> None:
    long_file = tmp_path / "long.r8"
    long_file.write_bytes(sine(5.0, rate=8000))
    order: list[str] = []
    playing = threading.Event()

    def handle(call: OutboundCall) -> None:
        call.on("CHANNEL_HANGUP", lambda ev: order.append("HANGUP"))
        call.on("CHANNEL_EXECUTE", lambda ev: playing.set() if ev.get("Application") == "playback" else None)
        call.on("CHANNEL_EXECUTE_COMPLETE", lambda ev: order.append(
            f"COMPLETE {ev.get('Application')} {ev.get('Application-Response')}"))
        call.myevents()
        call.linger()
        call.execute_wait("answer")
        done = call.execute("playback", str(long_file))
        seen = call.wait_complete(done, 10)
        order.append(f"waited {seen.get('Application-Response')}")
        call.wait_hangup(5)

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            out = fs.place_call("sess_11", user=USER, password=PASSWORD)
            assert playing.wait(5)
            out.hangup()
            assert out.wait_ended(5)
            played = fs.played_audio(out.uuid)
    finally:
        ctl.close()
    assert ctl.errors == []
    assert order[:2] == ["COMPLETE answer _none_", "HANGUP"]
    assert "COMPLETE playback PLAYBACK ERROR" in order and "waited PLAYBACK ERROR" in order
    assert played[0].interrupted


def test_stream_buffer_size_batches_frames(tmp_path: Path) -> None:
    """STREAM_BUFFER_SIZE=100 → one 3200-byte message per 100 ms at 16 kHz mono."""
    ws = ScriptedWsServer(send_after=10**9).start()
    got_frames = threading.Event()

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.set_var("STREAM_BUFFER_SIZE", "100")
        call.execute_wait("answer")
        call.api(f"uuid_audio_stream {call.uuid} start ws://127.0.0.1:{ws.port}/m mono 16k")
        import gevent

        with gevent.Timeout(10):
            while len(ws.frames_in) < 3:
                gevent.sleep(0.01)
        got_frames.set()
        call.hangup()

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            out = fs.place_call("sess_12", user=USER, password=PASSWORD, audio_speed=10)
            assert out.wait_ended(15)
    finally:
        ctl.close()
        ws.stop()
    assert ctl.errors == [] and got_frames.is_set()
    assert {len(f) for f in ws.frames_in} == {3200}
    assert ws.close_in == [(1000, "Normal closure")]


def test_uuid_break_all_flushes_every_queued_private_event(tmp_path: Path) -> None:
    files = []
    for n in range(3):
        f = tmp_path / f"reply{n}.r16"
        f.write_bytes(sine(2.0))
        files.append(f)
    seen: dict[str, Any] = {}

    def handle(call: OutboundCall) -> None:
        call.myevents()
        call.execute_wait("answer")
        for f in files:
            call.api(f"uuid_broadcast {call.uuid} {f} aleg")
        marker = call.execute("set", "after_break=yes")
        seen["break"] = call.api(f"uuid_break {call.uuid} all")
        # sendmsg queues a private event too: `all` drops the queued `set` with the broadcasts.
        try:
            call.wait_complete(marker, 1.0)
            seen["set"] = "ran"
        except EslTimeout:
            seen["set"] = "flushed"
        seen["unknown"] = call.api("uuid_break 00000000-0000-0000-0000-000000000000")
        call.hangup()

    ctl = MiniController(handle)
    try:
        with FreeSwitchDouble(write_sample_conf(tmp_path / "conf"), controller_addr=f"127.0.0.1:{ctl.port}",
                              temp_dir=tmp_path) as fs:
            out = fs.place_call("sess_14", user=USER, password=PASSWORD)
            assert out.wait_ended(15)
            played = fs.played_audio(out.uuid)
    finally:
        ctl.close()
    assert ctl.errors == []
    assert seen == {"break": "", "set": "flushed", "unknown": "-ERR No Such Channel!\n"}
    assert len(played) <= 1 and all(p.interrupted for p in played)

"""LegPlayback on its own: order, no overlap, barge-in, refused broadcasts, bounded backlog."""

from __future__ import annotations

import logging

import pytest

from controller.calls.playback import CF_BREAK_SINK, LegPlayback, is_barge_in, play_file_from_event


class Api:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or set()

    def __call__(self, cmd: str) -> str:
        self.calls.append(cmd)
        if any(f in cmd for f in self.fail):
            return "-ERR invalid uuid\n"
        # As FreeSWITCH answers: uuid_break prints nothing on success (mod_commands.c).
        return "" if cmd.startswith("uuid_break") else "+OK Message sent\n"


def test_files_play_one_after_another_in_order() -> None:
    api = Api()
    pb = LegPlayback("u1", api)
    for f in ("/t/a", "/t/b", "/t/c"):
        pb.enqueue(f)
    assert api.calls == ["uuid_broadcast u1 /t/a aleg"] and pb.queued == ("/t/b", "/t/c")
    pb.on_execute_complete("answer", "")  # not ours
    pb.on_execute_complete("playback", "/t/other")  # not the file playing
    assert len(api.calls) == 1
    pb.on_execute_complete("playback", "/t/a")
    pb.on_execute_complete("playback", "/t/b")
    assert [c.split()[2] for c in api.calls] == ["/t/a", "/t/b", "/t/c"]
    pb.on_execute_complete("playback", "/t/c")
    assert pb.playing is None and pb.played == ["/t/a", "/t/b", "/t/c"]


def test_barge_in_breaks_once_and_later_files_wait_for_the_break_to_complete() -> None:
    api = Api()
    pb = LegPlayback("u1", api)
    pb.enqueue("/t/a")
    pb.enqueue("/t/b")
    pb.on_execute("playback", "/t/a")
    pb.barge_in()
    pb.barge_in()
    assert api.calls[1:] == ["uuid_break u1 all"] and pb.queued == () and pb.dropped == 1
    pb.enqueue("/t/c")  # arrives before the broken file's EXECUTE_COMPLETE
    assert pb.queued == ("/t/c",) and len(api.calls) == 2
    pb.on_execute_complete("playback", "/t/a")
    # The broken broadcast left CF_BREAK set: 20 ms of silence takes it before the next file.
    assert api.calls[-1] == f"uuid_broadcast u1 {CF_BREAK_SINK} aleg" and pb.queued == ("/t/c",)
    pb.on_execute("playback", CF_BREAK_SINK)
    pb.on_execute_complete("playback", CF_BREAK_SINK)
    assert api.calls[-1] == "uuid_broadcast u1 /t/c aleg" and pb.played == ["/t/a", "/t/c"]


def test_refused_broadcast_moves_on_and_backlog_is_bounded() -> None:
    api = Api(fail={"/t/bad"})
    pb = LegPlayback("u1", api, max_queued=2)
    pb.enqueue("/t/bad")
    assert pb.playing is None
    pb.enqueue("/t/a")
    for f in ("/t/b", "/t/c", "/t/d"):
        pb.enqueue(f)
    assert pb.playing == "/t/a" and pb.queued == ("/t/c", "/t/d") and pb.dropped == 1


def test_event_bodies() -> None:
    body = b'{"audioDataType":"raw","sampleRate":16000,"file":"/fs/u_0.tmp.r16"}'
    assert play_file_from_event(body) == "/fs/u_0.tmp.r16"
    for bad in (b"not json", b"[]", b'{"file":""}', b'{"file":"/tmp/a b"}', b'{"file":"/tmp/a\\nuuid_kill"}'):
        assert play_file_from_event(bad) is None
    assert is_barge_in(b'{"type":"kallglot.barge_in"}')
    assert not is_barge_in(b'{"type":"other"}') and not is_barge_in(b"x")


def test_barge_in_before_the_broadcast_started_breaks_once_it_starts() -> None:
    """`uuid_break all` flushes queued private events: breaking a broadcast FreeSWITCH has not
    picked up yet would drop it with no EXECUTE_COMPLETE, and the queue would stall for good."""
    api = Api()
    pb = LegPlayback("u1", api)
    pb.enqueue("/t/a")
    pb.barge_in()
    assert api.calls == ["uuid_broadcast u1 /t/a aleg"]  # no break yet
    pb.enqueue("/t/b")
    pb.on_execute("playback", "/t/other")  # not ours
    assert len(api.calls) == 1
    pb.on_execute("playback", "/t/a")
    assert api.calls[1:] == ["uuid_break u1 all"]
    pb.on_execute_complete("playback", "/t/a")
    pb.on_execute("playback", CF_BREAK_SINK)
    pb.on_execute_complete("playback", CF_BREAK_SINK)
    assert api.calls[2:] == [f"uuid_broadcast u1 {CF_BREAK_SINK} aleg", "uuid_broadcast u1 /t/b aleg"]
    pb.on_execute("playback", "/t/b")
    pb.on_execute_complete("playback", "/t/b")
    assert len(api.calls) == 4 and pb.playing is None


def test_a_file_that_ends_normally_needs_no_sink() -> None:
    api = Api()
    pb = LegPlayback("u1", api)
    pb.enqueue("/t/a")
    pb.enqueue("/t/b")
    pb.on_execute("playback", "/t/a")
    pb.on_execute_complete("playback", "/t/a")
    assert api.calls == ["uuid_broadcast u1 /t/a aleg", "uuid_broadcast u1 /t/b aleg"]


def test_failed_break_is_logged_and_an_empty_reply_is_success(caplog: pytest.LogCaptureFixture) -> None:
    api = Api(fail={"uuid_break"})
    pb = LegPlayback("u1", api)
    pb.enqueue("/t/a")
    pb.on_execute("playback", "/t/a")
    with caplog.at_level(logging.WARNING, logger="kallglot.calls.playback"):
        pb.barge_in()
    assert "uuid_break failed" in caplog.text
    caplog.clear()
    ok = LegPlayback("u2", Api())
    ok.enqueue("/t/a")
    ok.on_execute("playback", "/t/a")
    with caplog.at_level(logging.WARNING, logger="kallglot.calls.playback"):
        ok.barge_in()
    assert caplog.text == ""


def test_forget_queued_keeps_the_file_playing() -> None:
    pb = LegPlayback("u1", Api())
    for f in ("/t/a", "/t/b", "/t/c"):
        pb.enqueue(f)
    pb.forget_queued()
    assert pb.playing == "/t/a" and pb.queued == () and pb.dropped == 2

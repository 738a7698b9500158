"""LegPlayback on its own: order, no overlap, barge-in, refused broadcasts, bounded backlog."""

from __future__ import annotations

from controller.calls.playback import LegPlayback, is_barge_in, play_file_from_event


class Api:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or set()

    def __call__(self, cmd: str) -> str:
        self.calls.append(cmd)
        if any(f in cmd for f in self.fail):
            return "-ERR invalid uuid\n"
        return "+OK Message sent\n"


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
    pb.barge_in()
    pb.barge_in()
    assert api.calls[1:] == ["uuid_break u1 all"] and pb.queued == () and pb.dropped == 1
    pb.enqueue("/t/c")  # arrives before the broken file's EXECUTE_COMPLETE
    assert pb.queued == ("/t/c",) and len(api.calls) == 2
    pb.on_execute_complete("playback", "/t/a")
    assert api.calls[-1] == "uuid_broadcast u1 /t/c aleg"


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

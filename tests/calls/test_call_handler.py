"""The per-call logic against an in-process socket that behaves like the captured FreeSWITCH."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from controller.calls.call_handler import CallConfig, CallSession, stream_metadata_arg
from controller.calls.playback import CF_BREAK_SINK
from controller.store import Store
from tests.calls.factories import live_leg_count, make_org, make_session, sip_channel, sip_username
from tests.calls.fake_socket import FakeCallSocket

CONFIG = CallConfig(bridge_url="ws://bridge:8765", answer_timeout_s=5, reject_timeout_s=2,
                    stream_retries=2, stream_retry_base_s=0.01, stream_retry_max_s=0.05)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Running:
    def __init__(self, session: CallSession) -> None:
        self.session = session
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.session.run()
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive(), "call handler did not finish"
        if self.error:
            raise self.error


@pytest.fixture
def org(store: Store) -> Iterator[str]:
    yield make_org(store, cap=1, codecs=("G722", "PCMU"), require_srtp=False)


def _socket(store: Store, org: str, sid: str, **kw: object) -> FakeCallSocket:
    ch = sip_channel(org, sip_username(store, org), sid)
    return FakeCallSocket(dict(ch.headers), **kw)  # type: ignore[arg-type]


def _apis(sock: FakeCallSocket, prefix: str) -> list[str]:
    return [c[4:] for c in sock.commands if c.startswith("api " + prefix)]


def test_rejected_call_sets_header_then_responds(store: Store, org: str) -> None:
    make_session(store, org)
    first = _socket(store, org, make_session(store, org))
    run1 = Running(CallSession(first, store, CONFIG))
    wait_until(lambda: first.stream_count == 1, "first call streaming")
    second = _socket(store, org, make_session(store, org))
    CallSession(second, store, CONFIG).run()
    assert second.commands == ["myevents", "event plain CUSTOM mod_audio_stream::…", "linger",
                               "execute set sip_rh_X-Call-Limit=1", "execute respond 503"]
    first.hangup()
    run1.join()
    assert live_leg_count(store) == 0


def test_admitted_call_answers_streams_and_ends_its_session(store: Store, org: str) -> None:
    sid = make_session(store, org)
    sock = _socket(store, org, sid)
    run = Running(CallSession(sock, store, CONFIG))
    wait_until(lambda: sock.stream_count == 1, "stream start")
    executes = [c for c in sock.commands if c.startswith("execute")]
    leg = store.query_one("SELECT * FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None
    # The leg's identity goes on the channel: a call whose controller goes away parks by it
    # and is adopted by the next controller.
    assert executes == ["execute set absolute_codec_string=G722,PCMU", "execute answer"]
    labels = (f"kallglot_session_id={sid};kallglot_leg_id={leg['id']};kallglot_role={leg['role']}"
              ";media_timeout=60000")  # RTP timeout (MEDIA_TIMEOUT) from answer on
    assert _apis(sock, "uuid_setvar_multi") == [f"uuid_setvar_multi {sock.uuid} {labels}"]
    start = _apis(sock, "uuid_audio_stream")[0]
    parts = start.split(" ")
    assert parts[:3] == ["uuid_audio_stream", sock.uuid, "start"]
    assert parts[3] == f"ws://bridge:8765/v1/media/{sid}/{leg['id']}"
    assert parts[4:6] == ["mono", "16k"] and len(parts) == 7
    meta = json.loads(parts[6])
    assert meta == {"session_id": sid, "leg_id": leg["id"], "call_uuid": sock.uuid, "role": "customer",
                    "mode": "bidirectional_translation", "source_language": "en", "target_language": "es",
                    "peer_leg_id": None, "sample_rate": 16000}
    wait_until(lambda: store.query_one("SELECT status FROM call_legs WHERE id = ?",
                                       (leg["id"],))["status"] == "streaming", "leg streaming")  # type: ignore[index]
    sock.hangup("NORMAL_CLEARING")
    run.join()
    leg = store.query_one("SELECT * FROM call_legs WHERE id = ?", (leg["id"],))
    assert leg is not None and leg["ended_at"] is not None
    assert (leg["status"], leg["hangup_cause"], leg["sip_code"]) == ("ended", "NORMAL_CLEARING", 200)
    session = store.query_one("SELECT status FROM sessions WHERE id = ?", (sid,))
    assert session is not None and session["status"] == "ended"


def test_srtp_required_without_crypto_is_488_from_answer(store: Store) -> None:
    org = make_org(store, require_srtp=True, codecs=("PCMU",))
    sid = make_session(store, org)
    sock = _socket(store, org, sid, offer_crypto=False)
    CallSession(sock, store, CONFIG).run()
    assert "execute set rtp_secure_media=mandatory" in sock.commands
    srtp_at = sock.commands.index("execute set rtp_secure_media=mandatory")
    assert srtp_at < sock.commands.index("execute answer")
    assert _apis(sock, "uuid_audio_stream") == []
    leg = store.query_one("SELECT * FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None
    outcome = (leg["status"], leg["hangup_cause"], leg["sip_code"])
    assert outcome == ("failed", "INCOMPATIBLE_DESTINATION", 488)
    assert live_leg_count(store) == 0
    # No call took place: the session stays open for a retry with an acceptable offer.
    session = store.query_one("SELECT status FROM sessions WHERE id = ?", (sid,))
    assert session is not None and session["status"] == "connecting"


def test_no_allowed_codec_in_offer_is_488(store: Store) -> None:
    org = make_org(store, codecs=("OPUS",))
    sock = _socket(store, org, make_session(store, org), offer_codecs=("PCMU",))
    CallSession(sock, store, CONFIG).run()
    leg = store.query_one("SELECT sip_code FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None and leg["sip_code"] == 488


def test_playback_is_sequential_on_the_right_leg_and_barge_in_clears(store: Store, org: str) -> None:
    sock = _socket(store, org, make_session(store, org))
    run = Running(CallSession(sock, store, CONFIG))
    wait_until(lambda: sock.stream_count == 1, "stream start")
    files = [f"/fs-temp/{sock.uuid}_{i}.tmp.r16" for i in range(4)]
    for f in files[:3]:
        sock.emit_custom("mod_audio_stream::play", {"audioDataType": "raw", "sampleRate": 16000, "file": f})
    sock.emit_custom("mod_audio_stream::play", {"file": "/fs-temp/other_0.tmp.r16"}, uuid="other-uuid")
    wait_until(lambda: sock.playing == files[0], "first file playing")
    time.sleep(0.05)
    assert len(_apis(sock, "uuid_broadcast")) == 1  # the others wait for its EXECUTE_COMPLETE
    sock.finish_playback()
    wait_until(lambda: sock.playing == files[1], "second file playing")
    sock.emit_custom("mod_audio_stream::json", {"type": "kallglot.barge_in"})
    wait_until(lambda: bool(_apis(sock, "uuid_break")), "uuid_break")
    assert _apis(sock, "uuid_break") == [f"uuid_break {sock.uuid} all"]
    sock.emit_custom("mod_audio_stream::play", {"file": files[3]})
    wait_until(lambda: sock.playing == files[3], "file after barge-in")
    # After the broken file, 20 ms of silence takes the CF_BREAK FreeSWITCH leaves set.
    assert _apis(sock, "uuid_broadcast") == [f"uuid_broadcast {sock.uuid} {f} aleg"
                                             for f in (files[0], files[1], CF_BREAK_SINK, files[3])]
    sock.hangup()
    run.join()


def test_refused_stream_keeps_the_call_up_and_retries_a_bounded_number_of_times(
        store: Store, org: str) -> None:
    sock = _socket(store, org, make_session(store, org), bridge_up=False)
    run = Running(CallSession(sock, store, CONFIG))
    wait_until(lambda: sock.stream_count == 3, "three stream attempts")
    time.sleep(0.2)
    assert sock.stream_count == 1 + CONFIG.stream_retries
    assert not sock.hung_up and live_leg_count(store) == 1
    stops = _apis(sock, f"uuid_audio_stream {sock.uuid} stop")
    assert len(stops) == CONFIG.stream_retries
    leg = store.query_one("SELECT status FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None and leg["status"] == "answered"  # never connected to the bridge
    sock.hangup()
    run.join()
    assert live_leg_count(store) == 0


def test_socket_lost_without_hangup_leaves_the_leg_open_for_adoption(store: Store, org: str) -> None:
    # FreeSWITCH parks the call (dialplan: kallglot_after_socket); the next adoption pass takes it
    # back, or reconciliation ends the leg if the channel is gone.
    sock = _socket(store, org, make_session(store, org))
    session = CallSession(sock, store, CONFIG)
    run = Running(session)
    wait_until(lambda: sock.stream_count == 1, "stream start")
    sock.close()
    run.join()
    assert session.detached and live_leg_count(store) == 1
    leg = store.query_one("SELECT ended_at FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None and leg["ended_at"] is None


class _LostAtAnswer(FakeCallSocket):
    """The controller's socket breaks while it waits for ``answer`` to complete."""

    def execute(self, app: str, arg: str | None = None, **kw: object) -> str:
        if app == "answer":
            self.commands.append("execute answer")
            self.close()
            return "answer-uuid"
        return super().execute(app, arg, **kw)  # type: ignore[arg-type]


def test_socket_lost_while_answering_also_leaves_the_leg_open(store: Store, org: str) -> None:
    # The channel is labelled before answer, so FreeSWITCH parks it and the next controller
    # adopts it (and answers it): the leg keeps its slot rather than ending with the socket.
    ch = sip_channel(org, sip_username(store, org), make_session(store, org))
    sock = _LostAtAnswer(dict(ch.headers))  # type: ignore[arg-type]
    session = CallSession(sock, store, CONFIG)
    session.run()
    assert session.detached and not sock.hung_up
    assert _apis(sock, "uuid_setvar_multi") and live_leg_count(store) == 1


def test_disconnect_notice_without_hangup_event_ends_the_call(store: Store, org: str) -> None:
    sock = _socket(store, org, make_session(store, org))
    run = Running(CallSession(sock, store, CONFIG))
    wait_until(lambda: sock.stream_count == 1, "stream start")
    sock.disconnect()
    run.join()
    assert live_leg_count(store) == 0


def test_metadata_argument_has_no_spaces() -> None:
    arg = stream_metadata_arg({"a": "x y", "b": None})
    assert " " not in arg and json.loads(arg) == {"a": "x y", "b": None}


class _CancelsDuringAdmission(FakeCallSocket):
    """The caller CANCELs (or the API's uuid_kill lands) right after `linger`, while we admit."""

    def linger(self, seconds: int | None = None, timeout: float = 10.0) -> None:
        super().linger(seconds, timeout)
        self.hangup("ORIGINATOR_CANCEL")


def test_call_gone_before_answer_ends_the_leg_with_its_own_cause(store: Store, org: str) -> None:
    ch = sip_channel(org, sip_username(store, org), make_session(store, org))
    sock = _CancelsDuringAdmission(dict(ch.headers))
    CallSession(sock, store, CONFIG).run()  # returns normally: no traceback, no hangup sent
    leg = store.query_one("SELECT hangup_cause, ended_at FROM call_legs WHERE call_uuid = ?", (sock.uuid,))
    assert leg is not None and leg["ended_at"] is not None and leg["hangup_cause"] == "ORIGINATOR_CANCEL"
    assert not any(c.startswith("execute hangup") for c in sock.commands)
    assert live_leg_count(store) == 0


def test_rejected_call_gone_before_respond_returns_cleanly(store: Store, org: str) -> None:
    sid = make_session(store, org, status="ended")
    ch = sip_channel(org, sip_username(store, org), sid)
    sock = _CancelsDuringAdmission(dict(ch.headers))
    CallSession(sock, store, CONFIG).run()
    assert sock.commands[-1].startswith("execute ")  # the refused sendmsg was the last command


@pytest.mark.parametrize("mode", [{"Socket-Mode": "static"}, {"Control": "single-channel"}])
def test_socket_that_is_not_async_full_is_refused_before_anything_is_sent(
        store: Store, org: str, mode: dict[str, str]) -> None:
    ch = sip_channel(org, sip_username(store, org), make_session(store, org))
    sock = FakeCallSocket({**ch.headers, **mode})
    CallSession(sock, store, CONFIG).run()
    assert sock.commands == [] and live_leg_count(store) == 0

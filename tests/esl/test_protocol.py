"""The ESL framing parser on the real FreeSWITCH bytes of every captured transcript."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.esl.protocol import (
    API_RESPONSE,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    EVENT_PLAIN,
    Event,
    FrameParser,
    ProtocolError,
    decode_event_plain,
    encode_command,
    encode_event_plain,
    encode_sendmsg,
    event_subscription,
)
from tests.fsdouble.fixtures import client_records, fs_records, read_transcript, transcript_paths

ALL_FS_RECORDS = [
    (p.name, i, r.data)
    for p in transcript_paths()
    for i, r in enumerate(x for x in read_transcript(p) if x.from_fs)
]


def _expected_headers(record: bytes) -> tuple[dict[str, str], bytes]:
    """An independent, naive reading of one record: header block, then the rest is the body."""
    head, _, rest = record.partition(b"\n\n")
    headers = []
    for line in head.decode().split("\n"):
        k, _, v = line.partition(": ")
        headers.append((k, v))
    return headers, rest


def test_every_transcript_has_fs_records() -> None:
    assert len(transcript_paths()) >= 20
    assert len(ALL_FS_RECORDS) > 300


@pytest.mark.parametrize(("name", "index", "record"), ALL_FS_RECORDS, ids=lambda v: str(v)[:30])
def test_each_fs_record_is_one_frame(name: str, index: int, record: bytes) -> None:
    frames = FrameParser().feed(record)
    assert len(frames) == 1, f"{name}#{index}"
    frame = frames[0]
    headers, rest = _expected_headers(record)
    assert list(frame.items) == headers  # wire order and repeats kept
    assert frame.headers == dict(headers)
    assert frame.body == rest
    if "Content-Length" in frame.headers:
        assert len(frame.body) == int(frame.headers["Content-Length"])
    if frame.content_type == EVENT_PLAIN:
        event = Event.from_frame(frame)
        assert event.name
        if event.name == "CUSTOM":
            assert event.items[0][0] == "Event-Subclass"
            if event.subclass.startswith("sofia::"):  # auth events: headers only (inbound-events-sofia-auth)
                assert event.body == b""
                return
            assert event.subclass.startswith("mod_audio_stream::")
            assert isinstance(event.json(), dict)
            assert not event.body.endswith(b"\n")


def test_whole_transcript_fed_as_one_stream() -> None:
    for path in transcript_paths():
        records = [r.data for r in read_transcript(path) if r.from_fs]
        frames = FrameParser().feed(b"".join(records))
        assert len(frames) == len(records), path.name


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_chunkings_give_the_same_frames(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["outbound-call-udp", "inbound-api", "ws-server-close", "reject-404"]))
    stream = b"".join(fs_records(name))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    parser = FrameParser()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got.extend(parser.feed(stream[prev:cut]))
        prev = cut
    assert got == FrameParser().feed(stream)
    assert len(got) == len(fs_records(name))
    assert parser.buffered == 0


def test_byte_at_a_time() -> None:
    stream = b"".join(fs_records("inbound-api"))
    parser = FrameParser()
    frames = [f for i in range(len(stream)) for f in parser.feed(stream[i : i + 1])]
    assert len(frames) == len(fs_records("inbound-api"))


def test_connect_reply_is_channel_data_without_content_length() -> None:
    frame = FrameParser().feed(fs_records("outbound-call-udp")[0])[0]
    assert frame.content_type == COMMAND_REPLY
    assert "Content-Length" not in frame.headers
    assert frame.headers["Reply-Text"] == "%2BOK%0A"
    assert frame.reply_text == "+OK\n"
    data = frame.decoded_headers()
    assert data["Event-Name"] == "CHANNEL_DATA"
    assert data["variable_sip_via_protocol"] == "udp"
    assert data["variable_kallglot_org_id"] == "org_fixture"
    assert data["Control"] == "full"
    assert len(frame.headers) == 160


def test_custom_play_event_body() -> None:
    frames = [f for r in fs_records("outbound-call-udp") for f in FrameParser().feed(r)]
    plays = [Event.from_frame(f) for f in frames if f.content_type == EVENT_PLAIN]
    play = next(e for e in plays if e.key == "mod_audio_stream::play")
    assert play.name == "CUSTOM"
    body = play.json()
    assert body["audioDataType"] == "raw"
    assert body["sampleRate"] == 16000
    assert body["file"] == f"/tmp/{play.uuid}_0.tmp.r16"  # noqa: S108


def test_api_response_and_disconnect_notice() -> None:
    frames = [f for r in fs_records("inbound-api") for f in FrameParser().feed(r)]
    api = [f for f in frames if f.content_type == API_RESPONSE]
    assert api[1].body == b'{"row_count": 0}\n'
    assert api[2].body_text() == "-ERR bogus_cmd Command not found!\n"
    wrong = [f for r in fs_records("inbound-auth-wrong") for f in FrameParser().feed(r)]
    assert [f.content_type for f in wrong] == ["auth/request", COMMAND_REPLY, DISCONNECT_NOTICE]
    assert wrong[1].reply_text == "-ERR invalid"
    assert wrong[2].body.startswith(b"Disconnected, goodbye.")


def test_background_job_body() -> None:
    frames = [f for r in fs_records("inbound-api") for f in FrameParser().feed(r)]
    jobs = [Event.from_frame(f) for f in frames if f.content_type == EVENT_PLAIN]
    job = jobs[0]
    assert job.name == "BACKGROUND_JOB"
    assert job.get("Job-Command") == "status"
    assert job.body_text().startswith("UP 0 years")


def test_event_encoding_round_trips_a_captured_event() -> None:
    for record in fs_records("outbound-call-udp"):
        frame = FrameParser().feed(record)[0]
        if frame.content_type != EVENT_PLAIN:
            continue
        event = Event.from_frame(frame)
        headers = [(k, v) for k, v in event.items if k != "Content-Length"]
        again = encode_event_plain(headers, event.body)
        assert again == record


def test_parser_errors() -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(b"Content-Length: x\n\n")
    with pytest.raises(ProtocolError):
        FrameParser().feed(b"no colon here\n\n")
    with pytest.raises(ProtocolError):
        decode_event_plain(b"Event-Name: X\nContent-Length: 10\n\nabc")


def test_command_encoding_matches_the_captured_controller() -> None:
    sent = client_records("outbound-call-udp")
    assert encode_command("connect") == sent[0]
    assert encode_command(event_subscription([
        "CUSTOM", "mod_audio_stream::connect", "mod_audio_stream::play", "mod_audio_stream::error",
        "mod_audio_stream::disconnect", "mod_audio_stream::json"])) == sent[2]
    assert encode_sendmsg("set", "absolute_codec_string=PCMU,PCMA") == sent[4]
    assert encode_sendmsg("answer", lock=True, event_uuid="11f461f9-6f23-46be-8d4f-49826f8ecf7b") == sent[5]
    assert encode_sendmsg("hangup", "NORMAL_CLEARING") == sent[9]


def test_subscription_puts_custom_last_and_refuses_injection() -> None:
    line = event_subscription(["mod_audio_stream::play", "CHANNEL_HANGUP", "BACKGROUND_JOB"])
    assert line == "event plain CHANNEL_HANGUP BACKGROUND_JOB CUSTOM mod_audio_stream::play"
    with pytest.raises(ValueError):
        encode_command("api status\n\nexit")
    with pytest.raises(ValueError):
        encode_sendmsg("set", "a=b\nexecute-app-name: hangup")
    with pytest.raises(ValueError):
        event_subscription([])


def test_json_body_has_no_trailing_newline_and_decodes() -> None:
    frame = FrameParser().feed(encode_event_plain(
        {"Event-Subclass": "mod_audio_stream::json", "Event-Name": "CUSTOM"}, b'{"a":1}'))[0]
    event = Event.from_frame(frame)
    assert event.json() == {"a": 1}
    assert json.loads(event.body) == {"a": 1}
    assert frame.encode().endswith(b'\n\n{"a":1}')


_HEADER_NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                       min_size=1, max_size=20)
_VALUE = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_HEADER_NAME, _VALUE), min_size=1, max_size=12), st.binary(max_size=200))
def test_event_encoding_round_trips_any_values(items: list[tuple[str, str]], body: bytes) -> None:
    items = [(k, v) for k, v in items if k != "Content-Length"]
    wire = encode_event_plain(items, body)
    frames = FrameParser().feed(wire)
    assert len(frames) == 1
    event = Event.from_frame(frames[0])
    assert [(k, v) for k, v in event.items if k != "Content-Length"] == items
    assert event.body == body

"""The stream metadata survives FreeSWITCH's argument splitting byte-exact (switch_separate_string,
ported in tests/fsdouble/fsstrings.py and checked here against the captured command line)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.calls.call_handler import stream_metadata_arg
from tests.conftest import FIXTURES_DIR
from tests.fsdouble.fsstrings import separate_string

UUID = "b7228e72-954c-4000-870c-420c9e7c4c0b"
URL = "ws://127.0.0.1:8765/v1/media/sess_01HFIXTURE0001/leg1"


def _start_line(meta: str) -> str:
    return f"{UUID} start {URL} mono 16k {meta}"


def test_the_captured_start_line_splits_into_six_arguments() -> None:
    log = (FIXTURES_DIR / "esl" / "outbound-call-udp.log").read_bytes().decode()
    line = next(x for x in log.splitlines() if x.startswith(f"api uuid_audio_stream {UUID} start "))
    argv = separate_string(line.removeprefix("api uuid_audio_stream "), 6)
    meta = '{"session_id":"sess_01HFIXTURE0001","role":"customer"}'
    assert argv == [UUID, "start", URL, "mono", "16k", meta]


def test_freeswitch_cleanup_rules() -> None:
    # The last slot keeps the rest of the line; quotes group and vanish; escapes are undone.
    assert separate_string("a b c d", 2) == ["a", "b c d"]
    assert separate_string("a 'b c' d", 6) == ["a", "b c", "d"]
    assert separate_string("a it's", 6) == ["a", "it's"]  # a lone quote stays
    assert separate_string('a {"k":"x\\"y"}', 2) == ["a", '{"k":"x"y"}']
    assert separate_string("a x\\ny\\u0020z  ", 2) == ["a", "x\ny\\u0020z"]


def test_plain_json_escapes_would_not_survive() -> None:
    naive = json.dumps({"caller": "O'Neil 'x' \"q\" a\\b"}, separators=(",", ":"))
    arrived = separate_string(_start_line(naive), 6)[5]
    assert arrived != naive


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), text), max_size=6))
def test_metadata_arrives_byte_exact(metadata: dict[str, object]) -> None:
    arg = stream_metadata_arg(metadata)
    argv = separate_string(_start_line(arg), 6)
    assert argv[:5] == [UUID, "start", URL, "mono", "16k"]
    assert argv[5] == arg and json.loads(argv[5]) == metadata

"""The double keeps answering like FreeSWITCH whatever a client sends."""

from __future__ import annotations

import socket
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.esl.protocol import FrameParser
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import write_sample_conf

_LINE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)


# Commands that legitimately change the conversation (close it, add events, start jobs).
_STATEFUL = ("exit", "bgapi", "event", "myevents", "sendmsg", "linger", "api originate",
             "api uuid_audio_stream")


def _plain_command(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.startswith(_STATEFUL)


def _session(port: int, lines: list[str]) -> list[str]:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    parser = FrameParser()
    frames = []
    try:
        def until(n: int) -> None:
            while len(frames) < n:
                data = conn.recv(65536)
                assert data, "the double closed the connection"
                frames.extend(parser.feed(data))

        until(1)
        conn.sendall(b"auth ClueCon\n\n")
        until(2)
        for i, line in enumerate(lines):
            conn.sendall(line.encode() + b"\n\n")
            until(3 + i)
        conn.sendall(b"api status\n\n")
        until(3 + len(lines))
    finally:
        conn.close()
    return [f.content_type for f in frames]


def test_garbage_commands_get_replies_not_disconnects(tmp_path: Path) -> None:
    with FreeSwitchDouble(write_sample_conf(tmp_path / "conf")) as fs:
        @settings(max_examples=25, deadline=None)
        @given(st.lists(_LINE.filter(_plain_command), max_size=6))
        def check(lines: list[str]) -> None:
            types = _session(fs.esl_port, lines)
            assert types[-1] == "api/response"
            assert set(types[2:-1]) <= {"command/reply", "api/response"}

        check()

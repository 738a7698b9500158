"""The double against the captured FreeSWITCH transcripts, frame by frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.esl.conformance import compare, drive_outbound
from tests.esl.wsserver import ScriptedWsServer, fixture_texts_out
from tests.fsdouble import FreeSwitchDouble
from tests.fsdouble.sample_conf import PASSWORD, USER, write_sample_conf


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return write_sample_conf(tmp_path / "conf")


def factory(conf: Path, tmp_path: Path):
    return lambda addr: FreeSwitchDouble(conf, controller_addr=addr, temp_dir=tmp_path).start()


BASE = {"user": USER, "password": PASSWORD}
SCENARIOS: dict[str, tuple[dict[str, object], dict[str, object] | None]] = {
    "outbound-call-udp": ({"destination": "sess_01HFIXTURE0001"},
                          {"texts": fixture_texts_out("outbound-call-udp"), "send_after": 3}),
    "outbound-call-tcp": ({"destination": "sess_01HFIXTURE0002", "transport": "tcp"}, None),
    "outbound-call-tls": ({"destination": "sess_01HFIXTURE0002", "transport": "tls"}, None),
    "reject-503-call-limit": ({"destination": "sess_01HFIXTURE0004"}, None),
    "reject-403": ({"destination": "sess_01HFIXTURE0004"}, None),
    "reject-404": ({"destination": "sess_01HFIXTURE0004"}, None),
    "reject-410": ({"destination": "sess_01HFIXTURE0004"}, None),
    "reject-486": ({"destination": "sess_01HFIXTURE0004"}, None),
    "reject-488": ({"destination": "sess_01HFIXTURE0004"}, None),
    "srtp-mandatory-no-crypto": ({"destination": "sess_01HFIXTURE0005", "codecs": ("PCMU", "PCMA")}, None),
    "srtp-mandatory-with-crypto": ({"destination": "sess_01HFIXTURE0005", "crypto": True}, None),
    "codec-opus-offer-pcmu": ({"destination": "sess_01HFIXTURE0006", "codecs": ("PCMU",)}, None),
    "codec-pcmu-pcma-offer-g722": ({"destination": "sess_01HFIXTURE0006", "codecs": ("G722",)}, None),
    "codec-g722-offer-g722": ({"destination": "sess_01HFIXTURE0006", "codecs": ("G722",)}, None),
    "ws-server-close": ({"destination": "sess_01HFIXTURE0003"},
                        {"texts": fixture_texts_out("ws-server-close"), "send_after": 3, "close_after": 15}),
    "ws-hangup-while-streaming": ({"destination": "sess_01HFIXTURE0003"}, {}),
    "ws-refused": ({"destination": "sess_01HFIXTURE0003"}, None),
}


def run_scenario(name: str, conf: Path, tmp_path: Path) -> tuple[list[str], object]:
    call, ws_script = SCENARIOS[name]
    ws = ScriptedWsServer(**ws_script).start() if ws_script is not None else None  # type: ignore[arg-type]
    try:
        run = drive_outbound(name, factory(conf, tmp_path), {**BASE, **call},
                             ws_port=ws.port if ws else _closed_port())
    finally:
        if ws:
            ws.stop()
    return compare(run), run


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_outbound_scenario_matches_the_capture(name: str, conf: Path, tmp_path: Path) -> None:
    problems, run = run_scenario(name, conf, tmp_path)
    assert problems == []
    assert run.pairs and all(actual is not None for _, actual in run.pairs)  # type: ignore[attr-defined]


if __name__ == "__main__":  # debugging aid: print the differences of one scenario
    import sys
    import tempfile

    d = Path(tempfile.mkdtemp())
    print("\n".join(run_scenario(sys.argv[1], write_sample_conf(d / "conf"), d)[0]))

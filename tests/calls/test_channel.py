"""ChannelInfo parsed from the real connect replies captured from FreeSWITCH 1.10.12."""

from __future__ import annotations

import pytest

from controller.calls.channel import ChannelDataError, ChannelInfo
from tests.fsdouble.fixtures import fs_records


def _connect_headers(name: str) -> dict[str, str]:
    first = fs_records(name)[0].decode()
    headers: dict[str, str] = {}
    for line in first.split("\n"):
        if not line:
            continue
        key, _, value = line.partition(": ")
        headers[key] = value
    return headers


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_connect_reply_of_each_transport(transport: str) -> None:
    info = ChannelInfo.from_headers(_connect_headers(f"outbound-call-{transport}"), decoded=False)
    assert info.transport == transport
    assert info.destination == "sess_01HFIXTURE0001"
    assert info.org_id == "org_fixture"
    assert info.auth_username == "kgfixture"
    assert info.network_ip == "127.0.0.1"
    assert info.direction == "inbound"
    assert info.role_header is None
    assert info.originated_leg_id is None
    assert len(info.call_uuid) == 36


def test_offered_codecs_from_remote_sdp() -> None:
    info = ChannelInfo.from_headers(_connect_headers("outbound-call-udp"), decoded=False)
    assert info.offered_codecs == ("PCMU", "PCMA")  # m=audio … RTP/AVP 0 8 101


def test_role_header_and_originated_variables() -> None:
    info = ChannelInfo.from_headers({
        "Unique-ID": "u1", "Call-Direction": "outbound", "Caller-Destination-Number": "+4930123",
        "variable_sip_h_X-Kallglot-Role": "agent", "variable_kallglot_session_id": "sess_A",
        "variable_kallglot_leg_id": "leg_B", "variable_kallglot_role": "agent",
    })
    assert info.role_header == "agent"
    originated = (info.originated_session_id, info.originated_leg_id, info.originated_role)
    assert originated == ("sess_A", "leg_B", "agent")
    assert info.direction == "outbound"
    assert info.transport is None


def test_unauthorized_caller_has_no_auth_username() -> None:
    info = ChannelInfo.from_headers({"Unique-ID": "u", "variable_sip_auth_username": "x",
                                     "variable_sip_authorized": "false"})
    assert info.auth_username is None


def test_missing_uuid_is_a_clear_error() -> None:
    with pytest.raises(ChannelDataError, match="Unique-ID"):
        ChannelInfo.from_headers({"Caller-Destination-Number": "sess_x"})


def test_disconnect_close_code_reads_mod_audio_stream_body() -> None:
    from controller.calls.call_handler import PERMANENT_CLOSE_CODES, disconnect_close_code

    body = b'{"status":"disconnected","message":{"code":4404,"reason":"unknown session"}}'
    assert disconnect_close_code(body) == 4404 in PERMANENT_CLOSE_CODES
    assert disconnect_close_code(b'{"status":"disconnected","message":{"code":4000,"reason":"bye"}}') == 4000
    assert disconnect_close_code(b"not json") is None

"""Every admission outcome of DESIGN.md §3 on a real store: SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging

import pytest

from controller.calls.admission import Admitted, Rejected, admit
from controller.calls.legs import end_leg, mark_leg
from controller.store import Store
from tests.calls.factories import (
    live_leg_count,
    make_number,
    make_org,
    make_session,
    sip_channel,
    sip_username,
)


@pytest.fixture
def store(any_store: Store) -> Store:
    """Every test here runs on both backends (tests/conftest.py ``any_store``)."""
    return any_store


def _admit_sip(store: Store, org_id: str, dest: str, **kw: object) -> Admitted | Rejected:
    return admit(store, sip_channel(org_id, sip_username(store, org_id), dest, **kw))  # type: ignore[arg-type]


def _rejected(result: Admitted | Rejected, code: int) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.sip_code == code, result
    return result


def test_admits_first_leg_as_customer_and_marks_session_connecting(store: Store) -> None:
    org = make_org(store, codecs=("G722", "PCMU"), require_srtp=True)
    sid = make_session(store, org)
    result = _admit_sip(store, org, sid)
    assert isinstance(result, Admitted)
    assert (result.session_id, result.role, result.peer_leg_id) == (sid, "customer", None)
    assert result.codec_string == "G722,PCMU"
    assert result.require_srtp is True
    row = store.query_one("SELECT * FROM call_legs WHERE id = ?", (result.leg_id,))
    assert row is not None and row["call_uuid"] == result.call_uuid and row["ended_at"] is None
    assert row["status"] == "admitted" and row["role"] == "customer"
    session = store.query_one("SELECT status FROM sessions WHERE id = ?", (sid,))
    assert session is not None and session["status"] == "connecting"
    meta = result.stream_metadata()
    assert meta["leg_id"] == result.leg_id and meta["sample_rate"] == 16000
    assert meta["source_language"] == "en"


def test_second_leg_is_agent_with_peer(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    first = _admit_sip(store, org, sid)
    second = _admit_sip(store, org, sid)
    assert isinstance(first, Admitted) and isinstance(second, Admitted)
    assert second.role == "agent" and second.peer_leg_id == first.leg_id


def test_role_header_wins_and_a_taken_role_is_busy(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    first = _admit_sip(store, org, sid, role="Agent")
    assert isinstance(first, Admitted) and first.role == "agent"
    _rejected(_admit_sip(store, org, sid, role="agent"), 486)
    second = _admit_sip(store, org, sid)
    assert isinstance(second, Admitted) and second.role == "customer"


def test_bad_role_header_is_400_naming_the_header(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    assert "X-Kallglot-Role" in _rejected(_admit_sip(store, org, sid, role="boss"), 400).reason
    assert live_leg_count(store) == 0


def test_third_leg_is_486(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    _admit_sip(store, org, sid)
    _admit_sip(store, org, sid)
    _rejected(_admit_sip(store, org, sid), 486)
    assert live_leg_count(store) == 2


def test_sip_disabled_is_403(store: Store) -> None:
    org = make_org(store, enabled=False)
    sid = make_session(store, org)
    _rejected(_admit_sip(store, org, sid), 403)


@pytest.mark.parametrize(
    ("transports", "require_tls", "used", "code"),
    [
        (("tls",), False, "udp", 403),
        (("tcp", "udp"), False, "tls", 403),
        (("tls", "tcp", "udp"), True, "tcp", 403),
        (("tls",), True, "tls", None),
        (("tcp",), False, "tcp", None),
    ],
)
def test_transport_policy(store: Store, transports: tuple[str, ...], require_tls: bool, used: str,
                          code: int | None) -> None:
    org = make_org(store, transports=transports, require_tls=require_tls)
    sid = make_session(store, org)
    result = _admit_sip(store, org, sid, transport=used)
    if code is None:
        assert isinstance(result, Admitted)
    else:
        _rejected(result, code)


def test_disabled_is_checked_before_transport(store: Store) -> None:
    org = make_org(store, enabled=False, transports=("tls",))
    sid = make_session(store, org)
    assert "disabled" in _rejected(_admit_sip(store, org, sid, transport="udp"), 403).reason


def test_session_of_another_org_or_unknown_is_404(store: Store) -> None:
    org_a = make_org(store)
    org_b = make_org(store)
    sid_b = make_session(store, org_b)
    _rejected(_admit_sip(store, org_a, sid_b), 404)
    _rejected(_admit_sip(store, org_a, "sess_01NOSUCHSESSION0000000000"), 404)
    _rejected(_admit_sip(store, org_a, "alice"), 404)


@pytest.mark.parametrize("status", ["ended", "ending"])
def test_ended_session_is_410(store: Store, status: str) -> None:
    org = make_org(store)
    sid = make_session(store, org, status=status)
    _rejected(_admit_sip(store, org, sid), 410)


def test_cap_is_503_with_x_call_limit_and_counts_a_session_once(store: Store) -> None:
    org = make_org(store, cap=2)
    s1, s2, s3 = (make_session(store, org) for _ in range(3))
    assert isinstance(_admit_sip(store, org, s1), Admitted)
    assert isinstance(_admit_sip(store, org, s1), Admitted)  # same session: no second slot
    assert isinstance(_admit_sip(store, org, s2), Admitted)
    rej = _rejected(_admit_sip(store, org, s3), 503)
    assert rej.response_headers == (("X-Call-Limit", "2"),)
    # A leg of an already-live session still comes in at the cap.
    assert isinstance(_admit_sip(store, org, s2), Admitted)


def test_hangup_releases_the_slot(store: Store) -> None:
    org = make_org(store, cap=1)
    s1, s2 = make_session(store, org), make_session(store, org)
    first = _admit_sip(store, org, s1)
    assert isinstance(first, Admitted)
    _rejected(_admit_sip(store, org, s2), 503)
    mark_leg(store, first.leg_id, "answered")
    ended = end_leg(store, first.call_uuid, hangup_cause="NORMAL_CLEARING")
    assert ended is not None and ended.session_ended
    assert isinstance(_admit_sip(store, org, s2), Admitted)


def test_other_orgs_calls_do_not_count(store: Store) -> None:
    org_a, org_b = make_org(store, cap=1), make_org(store, cap=1)
    assert isinstance(_admit_sip(store, org_a, make_session(store, org_a)), Admitted)
    assert isinstance(_admit_sip(store, org_b, make_session(store, org_b)), Admitted)


def test_check_order_404_before_410_before_486_before_503(store: Store) -> None:
    org = make_org(store, cap=1)
    busy = make_session(store, org)
    _admit_sip(store, org, busy)  # the org is now at its cap of 1
    _rejected(_admit_sip(store, org, "sess_01NOSUCHSESSION0000000000"), 404)  # not 503
    ended = make_session(store, org, status="ended")
    _rejected(_admit_sip(store, org, ended), 410)  # not 503
    _admit_sip(store, org, busy)
    _rejected(_admit_sip(store, org, busy), 486)  # not 503


def test_stale_directory_user_is_403(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    _rejected(admit(store, sip_channel(org, "someone-else", sid)), 403)
    _rejected(admit(store, sip_channel(org, sip_username(store, org), sid, authorized=False)), 403)


def test_provider_call_to_managed_number_creates_a_session_from_defaults(store: Store) -> None:
    org = make_org(store, codecs=("OPUS",), require_srtp=True)
    make_number(store, org, "+4930123456", ["203.0.113.0/24"])
    result = admit(store, sip_channel(None, None, "4930123456", ip="203.0.113.9"))
    assert isinstance(result, Admitted) and result.session_created
    # SIP/PBX media policy does not apply to provider trunks.
    assert result.codec_string is None and result.require_srtp is False
    row = store.query_one("SELECT * FROM sessions WHERE id = ?", (result.session_id,))
    assert row is not None
    assert (row["phone_number"], row["provider"], row["mode"], row["status"], row["direction"]) == (
        "+4930123456", "twilio", "bidirectional_translation", "connecting", "inbound")
    # The second call to the number joins the newest open session.
    again = admit(store, sip_channel(None, None, "+4930123456", ip="203.0.113.10"))
    assert isinstance(again, Admitted) and again.session_id == result.session_id and again.role == "agent"


def test_number_call_whose_default_languages_no_engine_translates_is_480(store: Store) -> None:
    org = make_org(store)
    store.conn.execute("UPDATE sip_settings SET default_source_language = 'en', "
                       "default_target_language = 'xh' WHERE org_id = ?", (org,))
    make_number(store, org, "+4930123456", ["203.0.113.0/24"])
    _rejected(admit(store, sip_channel(None, None, "+4930123456", ip="203.0.113.9")), 480)
    assert store.query_one("SELECT COUNT(*) FROM sessions")[0] == 0  # type: ignore[index]


def test_provider_call_joins_newest_open_session_of_the_number(store: Store) -> None:
    org = make_org(store)
    cid = make_number(store, org, "+4930999", ["198.51.100.7"])
    make_session(store, org, phone_number="+4930999", connection_id=cid, created_at=1.0)
    newer = make_session(store, org, phone_number="+4930999", connection_id=cid, created_at=2.0)
    make_session(store, org, phone_number="+4930999", connection_id=cid, created_at=3.0, status="ended")
    result = admit(store, sip_channel(None, None, "+4930999", ip="198.51.100.7"))
    assert isinstance(result, Admitted) and result.session_id == newer


def test_provider_call_from_outside_inbound_addresses_is_403(store: Store) -> None:
    org = make_org(store)
    make_number(store, org, "+4930123456", ["203.0.113.0/24"])
    _rejected(admit(store, sip_channel(None, None, "+4930123456", ip="192.0.2.1")), 403)
    _rejected(admit(store, sip_channel(None, None, "+4930000000", ip="203.0.113.9")), 403)
    assert store.query_one("SELECT COUNT(*) FROM sessions")[0] == 0  # type: ignore[index]


def test_503_for_a_new_number_session_leaves_no_orphan_session(store: Store) -> None:
    org = make_org(store, cap=1)
    _admit_sip(store, org, make_session(store, org))
    make_number(store, org, "+4930123456", ["203.0.113.9"])
    _rejected(admit(store, sip_channel(None, None, "+4930123456", ip="203.0.113.9")), 503)
    assert store.query_one("SELECT COUNT(*) FROM sessions WHERE phone_number IS NOT NULL")[0] == 0  # type: ignore[index]


def test_every_outcome_logs_one_structured_line(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    org = make_org(store, cap=1)
    sid = make_session(store, org)
    caplog.set_level(logging.INFO, logger="kallglot.calls.admission")
    ok = _admit_sip(store, org, sid)
    _admit_sip(store, org, make_session(store, org))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kallglot.calls.admission"]
    assert len(lines) == 2
    assert lines[0]["outcome"] == "admitted" and lines[0]["leg_id"] == ok.leg_id  # type: ignore[union-attr]
    assert lines[1]["outcome"] == "rejected" and lines[1]["sip_code"] == 503
    for line in lines:
        assert {"session_id", "call_uuid", "org_id", "outcome", "sip_code"} <= line.keys()
        assert line["org_id"] == org

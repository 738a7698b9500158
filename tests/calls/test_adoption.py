"""Adoption of calls an earlier controller left parked: which ones, with which ESL commands."""

from __future__ import annotations

import time

from controller.calls.admission import Admitted, admit
from controller.calls.adoption import adopt_parked_calls, has_audio_stream, is_adopted, resume_leg
from controller.calls.legs import end_leg
from controller.store import Store
from tests.calls.factories import make_org, make_session, sip_channel, sip_username

# uuid_buglist of a channel with mod_audio_stream running, as FreeSWITCH 1.10.12 printed it.
BUGLIST_STREAMING = ("<media-bugs>\n <media-bug>\n  <function>audio_stream</function>\n"
                     "  <target>N/A</target>\n  <thread-locked>0</thread-locked>\n"
                     " </media-bug>\n</media-bugs>\n")


class FakeSwitch:
    """Answers uuid_getvar from a table; records every command."""

    def __init__(self, channels: dict[str, dict[str, str]]) -> None:
        self.channels = channels
        self.sent: list[str] = []

    def api(self, cmd: str) -> str:
        self.sent.append(cmd)
        words = cmd.split()
        if words[0] == "uuid_getvar":
            return self.channels.get(words[1], {}).get(words[2], "_undef_")
        return "+OK\n"


def _admitted(store: Store, org: str, role: str = "customer") -> Admitted:
    sid = make_session(store, org)
    result = admit(store, sip_channel(org, sip_username(store, org), sid, role=role), now=time.time() - 60)
    assert isinstance(result, Admitted)
    return result


def test_parked_calls_of_open_legs_are_sent_back_and_orphans_hung_up(store: Store) -> None:
    org = make_org(store)
    parked, busy, routing = _admitted(store, org), _admitted(store, org), _admitted(store, org)
    ended = _admitted(store, org)
    end_leg(store, ended.call_uuid, hangup_cause="NORMAL_CLEARING")
    fs = FakeSwitch({
        parked.call_uuid: {"current_application": "park", "kallglot_leg_id": parked.leg_id},
        busy.call_uuid: {"current_application": "park", "kallglot_leg_id": busy.leg_id},
        routing.call_uuid: {"current_application": "socket", "kallglot_leg_id": routing.leg_id},
        ended.call_uuid: {"current_application": "park", "kallglot_leg_id": ended.leg_id},
        "stranger": {"current_application": "park"},  # no leg variable: not ours to end
    })
    live = [parked.call_uuid, busy.call_uuid, routing.call_uuid, ended.call_uuid, "stranger"]
    result = adopt_parked_calls(store, fs.api, live, handled={busy.call_uuid})
    assert result.adopted == (parked.call_uuid,) and result.ended == (ended.call_uuid,)
    acting = [c for c in fs.sent if not c.startswith("uuid_getvar")]
    assert sorted(acting) == sorted([
        f"uuid_setvar {parked.call_uuid} kallglot_adopted true",
        f"uuid_transfer {parked.call_uuid} kallglot_attach XML kallglot",
        f"uuid_kill {ended.call_uuid} NORMAL_CLEARING"])
    assert acting.index(f"uuid_setvar {parked.call_uuid} kallglot_adopted true") < acting.index(
        f"uuid_transfer {parked.call_uuid} kallglot_attach XML kallglot")
    assert not [c for c in fs.sent if busy.call_uuid in c]  # this controller drives it already


def test_a_leg_younger_than_the_grace_is_left_to_its_admission(store: Store) -> None:
    org = make_org(store)
    sid = make_session(store, org)
    fresh = admit(store, sip_channel(org, sip_username(store, org), sid))
    assert isinstance(fresh, Admitted)
    fs = FakeSwitch({fresh.call_uuid: {"current_application": "park", "kallglot_leg_id": fresh.leg_id}})
    assert adopt_parked_calls(store, fs.api, [fresh.call_uuid], handled=(), grace_s=5).adopted == ()


def test_resume_leg_reads_the_leg_and_refuses_a_closed_one(store: Store) -> None:
    org = make_org(store)
    first = _admitted(store, org)
    channel = sip_channel(org, sip_username(store, org), "kallglot_attach", call_uuid=first.call_uuid)
    resumed = resume_leg(store, channel, first.leg_id)
    assert resumed is not None
    assert (resumed.session_id, resumed.leg_id, resumed.role) == (first.session_id, first.leg_id, first.role)
    assert resume_leg(store, channel, "leg_someoneelse") is None
    end_leg(store, first.call_uuid, hangup_cause="NORMAL_CLEARING")
    assert resume_leg(store, channel, first.leg_id) is None


def test_adoption_markers() -> None:
    assert is_adopted({"variable_kallglot_adopted": "true"}) and not is_adopted({})
    assert has_audio_stream(BUGLIST_STREAMING) and not has_audio_stream("<media-bugs>\n</media-bugs>\n")

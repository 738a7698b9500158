"""Calls that outlive their controller, and the controller that takes them back.

A call's outbound socket can close while the call goes on: the controller was killed, or it
was stopped and handed its calls over (SIGTERM). FreeSWITCH then runs the dialplan's next
action, ``transfer kallglot_after_socket``, which parks an admitted call (one that carries
``kallglot_leg_id``) with its audio stream still running (templates/dialplan.xml.j2).

A controller that starts, or reconnects its inbound ESL, looks for such parked calls and sends
each back to itself: ``uuid_setvar <uuid> kallglot_adopted true`` then ``uuid_transfer <uuid>
kallglot_attach XML kallglot``, whose ``socket`` opens a new outbound connection. The call
handler sees ``kallglot_adopted`` and resumes the leg (no admission, no answer; the stream is
restarted only if it is gone). A parked call whose leg is no longer open (its session ended
meanwhile) is hung up, with a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from controller.calls.admission import CLOSED_SESSION_STATUSES, Admitted, admitted_leg
from controller.calls.channel import ChannelInfo
from controller.store import Store

log = logging.getLogger("kallglot.calls.adoption")

ADOPTED_VARIABLE = "kallglot_adopted"
ATTACH_EXTENSION = "kallglot_attach XML kallglot"

ApiCall = Callable[[str], str]


def is_adopted(channel_data: Mapping[str, str]) -> bool:
    """The connect reply of a socket opened by ``uuid_transfer … kallglot_attach`` for adoption."""
    return channel_data.get(f"variable_{ADOPTED_VARIABLE}") == "true"


def resume_leg(store: Store, channel: ChannelInfo, leg_id: str | None) -> Admitted | None:
    """The admitted leg an adopted channel belongs to, from the store; None when that leg is not
    open any more (ended by reconciliation, or its session ended while no controller listened)."""
    if not leg_id:
        return None
    leg = store.query_one(
        "SELECT * FROM call_legs WHERE id = ? AND call_uuid = ? AND ended_at IS NULL",
        (leg_id, channel.call_uuid),
    )
    if leg is None:
        return None
    session = store.query_one("SELECT * FROM sessions WHERE id = ?", (leg["session_id"],))
    if session is None or session["status"] in CLOSED_SESSION_STATUSES:
        return None
    peer = store.query_one(
        "SELECT id FROM call_legs WHERE session_id = ? AND ended_at IS NULL AND id != ? "
        "ORDER BY created_at LIMIT 1",
        (leg["session_id"], leg_id),
    )
    return admitted_leg(channel.call_uuid, leg, session, peer["id"] if peer else None)


def has_audio_stream(buglist_reply: str) -> bool:
    """``uuid_buglist`` lists mod_audio_stream's media bug as ``<function>audio_stream</function>``."""
    return "<function>audio_stream</function>" in buglist_reply


@dataclass(frozen=True)
class AdoptionPass:
    adopted: tuple[str, ...] = ()  # call uuids sent back to this controller
    ended: tuple[str, ...] = ()  # parked calls of no open leg, hung up


def _log(event: str, **fields: object) -> None:
    log.info(json.dumps({"event": event, **fields}, separators=(",", ":")))


def adopt_parked_calls(store: Store, api: ApiCall, live_uuids: Collection[str],
                       handled: Collection[str], *, grace_s: float = 2.0,
                       now: float | None = None) -> AdoptionPass:
    """Send every parked call of an open leg back to this controller; hang up parked calls
    whose leg is closed. ``handled``: the calls this controller drives right now.

    Only channels whose current application is ``park`` are touched (a call still on another
    socket, or being routed, is not), and only legs older than ``grace_s`` (a call being
    admitted right now has its leg but is still on its first socket)."""
    now = time.time() if now is None else now
    adopted: list[str] = []
    ended: list[str] = []
    open_legs = {
        str(r["call_uuid"]): r
        for r in store.query("SELECT id, call_uuid, session_id, created_at FROM call_legs "
                             "WHERE ended_at IS NULL")
    }
    for call_uuid in sorted(set(live_uuids) - set(handled)):
        if api(f"uuid_getvar {call_uuid} current_application").strip() != "park":
            continue
        leg = open_legs.get(call_uuid)
        if leg is None:
            leg_variable = api(f"uuid_getvar {call_uuid} kallglot_leg_id").strip()
            if leg_variable.startswith("leg_"):
                reply = api(f"uuid_kill {call_uuid} NORMAL_CLEARING").strip()
                _log("orphan_call_ended", call_uuid=call_uuid, leg_id=leg_variable, reply=reply,
                     reason="its leg or session had ended while no controller held the call")
                ended.append(call_uuid)
            continue
        if float(leg["created_at"]) > now - grace_s:
            continue
        api(f"uuid_setvar {call_uuid} {ADOPTED_VARIABLE} true")
        reply = api(f"uuid_transfer {call_uuid} {ATTACH_EXTENSION}").strip()
        _log("call_adoption_requested", call_uuid=call_uuid, leg_id=leg["id"],
             session_id=leg["session_id"], reply=reply)
        if reply.startswith("+OK"):
            adopted.append(call_uuid)
    return AdoptionPass(tuple(adopted), tuple(ended))

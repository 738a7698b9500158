"""A channel of the double and the ESL events it fires, with FreeSWITCH's real header layout.

Layout of every channel event, as captured (templates.json): core headers (``Event-Subclass``
first for CUSTOM), the channel block (``Channel-State`` … ``Answer-State``, ``Hangup-Cause`` once
hung up), the caller profile (``Caller-*``), the event's own headers (``Application`` …), the
channel variables, and for events with a body the inner ``Content-Length``.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATES: dict[str, Any] = json.loads(Path(__file__).with_name("templates.json").read_text())

STATE_NUMBERS = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8, "CS_RESET": 9,
    "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}

# Q.850 numbers of the causes the double produces (switch_channel.c cause table).
Q850 = {
    "UNALLOCATED_NUMBER": 1, "NO_ROUTE_DESTINATION": 3, "NORMAL_CLEARING": 16, "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18, "NO_ANSWER": 19, "CALL_REJECTED": 21, "NUMBER_CHANGED": 22,
    "EXCHANGE_ROUTING_ERROR": 25, "INVALID_NUMBER_FORMAT": 28, "NORMAL_UNSPECIFIED": 31,
    "NETWORK_OUT_OF_ORDER": 38, "NORMAL_TEMPORARY_FAILURE": 41, "SERVICE_UNAVAILABLE": 63,
    "SERVICE_NOT_IMPLEMENTED": 79, "INCOMPATIBLE_DESTINATION": 88, "RECOVERY_ON_TIMER_EXPIRE": 102,
    "INTERWORKING": 127, "ORIGINATOR_CANCEL": 487, "MANAGER_REQUEST": 503, "MEDIA_TIMEOUT": 604,
}

# mod_sofia: SIP code sent by `respond <code>` → hangup cause (observed ones in fixtures README §1,
# the rest from sofia_glue_sip_cause_to_freeswitch).
SIP_TO_CAUSE = {
    401: "CALL_REJECTED", 402: "CALL_REJECTED", 403: "CALL_REJECTED", 407: "CALL_REJECTED",
    603: "CALL_REJECTED", 404: "UNALLOCATED_NUMBER", 485: "NO_ROUTE_DESTINATION",
    604: "NO_ROUTE_DESTINATION", 408: "RECOVERY_ON_TIMER_EXPIRE", 504: "RECOVERY_ON_TIMER_EXPIRE",
    410: "NUMBER_CHANGED", 480: "NO_USER_RESPONSE", 400: "NORMAL_TEMPORARY_FAILURE",
    481: "NORMAL_TEMPORARY_FAILURE", 500: "NORMAL_TEMPORARY_FAILURE", 503: "NORMAL_TEMPORARY_FAILURE",
    486: "USER_BUSY", 600: "USER_BUSY", 484: "INVALID_NUMBER_FORMAT", 488: "INCOMPATIBLE_DESTINATION",
    606: "INCOMPATIBLE_DESTINATION", 502: "NETWORK_OUT_OF_ORDER", 405: "SERVICE_UNAVAILABLE",
    406: "SERVICE_NOT_IMPLEMENTED", 415: "SERVICE_NOT_IMPLEMENTED", 501: "SERVICE_NOT_IMPLEMENTED",
    482: "EXCHANGE_ROUTING_ERROR", 483: "EXCHANGE_ROUTING_ERROR", 487: "ORIGINATOR_CANCEL",
}

# Hangup cause → SIP code when FreeSWITCH refuses an unanswered inbound call: mod_sofia's
# hangup_cause_to_sip (agrees with DESIGN.md §4: USER_BUSY 486, NORMAL_TEMPORARY_FAILURE 503,
# UNALLOCATED_NUMBER 404, INCOMPATIBLE_DESTINATION 488, CALL_REJECTED 603, else 480).
CAUSE_TO_SIP = {
    "UNALLOCATED_NUMBER": 404, "NO_ROUTE_TRANSIT_NET": 404, "NO_ROUTE_DESTINATION": 404,
    "USER_BUSY": 486, "NO_USER_RESPONSE": 408, "NO_ANSWER": 480, "SUBSCRIBER_ABSENT": 480,
    "CALL_REJECTED": 603, "NUMBER_CHANGED": 410, "REDIRECTION_TO_NEW_DESTINATION": 410,
    "DESTINATION_OUT_OF_ORDER": 502, "INVALID_NUMBER_FORMAT": 484, "FACILITY_REJECTED": 501,
    "NORMAL_UNSPECIFIED": 480, "REQUESTED_CHAN_UNAVAIL": 503, "NORMAL_CIRCUIT_CONGESTION": 503,
    "NETWORK_OUT_OF_ORDER": 503, "NORMAL_TEMPORARY_FAILURE": 503, "SWITCH_CONGESTION": 503,
    "OUTGOING_CALL_BARRED": 403, "INCOMING_CALL_BARRED": 403, "BEARERCAPABILITY_NOTAUTH": 403,
    "BEARERCAPABILITY_NOTAVAIL": 503, "BEARERCAPABILITY_NOTIMPL": 488, "INCOMPATIBLE_DESTINATION": 488,
    "FACILITY_NOT_IMPLEMENTED": 501, "SERVICE_NOT_IMPLEMENTED": 501, "RECOVERY_ON_TIMER_EXPIRE": 504,
    "ORIGINATOR_CANCEL": 487, "EXCHANGE_ROUTING_ERROR": 483,
}

SIP_REASONS = {
    200: "OK", 403: "Forbidden", 404: "Not Found", 407: "Proxy Authentication Required",
    410: "Gone", 480: "Temporarily Unavailable", 486: "Busy Here", 488: "Not Acceptable Here",
    503: "Service Unavailable", 603: "Decline", 500: "Server Internal Error", 487: "Request Terminated",
    408: "Request Timeout", 483: "Too Many Hops", 484: "Address Incomplete", 501: "Not Implemented",
    502: "Bad Gateway", 504: "Server Time-out",
}


def sip_to_cause(code: int) -> str:
    return SIP_TO_CAUSE.get(code, "NORMAL_UNSPECIFIED" if code >= 400 else "NORMAL_CLEARING")


def cause_to_sip(cause: str) -> int:
    return CAUSE_TO_SIP.get(cause, 480)


def _calling(key: str) -> tuple[str, str, str]:
    tpl = dict(TEMPLATES["events"].get(key, []))
    return (tpl.get("Event-Calling-File", "switch_event.c"), tpl.get("Event-Calling-Function", "unknown"),
            tpl.get("Event-Calling-Line-Number", "0"))


@dataclass
class Core:
    """The switch itself: identity, event sequence, temp dir."""

    hostname: str = "fs-double"
    ipv4: str = "127.0.0.1"
    ipv6: str = "::1"
    core_uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    sequence: int = 0
    started: float = field(default_factory=time.time)

    def core_headers(self, name: str, subclass: str = "", calling_key: str = "") -> list[tuple[str, str]]:
        self.sequence += 1
        now = time.time()
        file, func, line = _calling(calling_key or subclass or name)
        items: list[tuple[str, str]] = [("Event-Subclass", subclass)] if subclass else []
        items += [
            ("Event-Name", name), ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname), ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4), ("FreeSWITCH-IPv6", self.ipv6),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", file), ("Event-Calling-Function", func),
            ("Event-Calling-Line-Number", line), ("Event-Sequence", str(self.sequence)),
        ]
        return items


@dataclass
class Playback:
    """One file played to a channel (uuid_broadcast / playback)."""

    file: str
    audio: bytes
    sample_rate: int
    started: float
    ended: float | None = None
    interrupted: bool = False

    @property
    def duration(self) -> float:
        return len(self.audio) / 2 / self.sample_rate if self.sample_rate else 0.0


@dataclass
class Channel:
    core: Core
    uuid: str
    caller: dict[str, str]  # username, caller_id, network_addr, destination, context, channel_name
    variables: dict[str, str]
    transport: str = "udp"
    direction: str = "inbound"  # "outbound" for originated legs
    state: str = "CS_INIT"
    state_number: int = 1
    call_state: str = "DOWN"  # RINGING once routed (as captured on CHANNEL_CREATE)
    answer_state: str = "ringing"
    hangup_cause: str = ""
    created_us: int = field(default_factory=lambda: int(time.time() * 1_000_000))
    answered_us: int = 0
    progress_media_us: int = 0
    hangup_us: int = 0
    codec: str = ""  # read/write codec once media is up (pre-answer or answer)
    codec_rate: int = 0
    codec_bitrate: int = 0
    sip_final: int | None = None
    sip_headers: dict[str, str] = field(default_factory=dict)
    played: list[Playback] = field(default_factory=list)
    created_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.caller["channel_name"]

    @property
    def answered(self) -> bool:
        return self.answered_us != 0

    @property
    def hung_up(self) -> bool:
        return bool(self.hangup_cause)

    def set_state(self, state: str) -> None:
        self.state = state
        self.state_number = STATE_NUMBERS[state]

    def caller_block(self, prefix: str) -> list[tuple[str, str]]:
        """The caller profile's headers (switch_caller_profile_event_set_data): after a transfer
        the profile is a clone with the new destination, context and dialplan, the old
        destination as RDNIS, a Transfer-Source, the next Profile-Index and its own creation time
        (its Channel-Transfer-Time stays 0: FreeSWITCH stamps the replaced profile)."""
        c = self.caller
        created = str(self.created_us)
        items = [
            (f"{prefix}Direction", self.direction), (f"{prefix}Logical-Direction", self.direction),
            (f"{prefix}Username", c["username"]), (f"{prefix}Dialplan", c.get("dialplan", "XML")),
            (f"{prefix}Caller-ID-Name", c["caller_id"]), (f"{prefix}Caller-ID-Number", c["caller_id"]),
            (f"{prefix}Orig-Caller-ID-Name", c["caller_id"]),
            (f"{prefix}Orig-Caller-ID-Number", c["caller_id"]),
            (f"{prefix}Network-Addr", c["network_addr"]), (f"{prefix}ANI", c["caller_id"]),
            (f"{prefix}Destination-Number", c["destination"]), (f"{prefix}Unique-ID", self.uuid),
            (f"{prefix}Source", "mod_sofia")]
        if c.get("transfer_source"):
            items.append((f"{prefix}Transfer-Source", c["transfer_source"]))
        items.append((f"{prefix}Context", c["context"]))
        if c.get("rdnis"):
            items.append((f"{prefix}RDNIS", c["rdnis"]))
        return [
            *items, (f"{prefix}Channel-Name", self.name),
            (f"{prefix}Profile-Index", c.get("profile_index", "1")),
            (f"{prefix}Profile-Created-Time", c.get("profile_created", created)),
            (f"{prefix}Channel-Created-Time", created),
            (f"{prefix}Channel-Answered-Time", str(self.answered_us)),
            (f"{prefix}Channel-Progress-Time", "0"),
            (f"{prefix}Channel-Progress-Media-Time", str(self.progress_media_us)),
            (f"{prefix}Channel-Hangup-Time", str(self.hangup_us)),
            (f"{prefix}Channel-Transfer-Time", "0"), (f"{prefix}Channel-Resurrect-Time", "0"),
            (f"{prefix}Channel-Bridged-Time", "0"), (f"{prefix}Channel-Last-Hold", "0"),
            (f"{prefix}Channel-Hold-Accum", "0"), (f"{prefix}Screen-Bit", "true"),
            (f"{prefix}Privacy-Hide-Name", "false"), (f"{prefix}Privacy-Hide-Number", "false"),
        ]

    def channel_block(self) -> list[tuple[str, str]]:
        items = [
            ("Channel-State", self.state), ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", str(self.state_number)), ("Channel-Name", self.name),
            ("Unique-ID", self.uuid), ("Call-Direction", self.direction),
            ("Presence-Call-Direction", self.direction),
            ("Channel-HIT-Dialplan", "true"), ("Channel-Call-UUID", self.uuid),
            ("Answer-State", self.answer_state),
        ]
        if self.hangup_cause:
            items.append(("Hangup-Cause", self.hangup_cause))
        if self.codec:
            for side in ("Read", "Write"):
                items += [(f"Channel-{side}-Codec-Name", self.codec),
                          (f"Channel-{side}-Codec-Rate", str(self.codec_rate)),
                          (f"Channel-{side}-Codec-Bit-Rate", str(self.codec_bitrate))]
        return items + self.caller_block("Caller-")

    def set_var(self, name: str, value: str) -> None:
        """As switch_channel_set_variable: the variable moves to the end; empty deletes it."""
        self.variables.pop(name, None)
        if value != "":
            self.variables[name] = value

    def set_vars(self, values: dict[str, str]) -> None:
        for k, v in values.items():
            self.set_var(k, v)

    def var_items(self) -> list[tuple[str, str]]:
        return [(f"variable_{k}", v) for k, v in self.variables.items()]

    def event(self, name: str, extra: list[tuple[str, str]] | None = None, *, subclass: str = "",
              body: bytes = b"") -> tuple[list[tuple[str, str]], bytes]:
        """Headers (plain values) and body of a channel event, in FreeSWITCH's order."""
        items = self.core.core_headers("CUSTOM" if subclass else name, subclass, calling_key=subclass or name)
        if name == "CHANNEL_HANGUP_COMPLETE":
            items.append(("Hangup-Cause", self.hangup_cause))
        items += self.channel_block()
        items += extra or []
        if name != "CHANNEL_STATE":  # state events carry no variables (as captured)
            items += self.var_items()
        return items, body

    def connect_reply(self, *, is_async: bool = True, full: bool = True) -> list[tuple[str, str]]:
        """The outbound socket's ``connect`` reply: CHANNEL_DATA headers, no Content-Length."""
        items = self.core.core_headers("CHANNEL_DATA", calling_key="CHANNEL_DATA")
        # CHANNEL_DATA is produced by mod_event_socket's parse_command.
        items = [(k, v) for k, v in items]
        idx = [k for k, _ in items].index("Event-Calling-File")
        items[idx: idx + 3] = [("Event-Calling-File", "mod_event_socket.c"),
                               ("Event-Calling-Function", "parse_command"),
                               ("Event-Calling-Line-Number", "2021")]
        items += self.caller_block("Channel-")
        items += self.channel_block()
        items += self.var_items()
        # mod_event_socket: Socket-Mode async|static, Control full|single-channel (from the flags
        # of `socket <addr> [async] [full]`).
        items += [("Content-Type", "command/reply"), ("Reply-Text", "+OK\n"),
                  ("Socket-Mode", "async" if is_async else "static"),
                  ("Control", "full" if full else "single-channel")]
        return items

    def show_calls_row(self) -> dict[str, str]:
        row = {k: "" for k in TEMPLATES["show_calls_row"]}
        row.update({
            "uuid": self.uuid, "direction": self.direction,
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_us / 1e6)),
            "created_epoch": str(self.created_us // 1_000_000), "name": self.name, "state": self.state,
            "cid_name": self.caller["caller_id"], "cid_num": self.caller["caller_id"],
            "ip_addr": self.caller["network_addr"], "dest": self.caller["destination"],
            "callstate": "ACTIVE" if self.answered else self.call_state, "hostname": self.core.hostname,
        })
        return row

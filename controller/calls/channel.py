"""The call as FreeSWITCH describes it in the outbound socket's ``connect`` reply (CHANNEL_DATA).

Values arrive URL-encoded on the wire; the ESL layer decodes them. :func:`ChannelInfo.from_headers`
takes the decoded header mapping (``decoded=False`` decodes raw values itself, for callers that
read wire bytes directly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

ROLE_HEADER = "variable_sip_h_X-Kallglot-Role"


class ChannelDataError(ValueError):
    """The connect reply lacks something every call must have (names the header)."""


@dataclass(frozen=True)
class ChannelInfo:
    call_uuid: str
    destination: str  # sip_req_user, else Caller-Destination-Number
    direction: str  # inbound (caller dialled us) | outbound (we originated it)
    # udp | tcp | tls (anything else, e.g. wss, is never in an allowed list); None on outbound legs.
    transport: str | None
    network_ip: str | None
    auth_username: str | None  # set only when the INVITE passed digest auth
    org_id: str | None  # kallglot_org_id from the directory user
    role_header: str | None  # X-Kallglot-Role as sent, unvalidated
    caller: str | None
    offered_codecs: tuple[str, ...] = ()
    # Set on legs the controller originated itself (``originate {kallglot_session_id=…}``).
    originated_session_id: str | None = None
    originated_leg_id: str | None = None
    originated_role: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, decoded: bool = True) -> ChannelInfo:
        h: Mapping[str, str] = headers if decoded else {k: unquote(v) for k, v in headers.items()}

        def get(*names: str) -> str | None:
            for name in names:
                value = h.get(name)
                if value not in (None, "", "_undef_"):
                    return value
            return None

        call_uuid = get("Unique-ID", "Channel-Unique-ID", "variable_uuid", "Caller-Unique-ID")
        if call_uuid is None:
            raise ChannelDataError("connect reply has no Unique-ID")
        destination = get("variable_sip_req_user", "Caller-Destination-Number", "Channel-Destination-Number")
        transport = get("variable_sip_via_protocol")
        transport = transport.lower() if transport else None
        authorized = get("variable_sip_authorized") == "true"
        return cls(
            call_uuid=call_uuid,
            destination=destination or "",
            direction=(get("Call-Direction", "Caller-Direction", "variable_direction") or "inbound").lower(),
            transport=transport,
            network_ip=get("variable_sip_network_ip", "Caller-Network-Addr"),
            auth_username=get("variable_sip_auth_username") if authorized else None,
            org_id=get("variable_kallglot_org_id"),
            role_header=get(ROLE_HEADER),
            caller=get("Caller-Caller-ID-Number", "variable_sip_from_user"),
            offered_codecs=_offered_codecs(get("variable_switch_r_sdp")),
            originated_session_id=get("variable_kallglot_session_id"),
            originated_leg_id=get("variable_kallglot_leg_id"),
            originated_role=get("variable_kallglot_role"),
            headers=dict(h),
        )


def _offered_codecs(sdp: str | None) -> tuple[str, ...]:
    """Codec names of the first audio m-line of the remote SDP, in offer order (upper case)."""
    if not sdp:
        return ()
    payloads: list[str] = []
    names: dict[str, str] = {}
    in_audio = False
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            if payloads:  # only the first audio section
                break
            parts = line[2:].split()
            in_audio = bool(parts) and parts[0] == "audio"
            if in_audio:
                payloads = parts[3:]
        elif in_audio and line.startswith("a=rtpmap:"):
            pt, _, rest = line[len("a=rtpmap:") :].partition(" ")
            names[pt] = rest.split("/")[0].upper()
    static = {"0": "PCMU", "8": "PCMA", "9": "G722"}
    out: list[str] = []
    for pt in payloads:
        name = names.get(pt) or static.get(pt)
        if name and name != "TELEPHONE-EVENT" and name not in out:
            out.append(name)
    return tuple(out)

"""sofia's CUSTOM auth events, as a real FreeSWITCH 1.10.12 fires them for an INVITE
(captured: tests/fixtures/freeswitch-1.10.12/esl/inbound-events-sofia-auth.log; source:
sofia_reg.c ``sofia_reg_handle_register_token``).

``sofia::pre_register`` comes with every digest challenge (the 407), ``sofia::register_failure``
with every 403 that refuses the credentials (wrong password, unknown user, outside ``auth-acl``).
Header names and order are the captured ones, ``profile-name`` twice in the failure included.
"""

from __future__ import annotations

from tests.fsdouble.callsim import CallSpec
from tests.fsdouble.channel import Core

PRE_REGISTER = "sofia::pre_register"
REGISTER_FAILURE = "sofia::register_failure"
USER_AGENT = "kallglot-fsdouble-caller"  # what the double's callers would send as User-Agent
# Where sofia_reg.c fires each event (Event-Calling-* as captured).
_CALLING = {PRE_REGISTER: "1810", REGISTER_FAILURE: "1792"}


def _core_items(core: Core, subclass: str) -> list[tuple[str, str]]:
    items = core.core_headers("CUSTOM", subclass)
    calling = {"Event-Calling-File": "sofia_reg.c",
               "Event-Calling-Function": "sofia_reg_handle_register_token",
               "Event-Calling-Line-Number": _CALLING[subclass]}
    return [(k, calling.get(k, v)) for k, v in items]


def _from_user(spec: CallSpec) -> str:
    return spec.caller_id or spec.user or "anonymous"  # the From user (as _new_channel names it)


def pre_register(core: Core, profile: str, spec: CallSpec, call_id: str, realm: str) -> list[tuple[str, str]]:
    """The challenge's event: ``from-user``/``from-host`` are the dialled user and host (To) and
    ``to-user``/``to-host`` the caller's From — swapped, as sofia_reg.c adds them."""
    host = spec.domain or realm
    status = {"tls": "Registered(TLS)", "tcp": "Registered(TCP)"}.get(spec.transport, "Registered(UDP)")
    contact = f'"" <sip:{_from_user(spec)}@{spec.source_ip}:{spec.source_port};transport={spec.transport}>'
    return [
        *_core_items(core, PRE_REGISTER),
        ("profile-name", profile), ("from-user", spec.destination), ("from-host", host),
        ("contact", contact), ("call-id", call_id), ("rpid", "unknown"), ("status", status),
        ("expires", "300"), ("to-user", _from_user(spec)), ("to-host", host),
        ("network-ip", spec.source_ip), ("network-port", str(spec.source_port)), ("user-agent", USER_AGENT),
    ]


def register_failure(core: Core, profile: str, spec: CallSpec, realm: str) -> list[tuple[str, str]]:
    """The 403's event: ``to-user`` is the dialled user; no header names the digest username."""
    return [
        *_core_items(core, REGISTER_FAILURE),
        ("profile-name", profile), ("to-user", spec.destination), ("to-host", spec.domain or realm),
        ("network-ip", spec.source_ip), ("user-agent", USER_AGENT), ("profile-name", profile),
        ("network-port", str(spec.source_port)), ("registration-type", "INVITE"),
    ]

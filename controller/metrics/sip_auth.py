"""Digest challenges and failures as FreeSWITCH saw them, from sofia's CUSTOM events.

Checked on a real FreeSWITCH 1.10.12 (tests/fixtures/freeswitch-1.10.12/esl/inbound-events-sofia-auth.log,
sofia_reg.c ``sofia_reg_handle_register_token``):

* ``sofia::pre_register`` fires when sofia sends a challenge (407 to an INVITE). It carries no
  registration type; ``from-user`` is the dialled user (To) and ``to-user`` the caller's From user
  (swapped, as in the source). The edge's profile sets ``disable-register``, so sofia-sip answers a
  REGISTER 405 before this code runs: every challenge it sends is for an INVITE.
* ``sofia::register_failure`` fires when sofia refuses the credentials with 403 (wrong password,
  unknown user, caller outside the user's ``auth-acl``), with ``registration-type: INVITE|REGISTER``;
  its ``to-user`` is the dialled user (To), and no header names the digest username.

So the organization of a failure is the one whose SIP username is the From user of the challenge
sent to the same caller address (network-ip:network-port) shortly before, else the one owning the
dialled session or managed number, else "unknown". Usernames never become label values.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter

from controller.calls.admission import normalize_number
from controller.ids import has_prefix
from controller.metrics.registry import REGISTRY, UNKNOWN_ORG
from controller.store import DatabaseError, Store

log = logging.getLogger("kallglot.metrics.sip_auth")

PRE_REGISTER = "sofia::pre_register"
REGISTER_FAILURE = "sofia::register_failure"
SIP_AUTH_EVENTS = (PRE_REGISTER, REGISTER_FAILURE)
METHODS = frozenset({"INVITE", "REGISTER"})
# The caller must answer a challenge within the nonce's life (the profile's nonce-ttl, 60 s).
CHALLENGE_MEMORY_S = 60.0
CHALLENGE_MEMORY_MAX = 4096

SIP_AUTH_CHALLENGES = Counter(
    "kallglot_sip_auth_challenges", "Digest challenges FreeSWITCH sent (sofia::pre_register)",
    ["method"], registry=REGISTRY)
SIP_AUTH_FAILURES = Counter(
    "kallglot_sip_auth_failures",
    "Requests FreeSWITCH refused with 403 after a digest challenge (sofia::register_failure)",
    ["method", "org"], registry=REGISTRY)


class SofiaEvent(Protocol):
    """What is read of an ESL event (``controller.esl.protocol.Event``)."""

    @property
    def subclass(self) -> str: ...
    def get(self, name: str, default: str = "") -> str: ...


@dataclass
class SipAuthWatcher:
    """Counts sofia's auth events; ``on_event`` is the inbound ESL connection's handler."""

    store: Store
    clock: Callable[[], float] = time.monotonic
    # (network-ip, network-port) -> (when, the caller's From user) of recent challenges.
    _challenged: OrderedDict[tuple[str, str], tuple[float, str]] = field(default_factory=OrderedDict)

    def on_event(self, event: SofiaEvent) -> None:
        if event.subclass == PRE_REGISTER:
            self._on_challenge(event)
        elif event.subclass == REGISTER_FAILURE:
            self._on_failure(event)

    def _on_challenge(self, event: SofiaEvent) -> None:
        SIP_AUTH_CHALLENGES.labels(_method(event.get("registration-type") or "INVITE")).inc()
        key = (event.get("network-ip"), event.get("network-port"))
        self._challenged[key] = (self.clock(), event.get("to-user"))
        self._challenged.move_to_end(key)
        while len(self._challenged) > CHALLENGE_MEMORY_MAX:
            self._challenged.popitem(last=False)

    def _on_failure(self, event: SofiaEvent) -> None:
        key = (event.get("network-ip"), event.get("network-port"))
        seen = self._challenged.pop(key, None)
        from_user = seen[1] if seen and self.clock() - seen[0] <= CHALLENGE_MEMORY_S else ""
        org = self._org_of(from_user, event.get("to-user"))
        SIP_AUTH_FAILURES.labels(_method(event.get("registration-type")), org).inc()

    def _org_of(self, from_user: str, dialled: str) -> str:
        try:
            if from_user:
                row = self.store.query_one("SELECT org_id FROM sip_settings WHERE username = ?", (from_user,))
                if row is not None:
                    return str(row["org_id"])
            if has_prefix(dialled, "sess"):
                row = self.store.query_one("SELECT org_id FROM sessions WHERE id = ?", (dialled,))
                return str(row["org_id"]) if row is not None else UNKNOWN_ORG
            number = normalize_number(dialled)
            if number is not None:
                row = self.store.query_one(
                    "SELECT org_id FROM phone_numbers WHERE number = ? AND status = 'active'", (number,))
                if row is not None:
                    return str(row["org_id"])
        except DatabaseError as exc:  # a busy store must not stop the event handler
            log.warning("sip auth failure: organization lookup failed: %s", exc)
        return UNKNOWN_ORG


def _method(value: str) -> str:
    value = value.upper()
    return value if value in METHODS else "other"

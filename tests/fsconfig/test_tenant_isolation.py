"""One tenant's settings never disturb another tenant's calls, and the codec order is the
organization's: the rendered tree on the FreeSWITCH double, with a minimal controller that
answers like ours (``absolute_codec_string`` = the organization's ``allowed_codecs``).

Seen on a real FreeSWITCH 1.10.12: organization A's first provider address made the reload
restart the shared profile, and every live call (B's too) ended; and with ``generous`` codec
negotiation an organization allowing ["PCMA", "PCMU"] was answered with the caller's PCMU."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from controller.esl.outbound import OutboundCall
from controller.fsconfig.service import FsConfigService, ReloadOutcome
from controller.settings import Settings
from controller.store import Store
from tests.esl.minictl import MiniController
from tests.fsconfig.helpers import add_connection, add_number, add_org, update_connection, update_sip
from tests.fsconfig.test_reload import in_thread
from tests.fsdouble import CallOutcome, FreeSwitchDouble

A_PASSWORD, B_PASSWORD = "pw-org-a-1", "pw-org-b-2"
SIP = {"host": "trunk.example.net", "username": "acme", "password": "gw-pw-1"}
PER_CALL_ONLY = {"allowed_transports", "require_tls", "transports back"}


@dataclass
class Edge:
    fs: FreeSwitchDouble
    ctl: MiniController
    store: Store
    settings: Settings
    codecs: dict[str, str]  # org id → absolute_codec_string the controller sets

    def reload(self, **install: object) -> ReloadOutcome:
        s = replace(self.settings, esl_host="127.0.0.1", esl_port=self.fs.esl_port, **install)  # type: ignore[arg-type]
        return in_thread(FsConfigService(self.store, s).reload)

    def call(self, user: str, password: str, **spec: object) -> CallOutcome:
        return self.fs.place_call("sess_01TENANT", user=user, password=password, **spec)  # type: ignore[arg-type]


def _answer_and_hold(codecs: dict[str, str]) -> Callable[[OutboundCall], None]:
    def handle(call: OutboundCall) -> None:
        call.myevents()
        codec_string = codecs.get(call.variable("kallglot_org_id"))
        if codec_string:
            call.set_var("absolute_codec_string", codec_string)
        call.execute_wait("answer")
        call.wait_hangup(120)

    return handle


@pytest.fixture
def edge(store: Store, settings: Settings, conf_dir: Path) -> Iterator[Edge]:
    codecs: dict[str, str] = {}
    ctl = MiniController(_answer_and_hold(codecs))
    FsConfigService(store, settings).render_live()  # FreeSWITCH starts from this tree
    # A short start delay keeps the test quick; the window itself is modelled either way.
    fs = FreeSwitchDouble(conf_dir / "rendered", controller_addr=f"127.0.0.1:{ctl.port}", profile_uptime=60,
                          profile_start_delay=0.3).start()
    try:
        yield Edge(fs, ctl, store, settings, codecs)
    finally:
        fs.stop()
        ctl.close()


ALL_CODECS = ["OPUS", "G722", "PCMU", "PCMA"]


def _orgs(edge: Edge, a_codecs: list[str] = ALL_CODECS, b_codecs: list[str] = ALL_CODECS) -> tuple[str, str]:
    a = add_org(edge.store, username="org-a", password=A_PASSWORD, codecs=a_codecs)
    b = add_org(edge.store, username="org-b", password=B_PASSWORD, codecs=b_codecs)
    edge.codecs[a], edge.codecs[b] = ",".join(a_codecs), ",".join(b_codecs)
    edge.reload()
    return a, b


def _tenant_changes(edge: Edge, a: str) -> list[tuple[str, Callable[[], object]]]:
    """Every kind of change organization A can make, in an order where each one applies."""
    store = edge.store
    state: dict[str, str] = {}

    def add_trunk() -> None:
        state["trunk"] = add_connection(store, a, inbound=["198.51.100.0/24"])

    def add_gateway() -> None:
        state["gateway"] = add_connection(store, a, sip=SIP)

    def add_managed_number() -> None:
        state["number"] = add_number(store, a, state["gateway"], "+4930901800")

    def trunk(**values: object) -> Callable[[], None]:
        return lambda: update_connection(store, state["trunk"], **values)

    def gateway(**values: object) -> Callable[[], None]:
        return lambda: update_connection(store, state["gateway"], **values)

    def release_number() -> None:
        with store.transaction() as conn:
            conn.execute("UPDATE phone_numbers SET status = 'released' WHERE id = ?", (state["number"],))

    return [
        ("allowed_transports", lambda: update_sip(store, a, allowed_transports=["tls"])),
        ("require_tls", lambda: update_sip(store, a, require_tls=1)),
        ("transports back", lambda: update_sip(store, a, allowed_transports=["udp"], require_tls=0)),
        ("ip_allowlist", lambda: update_sip(store, a, ip_allowlist=["203.0.113.0/24"])),
        ("ip_allowlist cleared", lambda: update_sip(store, a, ip_allowlist=[])),
        ("codecs", lambda: update_sip(store, a, allowed_codecs=["PCMA"])),
        ("credentials", lambda: update_sip(store, a, a1_hash="b" * 32)),
        ("SIP disabled", lambda: update_sip(store, a, enabled=0)),
        ("SIP enabled", lambda: update_sip(store, a, enabled=1)),
        ("provider inbound addresses added", add_trunk),
        ("provider inbound addresses changed", trunk(inbound_addresses=["198.51.100.0/24", "192.0.2.9"])),
        ("provider inbound addresses removed", trunk(status="disabled")),
        ("gateway added", add_gateway),
        ("gateway changed", gateway(sip=SIP | {"password": "gw-pw-2"})),
        ("managed number added", add_managed_number),
        ("managed number released", release_number),
        ("gateway removed", gateway(status="disabled")),
    ]


def test_a_live_call_of_b_survives_every_settings_change_of_a(edge: Edge) -> None:
    # B allows PCMU only, so that A's codec change alters the profile's codec list (a rescan).
    a, _b = _orgs(edge, a_codecs=["OPUS", "PCMU"], b_codecs=["PCMU"])
    b_call = edge.call("org-b", B_PASSWORD)
    assert b_call.code == 200, (b_call.code, b_call.reason)
    for what, change in _tenant_changes(edge, a):
        change()
        outcome = edge.reload()
        sent = [c.command for c in outcome.commands]
        # Transport rules are enforced per call by the controller (403): nothing to render.
        assert bool(outcome.files_changed) == (what not in PER_CALL_ONLY), (what, outcome.files_changed)
        assert not outcome.restarted and outcome.profile_ready_ms is None, (what, sent)
        assert not any(c.endswith((" restart", " stop", " start")) for c in sent), (what, sent)
        assert not b_call.ended and not edge.fs.calls[b_call.uuid].hung_up, what  # type: ignore[index]
    # Still a working call: B hangs up normally.
    b_call.hangup()
    assert b_call.wait_ended(5) and not b_call.bye_from_switch


def test_an_install_wide_change_restarts_and_the_reload_waits_until_calls_are_taken(edge: Edge) -> None:
    # The control case: the double does end every call of a restarted profile, as sofia does
    # (switch_core_session_hupall_matching_var("sofia_profile_name", …, MANAGER_REQUEST)).
    _orgs(edge)
    b_call = edge.call("org-b", B_PASSWORD)
    assert b_call.code == 200
    started = time.monotonic()
    outcome = edge.reload(sip_transports="udp,tcp")
    assert outcome.restarted and [c.command for c in outcome.commands] == ["sofia profile kallglot restart"]
    assert time.monotonic() - started >= 0.3 and outcome.profile_ready_ms is not None
    assert b_call.wait_ended(5) and b_call.bye_from_switch and b_call.hangup_cause == "MANAGER_REQUEST"
    # The reload returned once the profile served: the very next INVITE is taken, not 503.
    again = edge.call("org-b", B_PASSWORD, transport="tcp")
    assert again.code == 200, (again.code, again.reason)
    again.hangup()
    refused = edge.call("org-b", B_PASSWORD, transport="tls")
    assert (refused.code, refused.transport_error) == (None, "connection refused")  # no longer bound


def test_the_organizations_codec_order_wins_over_the_callers(edge: Edge) -> None:
    _orgs(edge, a_codecs=["PCMA", "PCMU"])
    out = edge.call("org-a", A_PASSWORD, codecs=("PCMU", "PCMA"))
    assert (out.code, out.codec) == (200, "PCMA")
    out.hangup()
    # B allows everything in OPUS, G722, PCMU, PCMA order: its own first match, not the caller's.
    out = edge.call("org-b", B_PASSWORD, codecs=("PCMA", "G722"))
    assert (out.code, out.codec) == (200, "G722")
    out.hangup()


def test_nothing_of_the_organizations_codecs_offered_is_488(edge: Edge) -> None:
    a, _b = _orgs(edge)
    update_sip(edge.store, a, allowed_codecs=["PCMU"])
    edge.codecs[a] = "PCMU"
    edge.reload()
    out = edge.call("org-a", A_PASSWORD, codecs=("PCMA",))
    assert (out.code, out.reason) == (488, "Not Acceptable Here")
    assert out.hangup_cause == "INCOMPATIBLE_DESTINATION"

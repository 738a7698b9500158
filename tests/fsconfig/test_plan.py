"""Diff → ESL commands: a pure function of the old and the new rendered trees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from controller.fsconfig.model import Gateway, ManagedNumber, OrgSip
from controller.fsconfig.plan import plan_reload, snapshot
from controller.fsconfig.render import RenderedFile, render_files
from controller.fsconfig.source import build_config_input
from tests.fsconfig.helpers import make_settings

SETTINGS = make_settings(Path("/nonexistent"))
ORG = OrgSip("org_A1", "alice", "0" * 32, (), ("tls", "tcp", "udp"), ("OPUS", "PCMU"))
GW = Gateway("pcon_G1", "trunk.example.net", "acme", "pw-1", False)
GW2 = Gateway("pcon_G2", "trunk2.example.net", "acme2", "pw-2", True)
NUM = ManagedNumber("pn_N1", "+4930123456")


def files(
    orgs: tuple[OrgSip, ...] = (ORG,),
    gateways: tuple[Gateway, ...] = (GW,),
    cidrs: tuple[str, ...] = ("192.0.2.0/24",),
    numbers: tuple[ManagedNumber, ...] = (NUM,),
    **settings: object,
) -> dict[str, RenderedFile]:
    s = replace(SETTINGS, **settings) if settings else SETTINGS  # type: ignore[arg-type]
    return render_files(build_config_input(s, list(orgs), list(gateways), list(cidrs), list(numbers)))


def commands(old: dict[str, RenderedFile], new: dict[str, RenderedFile]) -> tuple[str, ...]:
    return plan_reload(snapshot(old), snapshot(new)).commands


def test_no_change_sends_nothing() -> None:
    plan = plan_reload(snapshot(files()), snapshot(files()))
    assert plan.files_changed == () and plan.commands == () and not plan.restart


def test_first_render_rebuilds_the_profile_whatever_its_state() -> None:
    # "restart": mod_sofia's "start" of a profile that already runs is only a rescan; a profile
    # that does not run answers "Invalid Profile" to restart and apply_commands starts it.
    plan = plan_reload(snapshot({}), snapshot(files()))
    assert plan.commands == ("reloadxml", "reloadacl", "sofia profile kallglot restart") and plan.restart


def test_directory_change_is_reloadxml_only() -> None:
    new = files(orgs=(replace(ORG, a1_hash="1" * 32),))
    plan = plan_reload(snapshot(files()), snapshot(new))
    assert plan.commands == ("reloadxml",)
    assert plan.files_changed == ("directory.xml",)


def test_dialplan_change_is_reloadxml_only() -> None:
    assert commands(files(), files(numbers=())) == ("reloadxml",)


def test_acl_change_is_reloadxml_then_reloadacl() -> None:
    new = files(orgs=(replace(ORG, ip_allowlist=("10.0.0.0/8",)),))
    assert commands(files(), new) == ("reloadxml", "reloadacl")
    assert commands(files(), files(cidrs=("192.0.2.0/24", "198.51.100.0/24"))) == ("reloadxml", "reloadacl")


def test_gateway_added_changed_removed() -> None:
    assert commands(files(), files(gateways=(GW, GW2))) == ("sofia profile kallglot rescan",)
    assert commands(files(gateways=(GW, GW2)), files()) == ("sofia profile kallglot killgw pcon_G2",)
    changed = files(gateways=(replace(GW, proxy="other.example.net"),))
    assert commands(files(), changed) == (
        "sofia profile kallglot killgw pcon_G1", "sofia profile kallglot rescan",
    )


def test_gateway_password_change_is_detected_without_the_password_in_the_plan() -> None:
    new = files(gateways=(replace(GW, password="pw-CHANGED"),))
    plan = plan_reload(snapshot(files()), snapshot(new))
    assert plan.commands == ("sofia profile kallglot killgw pcon_G1", "sofia profile kallglot rescan")
    assert plan.files_changed == ("secrets/gateway_passwords.xml",)
    assert "pw-CHANGED" not in repr(plan) and "pw-CHANGED" not in repr(snapshot(new))


def test_codec_change_is_rescan() -> None:
    new = files(orgs=(replace(ORG, allowed_codecs=("PCMA",)),))
    assert commands(files(), new) == ("sofia profile kallglot rescan",)


def test_a_tenants_transport_change_restarts_nothing() -> None:
    # Bindings come from KALLGLOT_SIP_TRANSPORTS only: an organization going TLS-only changes
    # no file at all (its rule is enforced per call by the controller, 403).
    tls_only = files(orgs=(replace(ORG, allowed_transports=("tls",)),), gateways=(), cidrs=())
    both = files(gateways=(), cidrs=())
    plan = plan_reload(snapshot(both), snapshot(tls_only))
    assert plan.commands == () and not plan.restart


def test_install_transport_or_tls_change_restarts() -> None:
    plan = plan_reload(snapshot(files()), snapshot(files(sip_transports="tls")))
    assert plan.commands == ("sofia profile kallglot restart",) and plan.restart
    plan = plan_reload(snapshot(files()), snapshot(files(sip_transports="udp,tls")))
    assert plan.commands == ("sofia profile kallglot restart",) and plan.restart
    cert = files(tls_cert_dir="/etc/other-tls")
    plan = plan_reload(snapshot(files()), snapshot(cert))
    assert plan.commands == ("sofia profile kallglot restart",)


def test_restart_replaces_killgw_and_rescan_but_keeps_xml_and_acl_first() -> None:
    new = files(orgs=(replace(ORG, ip_allowlist=("10.0.0.0/8",)),), gateways=(), cidrs=(), numbers=(),
                sip_transports="tls")
    assert commands(files(), new) == ("reloadxml", "reloadacl", "sofia profile kallglot restart")


def test_unreadable_old_tree_reloads_everything() -> None:
    old = files()
    old["directory.xml"] = RenderedFile("<include><broken", False)
    assert commands(old, files()) == ("reloadxml", "reloadacl", "sofia profile kallglot restart")


def test_profile_rename_stops_the_old_one() -> None:
    assert commands(files(), files(sip_profile="edge")) == (
        "sofia profile kallglot stop", "sofia profile edge start",
    )


def test_provider_addresses_coming_and_going_only_reload_the_acl() -> None:
    # apply-inbound-acl always names kallglot_providers, which is always rendered (empty when no
    # connection has inbound addresses): the first address and the last one are list changes.
    none = files(cidrs=(), gateways=())
    one = files(cidrs=("192.0.2.0/24",), gateways=())
    two = files(cidrs=("192.0.2.0/24", "198.51.100.0/24"), gateways=())
    assert commands(none, one) == ("reloadxml", "reloadacl")
    assert commands(one, two) == ("reloadxml", "reloadacl")
    assert commands(two, none) == ("reloadxml", "reloadacl")
    assert plan_reload(snapshot(none), snapshot(one)).files_changed == ("acl.xml",)


def test_apply_inbound_acl_appearing_in_an_older_tree_is_a_rescan() -> None:
    # A tree rendered before apply-inbound-acl was always set: a rescan re-reads the profile's
    # ACL names (sofia.c config_sofia resets acl_count on a running profile), no restart.
    old = files(cidrs=())
    old["sip_profile.xml"] = RenderedFile(old["sip_profile.xml"].text.replace(
        '<param name="apply-inbound-acl" value="kallglot_providers"/>', ""), False)
    plan = plan_reload(snapshot(old), snapshot(files(cidrs=())))
    assert plan.commands == ("sofia profile kallglot rescan",) and not plan.restart


def test_a_forced_profile_restart_replaces_the_plans_sofia_commands() -> None:
    from controller.fsconfig.plan import ReloadPlan, with_profile_restart

    sofia = "sofia profile kallglot"
    plan = ReloadPlan(("gateways.xml", "dialplan.xml"),
                      ("reloadxml", f"{sofia} killgw gw1", f"{sofia} rescan"), False)
    forced = with_profile_restart(plan, "kallglot")
    assert forced.commands == ("reloadxml", "sofia profile kallglot restart") and forced.restart
    assert with_profile_restart(ReloadPlan((), (), False), "kallglot").commands == (f"{sofia} restart",)
    assert with_profile_restart(forced, "kallglot") is forced

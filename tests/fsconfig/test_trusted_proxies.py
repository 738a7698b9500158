"""KALLGLOT_SIP_TRUSTED_PROXIES on the FreeSWITCH side: apply-proxy-acl and its ACL list, reloaded
with reloadacl + rescan (never a restart), and a bad value failing the render naming it."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from controller.fsconfig.model import ConfigInputError
from controller.fsconfig.plan import plan_reload, snapshot
from controller.fsconfig.service import render_validated
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.helpers import add_org


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 -- our own test output


def _profile_params(text: str) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in _parse(text).iter("param")}


def test_trusted_proxies_render_apply_proxy_acl(store: Store, settings: Settings) -> None:
    add_org(store, allowlist=["203.0.113.0/24"])
    front = dataclasses.replace(settings, sip_trusted_proxies="10.0.0.5, 10.0.1.0/28,fd00::5")
    _cfg, files = render_validated(store, front)
    assert _profile_params(files["sip_profile.xml"].text)["apply-proxy-acl"] == "kallglot_proxies"
    lists = {lst.get("name"): lst for lst in _parse(files["acl.xml"].text).findall("list")}
    proxies = lists["kallglot_proxies"]
    assert proxies.get("default") == "deny"
    assert [n.get("cidr") for n in proxies.findall("node")] == ["10.0.0.5/32", "10.0.1.0/28", "fd00::5/128"]


def test_without_trusted_proxies_nothing_is_rendered(store: Store, settings: Settings) -> None:
    add_org(store)
    _cfg, files = render_validated(store, settings)
    assert "apply-proxy-acl" not in _profile_params(files["sip_profile.xml"].text)
    assert "kallglot_proxies" not in files["acl.xml"].text


def test_turning_it_on_is_reloadacl_and_rescan(store: Store, settings: Settings) -> None:
    add_org(store)
    _cfg, before = render_validated(store, settings)
    _cfg, after = render_validated(store, dataclasses.replace(settings, sip_trusted_proxies="10.0.0.5"))
    plan = plan_reload(snapshot(before), snapshot(after))
    assert plan.commands == ("reloadxml", "reloadacl", "sofia profile kallglot rescan")
    assert not plan.restart


@pytest.mark.parametrize("raw", ["10.0.0.5,kamailio.local", '10.0.0.5"/><param name="x', "10.0.0.0/33"])
def test_bad_value_fails_the_render_naming_it(store: Store, settings: Settings, raw: str) -> None:
    with pytest.raises(ConfigInputError) as err:
        render_validated(store, dataclasses.replace(settings, sip_trusted_proxies=raw))
    assert err.value.field.startswith("KALLGLOT_SIP_TRUSTED_PROXIES[")

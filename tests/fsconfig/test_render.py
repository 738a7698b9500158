"""Each rendered file, parsed (never string-compared), and the document FreeSWITCH assembles."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from controller.fsconfig.model import ConfigInputError
from controller.fsconfig.service import FsConfigService, render_validated
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.fs_preprocessor import Preprocessor
from tests.fsconfig.helpers import SIP_DOMAIN, a1, add_connection, add_number, add_org


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 -- our own test output


def params(el: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in el.iter("param")}


def test_directory_has_one_user_per_enabled_org_with_credentials(store: Store, settings: Settings) -> None:
    plain = add_org(store, username="alice", password="pw-alice")
    acl = add_org(store, username="bob", password="pw-bob", allowlist=["198.51.100.7", "2001:db8::/32"])
    add_org(store, username="off", enabled=False)
    add_org(store, username="nocreds", password=None)
    _cfg, files = render_validated(store, settings)
    root = parse(files["directory.xml"].text)
    (domain,) = root.findall("domain")
    assert domain.get("name") == SIP_DOMAIN
    users = {u.get("id"): u for u in domain.iter("user")}
    assert set(users) == {"alice", "bob"}
    assert params(users["alice"]) == {"a1-hash": a1("alice", "pw-alice")}
    assert params(users["bob"]) == {"a1-hash": a1("bob", "pw-bob"), "auth-acl": f"kallglot_{acl}"}
    variables = {v.get("name"): v.get("value") for v in users["alice"].iter("variable")}
    assert variables == {"kallglot_org_id": plain, "user_context": "kallglot"}


def test_acl_lists_default_deny_one_node_per_cidr(store: Store, settings: Settings) -> None:
    org = add_org(store, allowlist=["198.51.100.7", "203.0.113.0/24", "2001:db8::1/64"])
    add_org(store)  # no allowlist → no list
    add_connection(store, org, inbound=["54.172.60.0/30", "54.244.51.0/30"])
    add_connection(store, org, inbound=["8.8.8.8"], status="disabled")
    _cfg, files = render_validated(store, settings)
    lists = {lst.get("name"): lst for lst in parse(files["acl.xml"].text).findall("list")}
    assert set(lists) == {f"kallglot_{org}", "kallglot_providers"}
    for lst in lists.values():
        assert lst.get("default") == "deny"
        assert all(n.get("type") == "allow" for n in lst.findall("node"))
    assert [n.get("cidr") for n in lists[f"kallglot_{org}"].findall("node")] == [
        "198.51.100.7/32", "203.0.113.0/24", "2001:db8::/64",
    ]
    assert [n.get("cidr") for n in lists["kallglot_providers"].findall("node")] == [
        "54.172.60.0/30", "54.244.51.0/30",
    ]


def test_profile_binds_the_install_transports_whatever_the_tenants_allow(
    store: Store, settings: Settings
) -> None:
    # Tenants allowing TLS only must not narrow what the shared profile binds: a change of the
    # bindings needs a profile restart, which ends every organization's calls.
    add_org(store, transports=["tls"], codecs=["PCMA", "OPUS"])
    add_org(store, transports=["tls"], codecs=["G722"])
    cfg, files = render_validated(store, settings)
    (profile,) = parse(files["sip_profile.xml"].text).findall("profile")
    p = params(profile.find("settings"))  # type: ignore[arg-type]
    assert profile.get("name") == "kallglot"
    assert cfg.transports == ("tls", "tcp", "udp")  # KALLGLOT_SIP_TRANSPORTS' default
    assert p["tls"] == "true" and p["tls-only"] == "false" and "bind-params" not in p
    # mod_sofia's config_sofia() knows no "tlsv1.3" token; anything it does not know is dropped.
    assert p["tls-version"] == "tlsv1.2"
    assert p["tls-cert-dir"] == settings.tls_cert_dir
    assert p["auth-calls"] == "true" and p["inbound-late-negotiation"] == "true"
    assert p["challenge-realm"] == SIP_DOMAIN
    assert p["inbound-codec-prefs"] == "OPUS,G722,PCMA"  # union, in the stable order
    # The organization's order wins over the caller's (with absolute_codec_string per call).
    assert p["inbound-codec-negotiation"] == "greedy"
    # Always set, even with no provider address (the list then allows nobody).
    assert p["apply-inbound-acl"] == "kallglot_providers"


@pytest.mark.parametrize(("transports", "expected"), [
    ("tls", {"tls": "true", "tls-only": "true"}),
    ("udp", {"tls": "false", "tls-only": "false", "bind-params": "transport=udp"}),
    ("TLS, udp", {"tls": "true", "tls-only": "false", "bind-params": "transport=udp"}),
    ("tcp,udp", {"tls": "false", "tls-only": "false"}),
])
def test_install_transports_setting_decides_the_bindings(
    store: Store, settings: Settings, transports: str, expected: dict[str, str]
) -> None:
    from dataclasses import replace

    org = add_org(store, transports=["udp"])
    add_connection(store, org, inbound=["192.0.2.0/24"])  # trunks no longer add UDP/TCP either
    cfg, files = render_validated(store, replace(settings, sip_transports=transports))
    p = params(parse(files["sip_profile.xml"].text).find("profile/settings"))  # type: ignore[arg-type]
    assert {k: p[k] for k in ("tls", "tls-only", "bind-params") if k in p} == expected
    assert set(cfg.transports) == {t.strip().lower() for t in transports.split(",")}


@pytest.mark.parametrize("bad", ["", "udp,sctp", " , ", "ws"])
def test_bad_install_transports_fail_the_render_naming_the_variable(
    store: Store, settings: Settings, bad: str
) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigInputError) as err:
        render_validated(store, replace(settings, sip_transports=bad))
    assert err.value.field == "KALLGLOT_SIP_TRANSPORTS" and "udp, tcp, tls" in err.value.reason


def test_gateways_reference_secrets_and_dialplan_routes(store: Store, settings: Settings) -> None:
    org = add_org(store)
    gw = add_connection(store, org, sip={"host": "trunk.example.net:5080", "username": "acme",
                                         "password": "gw-Secret-1", "register": True})
    add_connection(store, org, sip=None)  # no gateway without sip settings
    add_connection(store, org, sip={"host": "x.example", "username": "u", "password": "p"}, status="disabled")
    add_number(store, org, gw, "+4930123456")
    add_number(store, org, gw, "+14155550100", status="released")
    _cfg, files = render_validated(store, settings)
    gateways = {g.get("name"): params(g) for g in parse(files["gateways.xml"].text).findall("gateway")}
    assert gateways == {gw: {
        "proxy": "trunk.example.net:5080", "realm": "trunk.example.net", "username": "acme",
        "password": f"$${{kallglot_gw_{gw}_password}}", "register": "true", "expire-seconds": "600",
        "retry-seconds": "30", "context": "kallglot", "caller-id-in-from": "true",
        # sofia.c: a call to our registration (gw+<name>) otherwise gets the gateway's user name
        # as destination_number, which no number extension matches.
        "extension": "auto_to_user",
    }}
    assert files["secrets/gateway_passwords.xml"].secret
    context = parse(files["dialplan.xml"].text).find("context")
    assert context is not None and context.get("name") == "kallglot"
    routes = [
        (c.get("field"), c.get("expression"),
         [(a.get("application"), a.get("data")) for a in c.iter("action")])
        for c in context.iter("condition")
    ]
    # After the socket: when it closes with the call still up, an admitted call parks
    # (kallglot_after_socket) until a controller adopts it (kallglot_attach).
    socket = [("socket", "127.0.0.1:8084 async full"), ("transfer", "kallglot_after_socket XML kallglot")]
    leg = ("${kallglot_leg_id}", "^leg_[0-9A-Za-z]+$")
    assert routes == [
        ("destination_number", "^kallglot_after_socket$", []),
        (*leg, [("park", None)]),
        ("destination_number", "^kallglot_attach$", []),
        (*leg, socket),
        ("destination_number", "^sess_[0-9A-Za-z]+$", socket),
        ("destination_number", r"^\+?4930123456$", socket),
        # Rendered like kallglot_providers itself, which is empty here: it matches nobody.
        ("${acl(${sip_network_ip} kallglot_providers)}", "^true$", socket),
        ("destination_number", "^.*$", [("respond", "404")]),
    ]


def test_bad_stored_values_are_left_out_failing_closed(store: Store, settings: Settings) -> None:
    ok = add_org(store, username="fine")
    org = add_org(store, username="broken", allowlist=["not-a-cidr"])  # all entries bad: not "open"
    conn = add_connection(store, ok, inbound=["192.0.2.1", "192.0.2.300"],
                          sip={"host": "bad host", "username": "u", "password": "p"})
    cfg, files = render_validated(store, settings)
    assert [(r.field, r.reason) for r in cfg.rejected] == [
        (f"sip_settings[{org}].ip_allowlist[0]", "'not-a-cidr' is not an IP address or CIDR"),
        (f"connections[{conn}].sip.host", "'bad host' is not a host name or IP address"),
        (f"connections[{conn}].inbound_addresses[1]", "'192.0.2.300' is not an IP address or CIDR"),
    ]
    users = [u.get("id") for u in parse(files["directory.xml"].text).iter("user")]
    assert users == ["fine"]
    assert parse(files["gateways.xml"].text).findall("gateway") == []
    # The valid trusted address stays (a left-out one only means its calls get challenged).
    lists = {lst.get("name"): [n.get("cidr") for n in lst] for lst in parse(files["acl.xml"].text)}
    assert lists == {"kallglot_providers": ["192.0.2.1/32"]}


def test_bad_install_setting_fails_the_render(store: Store, settings: Settings) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigInputError) as err:
        render_validated(store, replace(settings, controller_address="no-port"))
    assert err.value.field == "KALLGLOT_CONTROLLER_ADDRESS"


def test_assembled_document_as_freeswitch_reads_it(store: Store, settings: Settings, conf_dir: Path) -> None:
    hostile_pw = 'p"a$${x}<&>\' ü X-PRE-PROCESS'
    org = add_org(store, username="o'k&co", allowlist=["10.1.0.0/16"])
    sip = {"host": "gw.example.com", "username": "u$x&y", "password": hostile_pw}
    add_connection(store, org, sip=sip, inbound=["192.0.2.1"])
    FsConfigService(store, settings).render_live()
    env = {"KALLGLOT_ESL_PASSWORD": "s3cret", "KALLGLOT_FS_ESL_LISTEN_IP": "0.0.0.0"}
    pre = Preprocessor(conf_dir, env=env)
    doc = parse(pre.document())
    assert pre.missing_includes == []
    sections = {s.get("name"): s for s in doc.findall("section")}
    config = {c.get("name"): c for c in sections["configuration"].findall("configuration")}
    esl = params(config["event_socket.conf"])
    assert esl["password"] == "s3cret" and esl["listen-ip"] == "0.0.0.0" and esl["listen-port"] == "8021"
    switch = params(config["switch.conf"])
    assert (switch["rtp-start-port"], switch["rtp-end-port"]) == ("16384", "16484")
    (profile,) = config["sofia.conf"].iter("profile")
    assert params(profile.find("settings"))["sip-port"] == "5060"  # type: ignore[arg-type]
    (gateway,) = profile.iter("gateway")
    gp = params(gateway)
    assert gp["password"] == hostile_pw and gp["username"] == "u$x&y"
    lists = {lst.get("name") for lst in config["acl.conf"].iter("list")}
    assert lists == {"kallglot_esl", f"kallglot_{org}", "kallglot_providers"}
    users = [u.get("id") for u in sections["directory"].iter("user")]
    assert users == ["o'k&co"]
    assert [c.get("name") for c in sections["dialplan"].findall("context")] == ["kallglot"]


def test_freeswitch_double_reads_the_rendered_tree(store: Store, settings: Settings, conf_dir: Path) -> None:
    config = pytest.importorskip("tests.fsdouble.config")
    add_org(store, username="alice", transports=["tls", "udp"], allowlist=["198.51.100.0/24"])
    FsConfigService(store, settings).render_live()
    fs = config.load_config((conf_dir / "rendered").resolve())
    profile = fs.profiles["kallglot"]
    assert profile.transports() == {"udp": 5060, "tcp": 5060, "tls": 5061}
    user = fs.find_user(SIP_DOMAIN, "alice")
    assert user is not None and user.params["a1-hash"] == a1("alice", "sip-pass-123")
    assert fs.acl_allows(user.params["auth-acl"], "198.51.100.9")
    assert not fs.acl_allows(user.params["auth-acl"], "203.0.113.9")
    assert [e.name for e in fs.contexts["kallglot"]] == [
        "kallglot_after_socket", "kallglot_attach", "kallglot_session", "kallglot_provider_trunk",
        "kallglot_not_found"]
    assert fs.acls["kallglot_providers"].nodes == [] and not fs.acl_allows("kallglot_providers", "127.0.0.1")


def test_empty_install_renders_a_closed_but_valid_tree(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    summary = FsConfigService(store, settings).render_live()
    assert summary["users"] == 0 and summary["gateways"] == []
    assert summary["transports"] == ["tls", "tcp", "udp"]
    pre = Preprocessor(conf_dir)
    doc = parse(pre.document())
    sections = {s.get("name"): s for s in doc.findall("section")}
    assert list(sections["directory"].iter("user")) == []
    config = {c.get("name"): c for c in sections["configuration"].findall("configuration")}
    # kallglot_providers with no node: default deny, so it trusts nobody (switch_utils.c
    # switch_network_list_validate_ip_port_token returns the list's default without a match).
    providers = {lst.get("name"): lst for lst in config["acl.conf"].iter("list")}
    assert set(providers) == {"kallglot_esl", "kallglot_providers"}
    assert providers["kallglot_providers"].get("default") == "deny"
    assert list(providers["kallglot_providers"]) == []
    (profile,) = config["sofia.conf"].iter("profile")
    p = params(profile.find("settings"))  # type: ignore[arg-type]
    assert p["auth-calls"] == "true" and p["apply-inbound-acl"] == "kallglot_providers"
    actions = [(a.get("application"), a.get("data")) for a in sections["dialplan"].iter("action")]
    socket = [("socket", "127.0.0.1:8084 async full"), ("transfer", "kallglot_after_socket XML kallglot")]
    # park (after_socket), attach, the session extension, the (empty) provider trunk, 404
    assert actions == [("park", None), *socket, *socket, *socket, ("respond", "404")]

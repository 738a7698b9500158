"""GET /v1/sip/pbx_config and the snippet renderer: what a PBX admin pastes must parse, carry the
organization's settings, escape hostile values, and never hold a secret or another org's data."""

from __future__ import annotations

import configparser
import dataclasses
import xml.etree.ElementTree as ET

import pytest

from controller.domain.pbx_snippets import (
    PASSWORD_PLACEHOLDER,
    PbxTrunk,
    SnippetValueError,
    render_snippets,
    trunk_from_settings,
)
from controller.domain.sip_settings import get_sip_settings
from tests.api.server import SIP_DOMAIN, ApiServer, Org


def _setup(api: ApiServer, org: Org, **sip: object) -> str:
    body = {"enabled": True, **sip}
    assert api.call("PATCH", "/v1/sip", org, body=body).status_code == 200
    password = api.call("POST", "/v1/sip/credentials", org).json()["password"]
    return str(password)


def _pbx(api: ApiServer, org: Org) -> dict[str, str]:
    resp = api.call("GET", "/v1/sip/pbx_config", org)
    assert resp.status_code == 200, resp.text
    body: dict[str, str] = resp.json()
    assert body["object"] == "pbx_config"
    return body


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 -- our own test output


def _gateway_params(xml_text: str) -> tuple[ET.Element, dict[str, str], dict[str, str]]:
    root = _xml(xml_text)
    gw = root.find("gateway")
    assert gw is not None
    params = {p.get("name", ""): p.get("value", "") for p in gw.findall("param")}
    variables = {v.get("name", ""): v.get("value", "") for v in gw.findall("variables/variable")}
    return gw, params, variables


def _pjsip(text: str) -> list[tuple[str, dict[str, str]]]:
    """pjsip.conf as Asterisk reads it: repeated section names allowed, ';' starts a comment."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.replace("\\;", "\0").split(";")[0].replace("\0", ";").strip()
        if not line:
            continue
        if line.startswith("["):
            assert line.endswith("]"), raw
            sections.append((line[1:-1], {}))
        else:
            key, sep, value = line.partition("=")
            assert sep and sections, f"stray line {raw!r}"
            sections[-1][1][key.strip()] = value.strip()
    return sections


def test_tls_srtp_org_gets_matching_snippets(api: ApiServer) -> None:
    org = api.org()
    password = _setup(
        api, org, allowed_transports=["tls"], require_tls=True, require_srtp=True,
        allowed_codecs=["G722", "PCMA", "OPUS"],
    )
    con = api.call("POST", "/v1/connections", org, body={
        "provider": "telnyx", "name": "n", "credentials": {"api_key": "KEY0123456789"}}).json()
    api.call("POST", "/v1/phone_numbers", org, body={"number": "+14155550100", "connection_id": con["id"]})
    username = api.call("GET", "/v1/sip", org).json()["username"]
    body = _pbx(api, org)

    gw, params, variables = _gateway_params(body["freeswitch"])
    assert gw.get("name") == "kallglot"
    assert params["realm"] == SIP_DOMAIN and params["from-domain"] == SIP_DOMAIN
    assert params["proxy"] == f"{SIP_DOMAIN}:5061"
    assert params["username"] == username
    assert params["password"] == PASSWORD_PLACEHOLDER
    assert params["register"] == "false"  # the edge has disable-register: INVITEs are challenged
    assert params["register-transport"] == "tls"
    assert variables == {"absolute_codec_string": "G722,PCMA,OPUS", "rtp_secure_media": "mandatory"}

    sections = _pjsip(body["asterisk"])
    by_type = {values["type"]: (name, values) for name, values in sections}
    assert set(by_type) == {"endpoint", "auth", "aor", "identify"}
    endpoint = by_type["endpoint"][1]
    assert endpoint["allow"] == "g722,alaw,opus"  # Asterisk names, the org's order
    assert endpoint["disallow"] == "all"
    assert endpoint["media_encryption"] == "sdes"
    assert endpoint["transport"] == "transport-tls"
    assert endpoint["outbound_auth"] == by_type["auth"][0]
    auth = by_type["auth"][1]
    assert auth["username"] == username and auth["realm"] == SIP_DOMAIN
    assert auth["password"] == PASSWORD_PLACEHOLDER
    assert by_type["aor"][1]["contact"] == f"sip:{SIP_DOMAIN}:5061;transport=tls"
    assert by_type["identify"][1]["match"] == SIP_DOMAIN

    summary = body["summary"]
    assert f"Host (proxy):  {SIP_DOMAIN}" in summary and "Port:          5061" in summary
    assert "Transport:     TLS" in summary and "SRTP:          required" in summary
    assert "G722, PCMA, OPUS" in summary
    assert f"sip:<session id>@{SIP_DOMAIN}" in summary
    assert f"sip:+14155550100@{SIP_DOMAIN}" in summary

    # No secret anywhere: neither the password nor its a1-hash.
    a1 = api.store.query_one("SELECT a1_hash FROM sip_settings WHERE org_id = ?", (org.id,))["a1_hash"]
    raw = api.call("GET", "/v1/sip/pbx_config", org).text
    assert password not in raw and a1 not in raw


def test_plain_org_without_srtp_uses_udp_port_5060(api: ApiServer) -> None:
    org = api.org()
    _setup(api, org, allowed_transports=["udp"], require_srtp=False, allowed_codecs=["PCMU"])
    body = _pbx(api, org)
    _, params, variables = _gateway_params(body["freeswitch"])
    assert params["proxy"] == f"{SIP_DOMAIN}:5060" and params["register-transport"] == "udp"
    assert "rtp_secure_media" not in variables
    endpoint = next(v for _, v in _pjsip(body["asterisk"]) if v["type"] == "endpoint")
    assert "media_encryption" not in endpoint and endpoint["allow"] == "ulaw"
    assert "SRTP:          optional" in body["summary"]


def test_tls_is_preferred_and_notes_say_what_is_missing(api: ApiServer) -> None:
    org = api.org()
    api.call("PATCH", "/v1/sip", org, body={"allowed_transports": ["udp", "tcp", "tls"]})
    body = _pbx(api, org)  # SIP still disabled, no credentials: snippets plus notes
    assert _gateway_params(body["freeswitch"])[1]["register-transport"] == "tls"
    assert "SIP is disabled" in body["summary"] and "POST /v1/sip/credentials" in body["summary"]


def test_another_orgs_settings_do_not_leak(api: ApiServer) -> None:
    a, b = api.org("A"), api.org("B")
    _setup(api, a, allowed_codecs=["OPUS"])
    _setup(api, b, allowed_codecs=["PCMA"])
    con = api.call("POST", "/v1/connections", b, body={
        "provider": "telnyx", "name": "n", "credentials": {"api_key": "KEY0123456789"}}).json()
    api.call("POST", "/v1/phone_numbers", b, body={"number": "+14155550199", "connection_id": con["id"]})
    user_b = api.call("GET", "/v1/sip", b).json()["username"]
    body_a = _pbx(api, a)
    text = "".join(body_a[k] for k in ("freeswitch", "asterisk", "summary"))
    assert user_b not in text and "+14155550199" not in text and "alaw" not in body_a["asterisk"]


def test_requires_a_key(api: ApiServer) -> None:
    assert api.call("GET", "/v1/sip/pbx_config").status_code == 401


# --- the renderer on its own: hostile values --------------------------------------------------


def _trunk(**changes: object) -> PbxTrunk:
    base = PbxTrunk(
        domain="sip.example.com", username="kg0123456789ab", transport="tls", port=5061,
        allowed_transports=("tls",), codecs=("OPUS",), require_srtp=False, numbers=(),
        enabled=True, credentials_set=True,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_xml_escapes_hostile_values_and_preprocessor_triggers() -> None:
    hostile = "a\"/><param name=\"password\" value=\"x\"/>&$${base_dir}X-PRE-PROCESS"
    text = render_snippets(_trunk(username=hostile))["freeswitch"]
    assert "$${" not in text and "X-PRE-PROCESS" not in text
    _, params, _ = _gateway_params(text)
    assert params["username"] == hostile  # character references decode back to the value
    assert params["password"] == PASSWORD_PLACEHOLDER  # no second password param was injected
    benign = render_snippets(_trunk())["freeswitch"]
    assert len(_xml(text).findall("gateway/param")) == len(_xml(benign).findall("gateway/param"))


@pytest.mark.parametrize("bad", ["kg1\n[evil]\ntype=endpoint", "kg[x]", "kg\rx"])
def test_ini_refuses_line_breaks_and_brackets(bad: str) -> None:
    with pytest.raises(SnippetValueError) as err:
        render_snippets(_trunk(username=bad))
    assert err.value.field in ("asterisk", "summary")


def test_ini_escapes_semicolons() -> None:
    text = render_snippets(_trunk(username="kg;x"))["asterisk"]
    auth = next(v for _, v in _pjsip(text) if v["type"] == "auth")
    assert auth["username"] == "kg;x"


def test_stored_values_are_validated_naming_the_field(store: object) -> None:
    from controller.domain import organizations

    org = organizations.create_organization(store, "X")  # type: ignore[arg-type]
    sip = get_sip_settings(store, org.id)  # type: ignore[arg-type]
    with pytest.raises(SnippetValueError) as err:
        trunk_from_settings(dataclasses.replace(sip, username="bad user"), "sip.example.com", [])
    assert err.value.field == "username"
    with pytest.raises(SnippetValueError) as err:
        trunk_from_settings(sip, "sip.example.com\n", [])
    assert err.value.field == "sip_domain"
    with pytest.raises(SnippetValueError) as err:
        trunk_from_settings(sip, "sip.example.com", ["+1415\n"])
    assert err.value.field == "phone_numbers[0]"
    with pytest.raises(SnippetValueError) as err:
        trunk_from_settings(dataclasses.replace(sip, allowed_codecs=["G729"]), "sip.example.com", [])
    assert err.value.field == "allowed_codecs[0]"


def test_edge_transports_narrow_the_choice(store: object) -> None:
    from controller.domain import organizations

    org = organizations.create_organization(store, "X")  # type: ignore[arg-type]
    sip = dataclasses.replace(get_sip_settings(store, org.id), allowed_transports=["tls", "udp"])  # type: ignore[arg-type]
    trunk = trunk_from_settings(sip, "sip.example.com", [], ("udp", "tcp"))
    assert (trunk.transport, trunk.port) == ("udp", 5060)
    tls_only = dataclasses.replace(sip, allowed_transports=["tls"])
    only_tls = trunk_from_settings(tls_only, "sip.example.com", [], ("udp",))
    assert only_tls.transport == "tls" and any("listens on udp" in n for n in only_tls.notes)


def test_configparser_reads_the_asterisk_snippet() -> None:
    # A stock INI reader (strict=False: pjsip repeats section names) accepts it too.
    parser = configparser.ConfigParser(strict=False, inline_comment_prefixes=None, comment_prefixes=(";",))
    parser.read_string(render_snippets(_trunk(require_srtp=True))["asterisk"])
    assert parser.get("kallglot", "type") in ("endpoint", "aor", "identify")

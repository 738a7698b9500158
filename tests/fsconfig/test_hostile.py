"""Property tests: hostile settings either are rejected with the field named, or render into a
tree whose parsed values (after FreeSWITCH's own pre-processing) are exactly the inputs."""

from __future__ import annotations

import ipaddress
import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.fsconfig.model import (
    ConfigInputError,
    ManagedNumber,
    check_cidr,
    check_e164,
    check_host,
    check_secret,
    check_sip_user,
)
from controller.fsconfig.render import render_files
from controller.fsconfig.source import build_config_input, gateway_from_row, org_from_row
from controller.fsconfig.tree import write_files
from controller.fsconfig.validate import validate_files
from tests.fsconfig.conftest import STATIC_CONF
from tests.fsconfig.fs_preprocessor import Preprocessor
from tests.fsconfig.helpers import make_settings

FRAGMENTS = ['"', "'", "<", ">", "&", "]]>", "\n", "\r", "$${", "}", "${", "X-PRE-PROCESS", "x-pre-process",
             "<include>", "</include>", "<?", "<!--#", "-->", "ü", "名", "\u200b", " ", "%", ";", "=", "@",
             ":", "[", "]", "/", "a", "Z", "0", "9", ".", "-", "_", "+", "*", "\x00", "\t"]
hostile = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
)
cidrish = st.one_of(
    hostile,
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.ip_addresses(v=4), hostile).map(lambda t: f"{t[0]}{t[1]}"),
)
hostish = st.one_of(
    hostile,
    st.from_regex(r"\A[a-z0-9]{1,10}(\.[a-z0-9-]{1,10}){0,3}(:[0-9]{1,5})?\Z"),
    st.tuples(st.ip_addresses(v=6), st.integers(1, 65535)).map(lambda t: f"[{t[0]}]:{t[1]}"),
)
userish = st.one_of(hostile, st.from_regex(r"\A[\w.!~*'()&=+$,;?/-]{1,20}\Z"))
numberish = st.one_of(hostile, st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"))

SETTINGS = make_settings(Path("/unused"))


def params(el: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in el.iter("param")}


def assemble(files: dict[str, Any]) -> ET.Element:
    """Write static tree + rendered files, then build the document as FreeSWITCH would."""
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "conf"
        ignore = shutil.ignore_patterns("rendered", ".rendered-*", ".kallglot-*")
        shutil.copytree(STATIC_CONF, conf, ignore=ignore)
        (conf / "rendered").mkdir()
        write_files(conf / "rendered", files)
        pre = Preprocessor(conf)
        doc = pre.document()
        assert pre.missing_includes == []
    return ET.fromstring(doc)  # noqa: S314 -- test output


def accept(check: Any, value: Any, fallback: Any, field_name: str) -> tuple[Any, Any]:
    """(validated value or None, value to render): rejected values are replaced by ``fallback``
    after checking that the error names the field and that the value was really unusable."""
    try:
        return check(value, field_name), value
    except ConfigInputError as exc:
        assert exc.field.startswith(field_name)
        event(f"rejected {field_name}")
        return None, fallback


def unsafe(value: str) -> bool:
    return any(ch in value for ch in "\n\r\x00\t\"<>")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(username=userish, cidrs=st.lists(cidrish, max_size=3), gw_host=hostish, gw_user=userish,
       gw_password=hostile, number=numberish, provider=st.lists(cidrish, max_size=2))
def test_hostile_settings_round_trip_or_are_rejected(
    username: str, cidrs: list[str], gw_host: str, gw_user: str, gw_password: str, number: str,
    provider: list[str],
) -> None:
    ok_user, username = accept(check_sip_user, username, "fallback", "username")
    if ok_user is not None:
        assert not unsafe(username)
    ok_cidrs = [accept(check_cidr, c, None, f"ip_allowlist[{i}]")[0] for i, c in enumerate(cidrs)]
    cidrs = [c for c, ok in zip(cidrs, ok_cidrs, strict=True) if ok is not None]
    ok_host, gw_host = accept(lambda v, f: check_host(v, f, allow_port=True), gw_host, "gw.example", "host")
    if ok_host is not None:
        assert not unsafe(gw_host) and " " not in gw_host
    _, gw_user = accept(check_sip_user, gw_user, "gwuser", "gw_username")
    try:
        check_secret(gw_password, "password")
    except ConfigInputError as exc:
        assert gw_password not in str(exc) or len(gw_password) < 2  # never echoes the secret
        gw_password = "fallback-password"
    provider = [c for c in provider if accept(check_cidr, c, None, "inbound")[0] is not None]
    _, number = accept(check_e164, number, "+4930123456", "number")

    row = {"org_id": "org_01HOSTILE", "username": username, "a1_hash": "A" * 32,
           "ip_allowlist": json.dumps(cidrs), "allowed_transports": '["udp","tls"]',
           "allowed_codecs": '["PCMU"]'}
    org = org_from_row(row)
    gateway = gateway_from_row("pcon_01HOSTILE", {"host": gw_host, "username": gw_user,
                                                  "password": gw_password, "register": True})
    assert gateway is not None
    provider_cidrs = [check_cidr(c, "inbound") for c in provider]
    numbers = [ManagedNumber("pn_01HOSTILE", number)]
    cfg = build_config_input(SETTINGS, [org], [gateway], provider_cidrs, numbers)
    files = render_files(cfg)
    validate_files(files)
    doc = assemble(files)

    sections = {s.get("name"): s for s in doc.findall("section")}
    users = list(sections["directory"].iter("user"))
    assert [u.get("id") for u in users] == [username]
    expected_user_params = {"a1-hash": "a" * 32}
    if cidrs:
        expected_user_params["auth-acl"] = "kallglot_org_01HOSTILE"
    assert params(users[0]) == expected_user_params
    config = {c.get("name"): c for c in sections["configuration"].findall("configuration")}
    lists = {lst.get("name"): [n.get("cidr") for n in lst.iter("node")]
             for lst in config["acl.conf"].iter("list")}
    expected_lists: dict[str, list[str]] = {"kallglot_esl": lists["kallglot_esl"]}
    if cidrs:
        expected_lists["kallglot_org_01HOSTILE"] = list(dict.fromkeys(
            str(ipaddress.ip_network(c, strict=False)) for c in cidrs))
    # Always present (empty without provider addresses: it then allows nobody).
    expected_lists["kallglot_providers"] = list(dict.fromkeys(
        str(ipaddress.ip_network(c, strict=False)) for c in provider))
    assert lists == expected_lists
    (gw_el,) = config["sofia.conf"].iter("gateway")
    gp = params(gw_el)
    assert (gp["proxy"], gp["username"], gp["password"]) == (gw_host, gw_user, gw_password)
    conditions = [c.get("expression") for c in sections["dialplan"].iter("condition")]
    assert rf"^\+?{number[1:]}$" in conditions
